"""Replay generated ticket lives up to a moment into store rows: tickets, feedback and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from agents.store.tables import AuditRow, FeedbackRow, TicketRow
from agents.types import TriageResult

CLOSE_AFTER = timedelta(days=3)  # a resolved ticket nobody reopened is closed three days later
ACTOR = "demo"


@dataclass
class Life:
    """One generated ticket and everything that happened to it, in time order."""

    row: dict[str, Any]
    created: datetime
    team: str
    priority: str
    category: str
    result: TriageResult | None = None
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)


class Replay:
    """The state of one ticket while its events are applied in order; collects the rows they produce."""

    def __init__(self, life: Life, ticket_id: str, external_id: str) -> None:
        self.life = life
        self.predicted = life.result.model_dump(mode="json") if life.result else None
        if self.predicted is not None:
            self.predicted["ticket_id"] = ticket_id
        self.row = TicketRow(
            id=ticket_id,
            external_id=external_id,
            status="received",
            title=life.row["title"],
            body=life.row["body"],
            requester=life.row.get("requester"),
            channel=life.row.get("channel", "portal"),
            meta={"demo": True, "source": life.row["id"]},
            assignee=None,
            team=life.team,
            priority=life.priority,
            category=life.category,
            needs_human=bool(life.result and life.result.needs_human),
            reviewed=False,
            resolution=None,
            result=self.predicted,
            error=None,
            attempts=0,
            created_at=life.created,
            updated_at=life.created,
        )
        self.feedback: list[FeedbackRow] = []
        self.audit: list[AuditRow] = []

    def log(self, at: datetime, kind: str, detail: dict[str, Any], actor: str = ACTOR) -> None:
        self.audit.append(AuditRow(kind=kind, actor=actor, ticket_id=self.row.id, detail=detail, created_at=at))

    def status(self, at: datetime, new: str, **extra: Any) -> None:
        self.log(at, "update", {"status": [self.row.status, new], **extra})
        self.row.status = new

    def verdict(self, at: datetime, field: str, label: str, comment: str | None = None) -> None:
        predicted = (self.predicted or {}).get(field)
        action = "accept" if label == predicted else "correct"
        self.feedback.append(
            FeedbackRow(
                ticket_id=self.row.id,
                field=field,
                action=action,
                predicted=predicted,
                label=label,
                author=self.row.assignee or ACTOR,
                comment=comment,
                created_at=at,
            )
        )

    def apply(self, at: datetime, kind: str, data: dict[str, Any]) -> None:
        row = self.row
        if kind == "triage":
            row.status, row.triaged_at = "triaged", at
            self.log(at, "triage", {"backend": (self.predicted or {}).get("backend", {"all": "demo-labels"})}, "triage")
        elif kind == "respond":
            row.assignee, row.first_response_at = data["assignee"], at
            self.status(at, "in_progress", assignee=[None, data["assignee"]])
        elif kind == "reassign":
            old, new = data["team"]
            self.log(at, "update", {"team": [old, new], "assignee": [row.assignee, data["assignee"]]})
            row.team, row.assignee = new, data["assignee"]
            if self.predicted and self.predicted.get("team") != new:
                self.verdict(at, "team", new, "reassigned")
        elif kind == "feedback" and self.predicted:
            for field in ("category", "priority"):
                label = data.get(field, self.predicted[field])
                self.verdict(at, field, label)
                setattr(row, field, label)
            row.reviewed = True
            self.log(
                at,
                "feedback",
                {"fields": {f.field: [f.predicted, f.label] for f in self.feedback[-2:]}},
                row.assignee or ACTOR,
            )
        elif kind == "wait":
            self.status(at, "waiting")
        elif kind == "resolve":
            row.resolved_at = at
            row.resolution = self.life.row.get("resolution")
            self.status(at, "resolved")
        elif kind == "reopen":
            row.resolved_at = None
            self.status(at, "in_progress", reopened=True)
        row.updated_at = max(row.updated_at, at)

    def finish(self, end: datetime) -> None:
        row = self.row
        if row.status == "resolved" and row.resolved_at is not None and row.resolved_at + CLOSE_AFTER <= end:
            self.status(row.resolved_at + CLOSE_AFTER, "closed")
            row.updated_at = row.resolved_at + CLOSE_AFTER


def rows_for(
    lives: list[Life], end: datetime, rng: np.random.Generator, prefix: str
) -> tuple[list[TicketRow], list[FeedbackRow], list[AuditRow]]:
    """Rows as the store would hold them at `end`: events after `end` have not happened yet."""
    tickets: list[TicketRow] = []
    feedback: list[FeedbackRow] = []
    audit: list[AuditRow] = []
    for n, life in enumerate(lives):
        replay = Replay(life, f"tkt_{rng.bytes(10).hex()}", f"{prefix}{n:05d}")
        for at, kind, data in sorted(life.events, key=lambda e: e[0]):
            if kind == "triage":
                at = min(at, end)
            if at <= end:
                replay.apply(at, kind, data)
        replay.finish(end)
        tickets.append(replay.row)
        feedback += replay.feedback
        audit += replay.audit
    return tickets, feedback, audit
