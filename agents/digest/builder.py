"""The daily digest agent: per team what is new, done, stuck and breaching, recurring themes and the AI's health."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from agents.digest.models import (
    NO_TEAM,
    AiHealth,
    Digest,
    DigestInput,
    DigestParams,
    DigestTicket,
    FieldHealth,
    FinalValue,
    Skipped,
    TeamDigest,
    TicketLine,
    TicketList,
    TrendPoint,
    Verdict,
)
from agents.digest.render import template_narrative
from agents.digest.sla import is_open, last_activity, resolved_at, skip_reason, sla_view
from agents.digest.themes import ThemeFinder
from agents.errors import InvalidModelOutput, TriageError
from agents.novelty.models import NewCategory
from agents.route import ServiceMatcher
from kb.loader import KnowledgeBase

log = logging.getLogger(__name__)
TREND_DAYS = 7
MAX_NARRATIVE_CHARS = 1500
FALLBACK = "fallback"  # a backend name with this word answered after the primary failed (as agents.web.metrics counts)


class NarrativeWriter(Protocol):
    """Writes the digest's short paragraph from its numbers; `draft` is the template text to improve on."""

    name: str

    def write(self, facts: dict, draft: str) -> str: ...


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _within(value: datetime | None, start: datetime, end: datetime) -> bool:
    return value is not None and start < value <= end


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


class DigestBuilder:
    """Pure computation on tickets, verdicts and reopen events; the clock (`now`) and time (`at`) are passed in.

    Each open ticket is listed once, in its most urgent section: breached, then about to breach, then stuck, then
    unassigned (a breached ticket that is also stuck and unassigned shows under breached only). New and resolved are
    counts. Every list is sorted by priority (P1 first), then by lateness (breached, stuck, unassigned: the longest
    first; about to breach: the least time left first). Lists keep every ticket (the JSON has all); the Markdown and
    HTML show the first `max_items` of each and say how many more there are.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        themes: ThemeFinder | None = None,
        *,
        window: timedelta = timedelta(hours=24),
        breach_margin: float = 0.2,
        unassigned_after: timedelta = timedelta(hours=24),
        stuck_after: timedelta = timedelta(days=2),
        max_items: int = 3,
        writer: NarrativeWriter | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.kb = kb
        self.themes = themes
        self.window = window
        self.breach_margin = breach_margin
        self.unassigned_after = unassigned_after
        self.stuck_after = stuck_after
        self.max_items = max_items
        self.writer = writer
        self.timezone = timezone
        self.services = ServiceMatcher(kb.services)  # the catalogue aliases routing uses, to name themes
        self.service_names = {sid: svc.name for sid, svc in kb.services.items()}

    def build(self, data: DigestInput, *, now: datetime, at: datetime | None = None, team: str | None = None) -> Digest:
        at = at or now
        start = at - self.window
        usable, skipped = self._usable(data.tickets, now)
        known = [t for t in usable if t.created_at is not None and t.created_at <= at]
        if team is not None:
            known = [t for t in known if self._team(t) == team]
        teams = [team] if team is not None else self._teams(known)
        in_window = [t for t in known if _within(t.created_at, start, at)]
        in_scope = {t.id: self._team(t) for t in known}
        reopened = Counter(
            in_scope[r.ticket_id] for r in data.reopened if r.ticket_id in in_scope and _within(r.at, start, at)
        )
        verdicts = [v for v in data.verdicts if v.ticket_id in in_scope and _within(v.created_at, start, at)]
        finals = [f for f in data.final_values if f.ticket_id in in_scope and _within(f.at, start, at)]
        grouped: dict[str, list[DigestTicket]] = defaultdict(list)
        for ticket in known:
            grouped[self._team(ticket)].append(ticket)
        team_digests = [self._team_digest(tid, grouped[tid], reopened[tid], start, at) for tid in teams]
        triaged = [t for t in known if t.has_result and _within(t.triaged_at, start, at)]
        digest = Digest(
            scope=team or "all",
            timezone=self.timezone,
            generated_at=now,
            window_start=start,
            window_end=at,
            new=sum(d.new for d in team_digests),
            resolved=sum(d.resolved for d in team_digests),
            reopened=sum(d.reopened for d in team_digests),
            open=sum(d.open for d in team_digests),
            breached=sum(d.breached.count for d in team_digests),
            about_to_breach=sum(d.about_to_breach.count for d in team_digests),
            nothing_happened=not any(d.new or d.resolved or d.reopened for d in team_digests),
            teams=team_digests,
            themes=self.themes.find(in_window, self.services, self.service_names) if self.themes else [],
            ai_health=self._health(triaged, verdicts, finals),
            new_categories=self._new_categories(data.new_categories, team),
            open_trend=self._trend(known, teams, at),
            narrative="",
            narrative_by="template",
            skipped=skipped,
            params=DigestParams(
                window_hours=self.window.total_seconds() / 3600,
                breach_margin=self.breach_margin,
                unassigned_hours=self.unassigned_after.total_seconds() / 3600,
                stuck_days=self.stuck_after.total_seconds() / 86400,
                theme_distance=self.themes.distance if self.themes else 0.0,
                min_theme_size=self.themes.min_size if self.themes else 0,
                list_items=self.max_items,
            ),
        )
        text, by = self._narrative(digest)
        return digest.model_copy(update={"narrative": text, "narrative_by": by})

    # --- parts ---------------------------------------------------------------------------------------------------

    def _usable(self, tickets: Iterable[DigestTicket], now: datetime) -> tuple[list[DigestTicket], Skipped]:
        usable: list[DigestTicket] = []
        counts: Counter[str] = Counter()
        examples: dict[str, list[str]] = defaultdict(list)
        for ticket in tickets:
            reason = skip_reason(ticket, now)
            if reason is None:
                usable.append(ticket)
                continue
            counts[reason] += 1
            if len(examples[reason]) < 5:
                examples[reason].append(ticket.id)
        return usable, Skipped(
            total=sum(counts.values()), by_reason=dict(sorted(counts.items())), examples=dict(sorted(examples.items()))
        )

    def _team(self, ticket: DigestTicket) -> str:
        return ticket.team if ticket.team in self.kb.teams else NO_TEAM

    def _teams(self, tickets: list[DigestTicket]) -> list[str]:
        teams = list(self.kb.teams)
        return teams + [NO_TEAM] if any(self._team(t) == NO_TEAM for t in tickets) else teams

    def _line(self, ticket: DigestTicket, team: str, delay: int, sla: list, deadline: datetime | None) -> TicketLine:
        assert ticket.created_at is not None
        title = " ".join((ticket.title or ticket.body or "(no text)").split())
        return TicketLine(
            id=ticket.id,
            title=title[:120],
            team=team,
            priority=ticket.priority,
            status=ticket.status,
            assignee=ticket.assignee,
            created_at=ticket.created_at,
            sla=sla,
            deadline=deadline,
            delay_minutes=delay,
        )

    def _list(self, lines: list[TicketLine], most_first: bool = True) -> TicketList:
        """P1 first, then the latest (or, for about to breach, the least time left); every ticket is kept."""
        rank = {p: i for i, p in enumerate(self.kb.taxonomy.priority_ids)}
        lines.sort(
            key=lambda x: (
                rank.get(x.priority or "", len(rank)),
                -x.delay_minutes if most_first else x.delay_minutes,
                x.created_at,
                x.id,
            )
        )
        return TicketList(count=len(lines), items=lines)

    def _team_digest(
        self, team: str, tickets: list[DigestTicket], reopened: int, start: datetime, at: datetime
    ) -> TeamDigest:
        breached, at_risk, unassigned, stuck = [], [], [], []
        open_by_priority: Counter[str] = Counter()
        for t in tickets:
            assert t.created_at is not None
            open_now = is_open(t, at)
            view = sla_view(t, self.kb.taxonomy, at, self.breach_margin)
            late = [c for c in view.breached if c.stopped is None or _within(c.stopped, start, at)]
            listed = False  # one section per ticket: the first that applies, in the order of the docstring
            if late and (open_now or _within(resolved_at(t, at), start, at)):
                deadline = min(c.deadline for c in late)
                breached.append(self._line(t, team, view.overdue_minutes(at), [c.kind for c in late], deadline))
                listed = True
            if not open_now:
                continue
            open_by_priority[t.priority or "none"] += 1
            if listed:
                continue
            idle = at - last_activity(t, at)
            if view.at_risk:
                deadline = min(c.deadline for c in view.at_risk)
                at_risk.append(self._line(t, team, view.minutes_left(at), [c.kind for c in view.at_risk], deadline))
            elif idle > self.stuck_after:
                stuck.append(self._line(t, team, _minutes(idle), [], None))
            elif t.assignee is None and at - t.created_at > self.unassigned_after:
                unassigned.append(self._line(t, team, _minutes(at - t.created_at), [], None))
        new = sum(_within(t.created_at, start, at) for t in tickets)
        resolved = sum(_within(resolved_at(t, at), start, at) for t in tickets)
        order = [*self.kb.taxonomy.priority_ids, "none"]
        lists = {
            "breached": self._list(breached),
            "about_to_breach": self._list(at_risk, most_first=False),
            "stuck": self._list(stuck),
            "unassigned": self._list(unassigned),
        }
        return TeamDigest(
            team=team,
            name=self.kb.teams[team].name if team in self.kb.teams else "No team (not routed)",
            new=new,
            resolved=resolved,
            reopened=reopened,
            open=sum(open_by_priority.values()),
            open_by_priority={p: open_by_priority[p] for p in order if open_by_priority[p]},
            quiet=not (new or resolved or reopened or any(x.count for x in lists.values())),
            **lists,
        )

    def _health(self, triaged: list[DigestTicket], verdicts: list[Verdict], finals: list[FinalValue]) -> AiHealth:
        auto = sum(t.result_needs_human is False for t in triaged)
        fallbacks = sum(any(FALLBACK in b for b in t.backends.values()) for t in triaged)
        fields: dict[str, FieldHealth] = {}
        for v in verdicts:
            health = fields.setdefault(v.field, FieldHealth())
            health.accepted += v.action == "accept"
            health.corrected += v.action == "correct"
        for health in fields.values():
            health.precision = _ratio(health.accepted, health.accepted + health.corrected)
        final_counts = Counter(f.field for f in finals)
        final_agreed = Counter(f.field for f in finals if f.agreed)
        accepted = sum(h.accepted for h in fields.values())
        corrected = sum(h.corrected for h in fields.values())
        return AiHealth(
            triaged=len(triaged),
            auto_triaged=auto,
            auto_share=_ratio(auto, len(triaged)),
            fallbacks=fallbacks,
            fallback_rate=_ratio(fallbacks, len(triaged)),
            fields=dict(sorted(fields.items())),
            reviewed=len({v.ticket_id for v in verdicts}),
            accepted=accepted,
            corrected=corrected,
            precision=_ratio(accepted, accepted + corrected),
            final_values=dict(sorted(final_counts.items())),
            final_agreement={name: final_agreed[name] / n for name, n in sorted(final_counts.items())},
        )

    def _new_categories(self, found: list[NewCategory], team: str | None) -> list[NewCategory]:
        """The growing ones; a team's digest shows those whose tickets were mostly predicted for that team."""
        growing = [c for c in found if c.growing]
        return growing if team is None else [c for c in growing if next(iter(c.teams), None) == team]

    def _trend(self, tickets: list[DigestTicket], teams: list[str], at: datetime) -> list[TrendPoint]:
        points = []
        for back in range(TREND_DAYS - 1, -1, -1):
            moment = at - timedelta(days=back)
            counts = Counter(self._team(t) for t in tickets if is_open(t, moment))
            points.append(TrendPoint(at=moment, open={team: counts[team] for team in teams}))
        return points

    def _narrative(self, digest: Digest) -> tuple[str, str]:
        draft = template_narrative(digest)
        if self.writer is None:
            return draft, "template"
        try:
            text = " ".join(self.writer.write(digest.facts(), draft).split())
            if not text or len(text) > MAX_NARRATIVE_CHARS:
                raise InvalidModelOutput(f"a narrative needs 1 to {MAX_NARRATIVE_CHARS} characters", raw=text)
            return text, self.writer.name
        except TriageError as exc:
            log.warning("narrative writer %s failed (%s); using the template", self.writer.name, exc)
            return draft, "template"
