"""Read what a digest needs from the ticket store: recent and open tickets, verdicts and reopen events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from agents.digest.models import DigestInput, DigestTicket, FinalValue, Reopened, Verdict
from agents.store.tables import AuditRow, FeedbackRow, OutcomeRow, TicketRow
from agents.store.tickets import Store

COLUMNS = (
    TicketRow.id,
    TicketRow.title,
    TicketRow.body,
    TicketRow.status,
    TicketRow.team,
    TicketRow.priority,
    TicketRow.category,
    TicketRow.assignee,
    TicketRow.created_at,
    TicketRow.triaged_at,
    TicketRow.first_response_at,
    TicketRow.resolved_at,
    TicketRow.updated_at,
)
NAMES = [c.key for c in COLUMNS]


def load_digest_input(
    store: Store, at: datetime, *, history: timedelta = timedelta(days=7), window: timedelta = timedelta(hours=24)
) -> DigestInput:
    """Every ticket still open, or created, resolved or updated within `history` before `at` (or later: the digest
    decides what to skip); the triage results of tickets triaged in `window`; verdicts and reopen events in it.

    Tickets closed long before the history window are not read, so the cost follows the recent volume.
    """
    since, window_start = at - history, at - window
    recent = or_(
        TicketRow.resolved_at.is_(None),
        TicketRow.resolved_at >= since,
        TicketRow.created_at >= since,
        TicketRow.updated_at >= since,
    )
    with store.read() as session:
        rows = session.execute(select(*COLUMNS).where(recent)).all()
        results: dict[str, Any] = dict(
            session.execute(
                select(TicketRow.id, TicketRow.result).where(
                    TicketRow.result.is_not(None), TicketRow.triaged_at > window_start, TicketRow.triaged_at <= at
                )
            ).all()
        )
        verdicts = session.execute(
            select(FeedbackRow.ticket_id, FeedbackRow.field, FeedbackRow.action, FeedbackRow.created_at).where(
                FeedbackRow.created_at > window_start,
                FeedbackRow.created_at <= at,
                FeedbackRow.action.in_(("accept", "correct")),
            )
        ).all()
        finals = session.execute(
            select(OutcomeRow.ticket_id, OutcomeRow.field, OutcomeRow.agreed, OutcomeRow.updated_at).where(
                OutcomeRow.updated_at > window_start, OutcomeRow.updated_at <= at
            )
        ).all()
        updates = session.execute(
            select(AuditRow.ticket_id, AuditRow.created_at, AuditRow.detail).where(
                AuditRow.kind == "update", AuditRow.created_at > window_start, AuditRow.created_at <= at
            )
        ).all()
    tickets = []
    for row in rows:
        values = dict(zip(NAMES, row, strict=True))
        result = results.get(values["id"])  # only tickets triaged in the window need theirs
        tickets.append(
            DigestTicket(
                **{k: v for k, v in values.items() if v is not None or k not in ("title", "body")},
                has_result=result is not None,
                result_needs_human=bool(result.get("needs_human")) if result else None,
                backends={str(k): str(v) for k, v in (result or {}).get("backend", {}).items()},
            )
        )
    return DigestInput(
        tickets=tickets,
        verdicts=[Verdict(ticket_id=t, field=f, action=a, created_at=c) for t, f, a, c in verdicts],  # type: ignore[arg-type]
        final_values=[FinalValue(ticket_id=t, field=f, agreed=a, at=u) for t, f, a, u in finals],
        reopened=[Reopened(ticket_id=t, at=c) for t, c, detail in updates if t and (detail or {}).get("reopened")],
    )
