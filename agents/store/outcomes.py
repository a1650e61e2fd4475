"""Outcomes: the agent's final value of each predicted field, recorded beside the prediction, and read back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import Session

from agents.store.tables import OutcomeRow, TicketRow
from agents.store.tickets import Store

OutcomeSource = Literal["patch", "feedback", "resolved", "connector"]
OUTCOME_FIELDS = ("category", "priority", "team")


class Outcome(BaseModel):
    """One field of one ticket: what triage said, how sure, what its mode did, and what the agent settled on."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: str
    field: str
    predicted: str
    confidence: float
    threshold: float | None
    mode: str
    action: str
    final: str
    agreed: bool
    source: str
    created_at: datetime
    updated_at: datetime


def record_outcome(
    session: Session, row: TicketRow, field: str, final: str, source: OutcomeSource, now: datetime
) -> OutcomeRow | None:
    """Record (or replace) the final value of `field` on a locked ticket row; None when there is nothing to compare:
    a ticket the service never triaged, a field it did not predict, or a field whose mode is off."""
    result: dict[str, Any] = row.result or {}
    predicted = result.get(field)
    if predicted is None or not final:
        return None
    action = (result.get("actions") or {}).get(field) or {"mode": "auto", "action": "applied"}  # before modes
    if action.get("mode") == "off":
        return None
    outcome = session.scalar(select(OutcomeRow).where(OutcomeRow.ticket_id == row.id, OutcomeRow.field == field))
    if outcome is not None and outcome.final == final:
        return outcome  # the same final value again (e.g. at resolution): the first record and its source stand
    if outcome is None:
        outcome = OutcomeRow(ticket_id=row.id, field=field, created_at=now)
        session.add(outcome)
    outcome.predicted = str(predicted)
    outcome.confidence = float((result.get("confidence") or {}).get(field, 0.0))
    outcome.threshold = action.get("threshold")
    outcome.mode, outcome.action = str(action.get("mode")), str(action.get("action"))
    outcome.final, outcome.agreed, outcome.source = final, final == predicted, source
    outcome.updated_at = now
    return outcome


def record_final_values(session: Session, row: TicketRow, source: OutcomeSource, now: datetime) -> int:
    """Record every predicted field's current value on the ticket as final (e.g. when the ticket is resolved)."""
    return sum(
        record_outcome(session, row, name, value, source, now) is not None
        for name in OUTCOME_FIELDS
        if (value := getattr(row, name))
    )


def read_outcomes(store: Store, since: datetime | None = None, until: datetime | None = None) -> list[Outcome]:
    """Outcomes whose final value was last set within [since, until), oldest first."""
    query = select(OutcomeRow).order_by(OutcomeRow.updated_at, OutcomeRow.id)
    if since is not None:
        query = query.where(OutcomeRow.updated_at >= since)
    if until is not None:
        query = query.where(OutcomeRow.updated_at < until)
    with store.read() as session:
        return [
            Outcome(
                ticket_id=r.ticket_id,
                field=r.field,
                predicted=r.predicted,
                confidence=r.confidence,
                threshold=r.threshold,
                mode=r.mode,
                action=r.action,
                final=r.final,
                agreed=r.agreed,
                source=r.source,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in session.scalars(query)
        ]


def agreement_by_field(store: Store, since: datetime) -> dict[str, tuple[int, float]]:
    """Per field, the outcomes set since `since` and the share that agreed (one aggregate query: cheap to scrape)."""
    query = (
        select(OutcomeRow.field, func.count(), func.sum(OutcomeRow.agreed.cast(Integer)))
        .where(OutcomeRow.updated_at >= since)
        .group_by(OutcomeRow.field)
    )
    with store.read() as session:
        return {field: (int(n), float(agreed or 0) / n) for field, n, agreed in session.execute(query) if n}
