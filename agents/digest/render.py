"""Render a Digest as Markdown, JSON (the pydantic model) or HTML with one inline SVG chart; plus the template prose."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.digest.models import Digest, TeamDigest, TicketList
from agents.novelty.models import NewCategory

Escape = Callable[[str], str]
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
LISTS = (
    ("breached", "Breached SLA", "{late} late"),
    ("about_to_breach", "About to breach", "due in {late}"),
    ("stuck", "Stuck (no update for {stuck})", "idle {late}"),
    ("unassigned", "Unassigned for over {unassigned}", "{late} old"),
)  # the order of urgency: a ticket shows in the first list that applies (see DigestBuilder)
MORE = "... and {n} more (console / JSON has all)"
MD_THEMES = 3  # themes shown in Markdown (the JSON and HTML have all)
MD_NEW_CATEGORIES = 3  # possible new categories shown in Markdown and HTML (the JSON has all)
EXAMPLE_CHARS = 48  # of an example ticket's title on a new-category line


def md_escape(text: str) -> str:
    """One line of untrusted text, safe inside Markdown."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def slack_escape(text: str) -> str:
    """Slack mrkdwn needs only &, < and > escaped (and one line)."""
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def duration(minutes: int) -> str:
    days, rest = divmod(max(minutes, 0), 1440)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{mins} min" if mins or not (days or hours) else "",
    ]
    return " ".join(p for p in parts if p)


def local(moment: datetime, zone: str) -> datetime:
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return moment


def stamp(moment: datetime, zone: str) -> str:
    return f"{local(moment, zone):%a %d %b %Y %H:%M} ({zone})"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def totals_line(d: Digest) -> str:
    return (
        f"{d.new} new · {d.resolved} resolved · {d.reopened} reopened · {d.open} open · "
        f"{d.breached} breached · {d.about_to_breach} about to breach"
    )


def team_summary(t: TeamDigest) -> str:
    prio = ", ".join(f"{p} {n}" for p, n in t.open_by_priority.items())
    return f"{t.new} new, {t.resolved} resolved, {t.reopened} reopened, {t.open} open" + (f" ({prio})" if prio else "")


def quiet_line(t: TeamDigest) -> str:
    return f"nothing new; {t.open} open" if t.open else "nothing new, nothing open"


def list_title(title: str, d: Digest) -> str:
    return title.format(
        unassigned=duration(int(d.params.unassigned_hours * 60)), stuck=duration(int(d.params.stuck_days * 1440))
    )


def review_line(d: Digest) -> str:
    """Only what people measured: tickets reviewed and how often they agreed with the AI's fields."""
    h = d.ai_health
    if not h.reviewed:
        return "Human review: no reviews yet"
    return (
        f"Human review: {count(h.reviewed, 'ticket')} reviewed; {h.accepted} fields accepted, {h.corrected} corrected "
        f"(agreement {percent(h.precision)} of reviewed fields)"
    )


def agreement_line(d: Digest) -> list[str]:
    """Shadow agreement: how often the agents' final values matched triage, per field (none: no line)."""
    h = d.ai_health
    if not h.final_values:
        return []
    parts = [f"{name} {percent(h.final_agreement[name])} of {n}" for name, n in h.final_values.items()]
    return ["Agreement with agents' final values: " + ", ".join(parts)]


def health_lines(d: Digest) -> list[str]:
    h = d.ai_health
    return [
        f"Auto-triaged without a human: {percent(h.auto_share)} ({h.auto_triaged} of {h.triaged} triaged)",
        f"Fallback rate: {percent(h.fallback_rate)} ({h.fallbacks} of {h.triaged})",
        review_line(d),
        *agreement_line(d),
    ]


def new_category_line(c: NewCategory, esc: Escape, code: Escape) -> str:
    """One line: "Possible new category: N tickets about <words> (growth); e.g. <id> <title>; ..."."""
    examples = "; ".join(f"{code(e.id)} {esc(_cut(e.title, EXAMPLE_CHARS))}" for e in c.examples)
    return (
        f"Possible new category: {count(c.size, 'ticket')} about {esc(c.about)} ({c.recent} in the last "
        f"{c.growth_days} days, {c.previous} the {c.growth_days} before)" + (f"; e.g. {examples}" if examples else "")
    )


def new_category_lines(d: Digest, esc: Escape, code: Escape) -> list[str]:
    shown = [new_category_line(c, esc, code) for c in d.new_categories[:MD_NEW_CATEGORIES]]
    more = len(d.new_categories) - len(shown)
    return shown + ([f"... and {more} more possible new categories (JSON has all)"] if more > 0 else [])


def _cut(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rsplit(" ", 1)[0] + "…"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def template_narrative(d: Digest) -> str:
    """The paragraph written without an LLM: the numbers that matter, in a fixed order."""
    when = f"In the {d.params.window_hours:g} hours to {stamp(d.window_end, d.timezone)}"
    if d.nothing_happened:
        text = f"{when} nothing came in, was resolved or was reopened; {count(d.open, 'ticket')} open."
    else:
        text = (
            f"{when}, {count(d.new, 'ticket')} came in, {d.resolved} resolved and {d.reopened} reopened; {d.open} open."
        )
        busiest = max(d.teams, key=lambda t: t.new)
        if len(d.teams) > 1 and busiest.new:  # a one-team digest talks about that team only
            text += f" Busiest team: {busiest.name} ({busiest.new} new)."
    if d.breached or d.about_to_breach:
        text += f" Breached SLA: {d.breached}; about to breach: {d.about_to_breach}."
    if d.themes:
        top = d.themes[0]
        text += f' The biggest recurring theme is "{top.name}" ({top.size} tickets).'
    if d.ai_health.triaged:
        text += f" Auto-triage handled {percent(d.ai_health.auto_share)} without a human"
        text += (
            f"; people reviewed {count(d.ai_health.reviewed, 'ticket')} and agreed with "
            f"{percent(d.ai_health.precision)} of the reviewed fields."
            if d.ai_health.reviewed
            else "; no reviews yet."
        )
    if d.skipped.total:
        text += f" Skipped for bad timestamps: {count(d.skipped.total, 'ticket')}."
    return text


def _ticket_lines(items: TicketList, unit: str, esc: Escape, limit: int) -> list[str]:
    out = []
    for line in items.items[:limit]:
        sla = f" {'+'.join(line.sla)}" if line.sla else ""
        who = f" (assignee: {esc(line.assignee)})" if line.assignee else " (unassigned)"
        out.append(
            f"- `{line.id}` {line.priority or '-'} {esc(line.title)} —{sla} "
            f"{unit.format(late=duration(line.delay_minutes))}{who}"
        )
    if items.count > min(limit, len(items.items)):
        out.append(MORE.format(n=items.count - min(limit, len(items.items))))
    return out


def to_markdown(d: Digest, esc: Escape = md_escape) -> str:
    scope = "all teams" if d.scope == "all" else esc(d.teams[0].name if d.teams else d.scope)
    out = [
        f"# Daily digest: {scope}",
        f"{d.params.window_hours:g} hours to {stamp(d.window_end, d.timezone)}",
        "",
        esc(d.narrative),
        "",
        f"**{totals_line(d)}**",
        "",
    ]
    if d.nothing_happened:
        out += ["_Nothing came in, was resolved or was reopened in this window._", ""]
    if d.themes:
        out += ["## Recurring themes"]
        for theme in d.themes[:MD_THEMES]:
            teams = ", ".join(f"{t} {n}" for t, n in theme.teams.items())
            out.append(f"- **{esc(theme.name)}**: {theme.size} tickets ({esc(teams)})")
        out.append("")
    out.append("## Teams")
    quiet = [t for t in d.teams if t.quiet]
    for t in d.teams:
        if t.quiet:
            continue
        out += ["", f"### {esc(t.name)}: {team_summary(t)}"]
        for key, title, unit in LISTS:
            items: TicketList = getattr(t, key)
            if items.count:
                out += [
                    f"**{list_title(title, d)}** ({items.count})",
                    *_ticket_lines(items, unit, esc, d.params.list_items),
                ]
    if quiet:
        out.append("")
        out += [f"- **{esc(t.name)}**: {quiet_line(t)}" for t in quiet]
    out += ["", "## AI health", *[f"- {line}" for line in health_lines(d)]]
    out += [f"- {line}" for line in new_category_lines(d, esc, lambda x: f"`{x}`")]
    if d.skipped.total:
        reasons = "; ".join(
            f"{r}: {n} (e.g. {', '.join(d.skipped.examples.get(r, []))})" for r, n in d.skipped.by_reason.items()
        )
        out += ["", "## Skipped", f"- {d.skipped.total} tickets skipped: {esc(reasons)}"]
    return "\n".join(out) + "\n"


def to_json(d: Digest) -> str:
    return d.model_dump_json(indent=2)


def to_slack(d: Digest, limit: int = 39_000) -> dict[str, str]:
    """The body of a Slack-compatible incoming webhook post."""
    text = to_markdown(d, esc=slack_escape)
    return {"text": text if len(text) <= limit else text[:limit] + "\n… (truncated; the full digest is on disk)"}
