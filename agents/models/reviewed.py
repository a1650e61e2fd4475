"""The tickets people reviewed, as training rows in the order they were reviewed (their newest verdict last)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from agents.store.review import feedback_training_rows
from agents.store.tables import FeedbackRow
from agents.store.tickets import Store, as_utc


@dataclass(frozen=True)
class ReviewedTicket:
    """One reviewed ticket as a training row, with its newest feedback row (id and time)."""

    row: dict[str, Any]
    feedback_id: int
    reviewed_at: datetime


def _newest_verdicts(store: Store) -> dict[str, tuple[int, datetime]]:
    """Per ticket, the id and time of its newest feedback row."""
    with store.read() as session:
        found = session.execute(
            select(FeedbackRow.id, FeedbackRow.ticket_id, FeedbackRow.created_at).order_by(FeedbackRow.id)
        ).all()
    return {ticket_id: (feedback_id, as_utc(at)) for feedback_id, ticket_id, at in found}


def reviewed_tickets(store: Store, attempts: int = 3) -> list[ReviewedTicket]:
    """Every reviewed ticket with its labels (agents.store.review.feedback_training_rows), oldest verdict first.

    The verdict ids are read before and after the rows; if a verdict arrived in between, read again, so that a
    row's labels are never older than the feedback id recorded with it."""
    for _ in range(attempts):
        before = _newest_verdicts(store)
        rows = feedback_training_rows(store)
        after = _newest_verdicts(store)
        if before == after:
            break
    out = [ReviewedTicket(r, *after[r["id"]]) for r in rows if r["id"] in after]
    return sorted(out, key=lambda t: t.feedback_id)


def last_feedback_id(tickets: list[ReviewedTicket]) -> int | None:
    return max((t.feedback_id for t in tickets), default=None)
