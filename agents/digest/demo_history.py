"""`triage demo seed`: a seeded generator of a realistic ticket history (arrivals, triage, reassignments, SLA
breaches, reopenings, one incident burst) written straight into the store with its own timestamps."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete, func, select

from agents.digest.demo_rows import Life, rows_for
from agents.errors import TriageError
from agents.store.tables import AuditRow, FeedbackRow, TicketRow
from agents.store.tickets import Store
from agents.types import Ticket, TriageResult
from kb.loader import KnowledgeBase

COMPANY_TZ = ZoneInfo("Europe/London")  # Kestrel Logistics works UK hours
HOURS = np.array([1, 1, 1, 1, 1, 2, 4, 9, 16, 18, 16, 13, 10, 13, 14, 13, 11, 8, 5, 3, 2, 2, 1, 1], dtype=float)
WEEKDAYS = np.array([1.1, 1.0, 1.0, 0.95, 0.85, 0.2, 0.12])  # Monday first
PREFIX = "demo-"
OUTAGE = re.compile(r"not connecting|verbindet|GC-\d+|drops|disconnected|fails", re.IGNORECASE)  # gateway-down reports


class DemoAlreadySeeded(TriageError):
    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"the store already holds {count} demo tickets; pass --replace to seed them again")


class Triager(Protocol):
    def triage_batch(self, tickets: list[Ticket]) -> list[TriageResult]: ...


class DemoHistory:
    """Draws `days` of tickets ending at `end` from the demo tickets' text and labels; the same seed and end give
    the same history. With a triager, every distinct text is triaged once and its result stored on each copy."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        kb: KnowledgeBase,
        *,
        days: int = 14,
        per_day: float = 40.0,
        seed: int = 7,
        burst: int = 30,
        triager: Triager | None = None,
    ) -> None:
        self.rows = rows
        self.kb = kb
        self.days = days
        self.per_day = per_day
        self.rng_seed = seed
        self.burst = burst
        self.triager = triager

    # --- arrivals ----------------------------------------------------------------------------------------------------

    def arrivals(self, rng: np.random.Generator, end: datetime) -> list[datetime]:
        """A Poisson process whose rate follows the hour of day and the weekday (company time)."""
        out: list[datetime] = []
        hour = (end - timedelta(days=self.days)).replace(minute=0, second=0, microsecond=0)
        day_mean = float(WEEKDAYS[:5].mean())
        while hour < end:
            local = hour.astimezone(COMPANY_TZ)
            rate = self.per_day * WEEKDAYS[local.weekday()] / day_mean * HOURS[local.hour] / HOURS.sum()
            for offset in np.sort(rng.uniform(0, 3600, rng.poisson(rate))):
                moment = hour + timedelta(seconds=float(offset))
                if end - timedelta(days=self.days) <= moment < end:
                    out.append(moment)
            hour += timedelta(hours=1)
        return out

    def burst_tickets(self, rng: np.random.Generator, end: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        """A VPN outage: `burst` tickets in 90 minutes on a weekday morning three days before the end."""
        vpn = [r for r in self.rows if r.get("service") == "vpn" and OUTAGE.search(f"{r['title']} {r['body']}")]
        vpn = vpn or self.rows
        day = (end - timedelta(days=min(3, max(self.days - 1, 0)))).astimezone(COMPANY_TZ)
        start = day.replace(hour=9, minute=10, second=0, microsecond=0).astimezone(UTC)
        times = sorted(start + timedelta(minutes=float(m)) for m in rng.uniform(0, 90, self.burst))
        return [(t, vpn[int(rng.integers(len(vpn)))]) for t in times if t < end]

    # --- lives -------------------------------------------------------------------------------------------------------

    def _delay(self, rng: np.random.Generator, target_minutes: int, median_share: float, sigma: float) -> timedelta:
        return timedelta(minutes=float(target_minutes * median_share * math.exp(sigma * rng.standard_normal())))

    def live(
        self,
        rng: np.random.Generator,
        created: datetime,
        row: dict[str, Any],
        predicted: TriageResult | None,
        incident_fix: datetime | None,
    ) -> Life:
        true_team, priority = row["team"], row["priority"]
        if incident_fix is not None:
            true_team, priority = "network", "P1" if rng.random() < 0.2 else "P2"
        team = predicted.team if predicted else true_team
        if predicted is None and rng.random() < 0.08:  # routed to the wrong queue by hand
            team = str(rng.choice([t for t in self.kb.teams if t != true_team]))
        life = Life(
            row,
            created,
            team,
            predicted.priority if predicted else priority,
            predicted.category if predicted else row["category"],
            predicted,
        )
        if incident_fix is not None:
            life.priority = priority  # the incident manager sets it for every ticket of the outage
        target = self.kb.taxonomy.priority(priority if priority in self.kb.taxonomy.priority_ids else "P3")
        triaged = created + timedelta(seconds=float(rng.uniform(0.4, 6)))
        life.events.append((triaged, "triage", {}))
        fate = rng.random()
        if fate < 0.015:  # forgotten: nobody ever picks it up
            return life
        responded = triaged + self._delay(rng, target.response_minutes, 0.3, 0.9)
        members = self.kb.teams[true_team].handles
        life.events.append((responded, "respond", {"assignee": str(rng.choice(members))}))
        if team != true_team:
            life.events.append(
                (
                    responded + timedelta(minutes=float(rng.uniform(1, 30))),
                    "reassign",
                    {"team": [team, true_team], "assignee": str(rng.choice(members))},
                )
            )
        if predicted and rng.random() < 0.35:
            verdict_at = responded + timedelta(minutes=float(rng.uniform(1, 20)))
            corrections = {f: row[f] for f in ("category", "priority") if getattr(predicted, f) != row[f]}
            life.events.append((verdict_at, "feedback", corrections))
        if fate < 0.04:  # waiting on someone and then forgotten: stuck
            life.events.append((responded + timedelta(hours=float(rng.uniform(1, 8))), "wait", {}))
            return life
        resolved = (
            incident_fix + timedelta(minutes=float(rng.uniform(0, 25)))
            if incident_fix
            else responded + self._delay(rng, target.resolution_minutes, 0.25, 1.0)
        )
        life.events.append((resolved, "resolve", {}))
        if rng.random() < 0.05:
            reopened = resolved + timedelta(hours=float(rng.uniform(2, 30)))
            life.events.append((reopened, "reopen", {}))
            life.events.append((reopened + self._delay(rng, target.resolution_minutes, 0.2, 1.0), "resolve", {}))
        return life

    def generate(self, end: datetime) -> list[Life]:
        rng = np.random.default_rng(self.rng_seed)
        results = self._results()
        plain = [(t, self.rows[int(rng.integers(len(self.rows)))]) for t in self.arrivals(rng, end)]
        burst = self.burst_tickets(rng, end)
        fix = burst[-1][0] + timedelta(minutes=75) if burst else None
        lives = [self.live(rng, t, row, results.get(row["id"]), None) for t, row in plain]
        lives += [self.live(rng, t, row, results.get(row["id"]), fix) for t, row in burst]
        lives.sort(key=lambda life: life.created)
        return lives

    def _results(self) -> dict[str, TriageResult]:
        if self.triager is None:
            return {}
        tickets = [
            Ticket(id=r["id"], title=r["title"], body=r["body"], channel=r.get("channel", "api")) for r in self.rows
        ]
        return {t.id: r for t, r in zip(tickets, self.triager.triage_batch(tickets), strict=True) if t.id}

    # --- store -------------------------------------------------------------------------------------------------------

    def seed(self, store: Store, end: datetime, *, replace: bool = False) -> dict[str, int]:
        """Write the history as it stood at `end` (later events are left out); returns counts of what was written."""
        with store.read() as session:
            existing = session.scalar(select(func.count()).where(TicketRow.external_id.like(f"{PREFIX}%"))) or 0
        if existing and not replace:
            raise DemoAlreadySeeded(existing)
        lives = self.generate(end)
        tickets, feedback, audit = rows_for(lives, end, np.random.default_rng(self.rng_seed + 1), PREFIX)
        with store.write() as session:
            if existing:
                ids = select(TicketRow.id).where(TicketRow.external_id.like(f"{PREFIX}%"))
                session.execute(delete(FeedbackRow).where(FeedbackRow.ticket_id.in_(ids)))
                session.execute(delete(AuditRow).where(AuditRow.ticket_id.in_(ids)))
                session.execute(delete(TicketRow).where(TicketRow.external_id.like(f"{PREFIX}%")))
            session.add_all(tickets)
            session.flush()
            session.add_all([*feedback, *audit])
        return {"tickets": len(tickets), "feedback": len(feedback), "audit": len(audit), "replaced": existing}
