"""The digest as one self-contained HTML page with an inline SVG chart of open tickets by team over 7 days."""

from __future__ import annotations

from dataclasses import dataclass

from agents.digest.models import Digest
from agents.digest.render import (
    LISTS,
    duration,
    health_lines,
    list_title,
    local,
    new_category_lines,
    quiet_line,
    stamp,
    team_summary,
)
from agents.digest.render import totals_line as totals

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#8c564b",
)
WIDTH, HEIGHT, LEFT, TOP, BOTTOM, LEGEND = 600, 200, 36, 12, 24, 150


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    colour: str
    title: str


def chart(d: Digest) -> dict:
    """Stacked bars, one per day, one colour per team; numbers only, the template escapes every text."""
    teams = [t.team for t in d.teams if any(p.open.get(t.team) for p in d.open_trend)]
    colours = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(teams)}
    plot_w, plot_h = WIDTH - LEFT - LEGEND, HEIGHT - TOP - BOTTOM
    peak = max([sum(p.open.values()) for p in d.open_trend] + [1])
    slot = plot_w / max(len(d.open_trend), 1)
    bars, labels = [], []
    for i, point in enumerate(d.open_trend):
        x, base = LEFT + i * slot + slot * 0.15, float(TOP + plot_h)
        for team in teams:
            n = point.open.get(team, 0)
            if n:
                h = plot_h * n / peak
                base -= h
                bars.append(Bar(round(x, 1), round(base, 1), round(h, 1), colours[team], f"{team}: {n} open"))
        labels.append(
            {
                "x": round(x + slot * 0.35, 1),
                "text": f"{local(point.at, d.timezone):%a %d}",
                "total": sum(point.open.values()),
                "top": round(base - 3, 1),
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bar_w": round(slot * 0.7, 1),
        "bars": bars,
        "labels": labels,
        "axis_y": TOP + plot_h,
        "left": LEFT,
        "right": LEFT + plot_w,
        "peak": peak,
        "legend": [{"team": t, "colour": colours[t], "y": TOP + 14 * i} for i, t in enumerate(teams)],
        "legend_x": LEFT + plot_w + 12,
    }


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Daily digest: {{ scope }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} .when{color:#666;margin-top:0} .totals{font-weight:600}
h3{margin:1.2em 0 .3em} ul{margin:.2em 0 .6em;padding-left:1.2em} code{font-size:.9em;color:#555}
.quiet{color:#666} svg text{font:11px system-ui,sans-serif;fill:#333}
</style></head><body>
<h1>Daily digest: {{ scope }}</h1>
<p class="when">{{ "%g" % d.params.window_hours }} hours to {{ stamp(d.window_end, d.timezone) }}</p>
<p>{{ d.narrative }}</p>
<p class="totals">{{ totals }}</p>
{% if d.nothing_happened %}<p><em>Nothing came in, was resolved or was reopened in this window.</em></p>{% endif %}
<h2>Open tickets by team, last 7 days</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{ c.width }}" height="{{ c.height }}" role="img"
 viewBox="0 0 {{ c.width }} {{ c.height }}" aria-label="Open tickets by team over the last 7 days">
<line x1="{{ c.left }}" y1="{{ c.axis_y }}" x2="{{ c.right }}" y2="{{ c.axis_y }}" stroke="#999"/>
<text x="{{ c.left - 4 }}" y="16" text-anchor="end">{{ c.peak }}</text>
{% for b in c.bars %}<rect x="{{ b.x }}" y="{{ b.y }}" width="{{ c.bar_w }}" height="{{ b.height }}"
 fill="{{ b.colour }}"><title>{{ b.title }}</title></rect>
{% endfor %}{% for l in c.labels %}<text x="{{ l.x }}" y="{{ c.axis_y + 14 }}" text-anchor="middle">{{ l.text }}</text>
<text x="{{ l.x }}" y="{{ l.top }}" text-anchor="middle">{{ l.total }}</text>
{% endfor %}{% for g in c.legend %}<rect x="{{ c.legend_x }}" y="{{ g.y }}" width="10" height="10"
 fill="{{ g.colour }}"/><text x="{{ c.legend_x + 14 }}" y="{{ g.y + 9 }}">{{ g.team }}</text>
{% endfor %}</svg>
{% if d.themes %}<h2>Recurring themes</h2><ul>
{% for t in d.themes %}<li><strong>{{ t.name }}</strong>: {{ t.size }} tickets
({% for team, n in t.teams.items() %}{{ team }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %})</li>
{% endfor %}</ul>{% endif %}
<h2>Teams</h2>
{% for t in d.teams if not t.quiet %}<h3>{{ t.name }}: {{ team_summary(t) }}</h3>
{% for key, title, unit in lists %}{% set items = t[key] %}{% if items.count %}<p><strong>{{ title }}</strong> \
({{ items.count }})</p><ul>{% set shown = items["items"][:d.params.list_items] | length %}
{% for x in items["items"][:d.params.list_items] %}<li><code>{{ x.id }}</code> {{ x.priority or "-" }} {{ x.title }}
{%- if x.sla %} ({{ x.sla | join("+") }}){% endif %}: {{ unit.format(late=x.delay_minutes | duration) }}
{%- if x.assignee %}, {{ x.assignee }}{% else %}, unassigned{% endif %}</li>
{% endfor %}{% if items.count > shown %}<li>\
... and {{ items.count - shown }} more (console / JSON has all)</li>{% endif %}</ul>{% endif %}{% endfor %}
{% endfor %}
<ul class="quiet">{% for t in d.teams if t.quiet %}<li><strong>{{ t.name }}</strong>: {{ quiet_line(t) }}</li>
{% endfor %}</ul>
<h2>AI health</h2><ul>{% for line in health %}<li>{{ line }}</li>{% endfor %}
{% for line in new_categories %}<li>{{ line }}</li>{% endfor %}</ul>
{% if d.skipped.total %}<h2>Skipped</h2><ul>{% for reason, n in d.skipped.by_reason.items() %}
<li>{{ reason }}: {{ n }} (e.g. {{ d.skipped.examples.get(reason, []) | join(", ") }})</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def to_html(d: Digest) -> str:
    """Every text, ticket titles included, goes through Jinja's autoescape."""
    from jinja2 import Environment

    env = Environment(autoescape=True, keep_trailing_newline=True)
    env.filters["duration"] = duration
    scope = "all teams" if d.scope == "all" else (d.teams[0].name if d.teams else d.scope)
    return env.from_string(TEMPLATE).render(
        d=d,
        scope=scope,
        stamp=stamp,
        totals=totals(d),
        team_summary=team_summary,
        quiet_line=quiet_line,
        lists=[(key, list_title(title, d), unit) for key, title, unit in LISTS],
        health=health_lines(d),
        new_categories=new_category_lines(d, str, str),
        c=chart(d),
    )
