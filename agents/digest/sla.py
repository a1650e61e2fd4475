"""SLA clocks of one ticket as of a moment: met, running, about to breach or breached; and which rows to skip.

Rules (also in docs/digest.md):
- The response clock runs from `created_at` to `first_response_at` (or `resolved_at` when nobody responded first);
  the resolution clock from `created_at` to `resolved_at`. Targets are the taxonomy's minutes for the ticket's
  priority (the taxonomy's default priority when it has none), counted around the clock, no business hours.
- A clock stopped at or before its deadline is met; stopped or still running after it, the ticket breached.
  Exactly at the deadline is not a breach.
- A running clock is *about to breach* when the time left is at most `margin` x the target (default 0.2: the last
  20%), the deadline itself included.
- Everything is judged as of `at`: a resolution or response stamped after `at` had not happened yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from agents.digest.models import DigestTicket
from agents.store.records import DONE
from kb.models import Taxonomy

State = Literal["met", "ok", "at_risk", "breached"]
Kind = Literal["response", "resolution"]
TIMESTAMPS = ("created_at", "triaged_at", "first_response_at", "resolved_at", "updated_at")


@dataclass(frozen=True)
class SlaClock:
    kind: Kind
    started: datetime
    target: timedelta
    stopped: datetime | None  # None: still running at `at`

    @property
    def deadline(self) -> datetime:
        return self.started + self.target


def margin_of(target: timedelta, margin: float) -> timedelta:
    """The about-to-breach window for a target, rounded to whole seconds so boundaries are exact."""
    return timedelta(seconds=round(target.total_seconds() * margin))


def clock_state(clock: SlaClock, at: datetime, margin: float) -> State:
    if clock.stopped is not None:
        return "breached" if clock.stopped > clock.deadline else "met"
    if at > clock.deadline:
        return "breached"
    return "at_risk" if clock.deadline - at <= margin_of(clock.target, margin) else "ok"


def seen(value: datetime | None, at: datetime) -> datetime | None:
    """A timestamp as known at `at`: one stamped later had not happened yet."""
    return value if value is not None and value <= at else None


def resolved_at(ticket: DigestTicket, at: datetime) -> datetime | None:
    return seen(ticket.resolved_at, at)


def is_open(ticket: DigestTicket, at: datetime) -> bool:
    created = ticket.created_at
    return created is not None and created <= at and resolved_at(ticket, at) is None


def last_activity(ticket: DigestTicket, at: datetime) -> datetime:
    """The newest thing known to have happened to the ticket by `at` (updated_at when it is not later than `at`)."""
    stamps = [seen(getattr(ticket, name), at) for name in TIMESTAMPS]
    return max(s for s in stamps if s is not None)


def sla_clocks(ticket: DigestTicket, taxonomy: Taxonomy, at: datetime) -> list[SlaClock]:
    assert ticket.created_at is not None
    pid = ticket.priority if ticket.priority in taxonomy.priority_ids else taxonomy.default_priority
    priority = taxonomy.priority(pid)
    done = resolved_at(ticket, at)
    responded = seen(ticket.first_response_at, at) or done
    return [
        SlaClock("response", ticket.created_at, timedelta(minutes=priority.response_minutes), responded),
        SlaClock("resolution", ticket.created_at, timedelta(minutes=priority.resolution_minutes), done),
    ]


def skip_reason(ticket: DigestTicket, now: datetime) -> str | None:
    """Why a row cannot be used, or None. Future means later than `now` (the real clock), not later than `at`."""
    if ticket.created_at is None:
        return "missing created_at"
    if ticket.status in DONE and ticket.resolved_at is None:
        return "missing resolved_at"
    if any((value := getattr(ticket, name)) is not None and value > now for name in TIMESTAMPS):
        return "timestamp in the future"
    for name in ("first_response_at", "resolved_at", "triaged_at"):
        value = getattr(ticket, name)
        if value is not None and value < ticket.created_at:
            return f"{name} before created_at"
    return None


@dataclass(frozen=True)
class SlaView:
    """A ticket's SLA standing as of `at`."""

    breached: list[SlaClock]
    at_risk: list[SlaClock]

    def overdue_minutes(self, at: datetime) -> int:
        late = [(c.stopped or at) - c.deadline for c in self.breached]
        return int(max(late).total_seconds() // 60) if late else 0

    def minutes_left(self, at: datetime) -> int:
        return int(min(c.deadline - at for c in self.at_risk).total_seconds() // 60) if self.at_risk else 0


def sla_view(ticket: DigestTicket, taxonomy: Taxonomy, at: datetime, margin: float) -> SlaView:
    clocks = sla_clocks(ticket, taxonomy, at)
    states = [(c, clock_state(c, at, margin)) for c in clocks]
    return SlaView(
        breached=[c for c, s in states if s == "breached"],
        at_risk=[c for c, s in states if s == "at_risk"],
    )
