"""Stored rows as callers see them: a ticket row as its record, the fields a result applies, its LLM calls' audit."""

from __future__ import annotations

import uuid

from agents.store.db import as_utc
from agents.store.records import AuditEntry, TicketRecord
from agents.store.tables import TicketRow
from agents.types import TriageResult


def new_ticket_id() -> str:
    return f"tkt_{uuid.uuid4().hex[:20]}"


def to_record(row: TicketRow) -> TicketRecord:
    return TicketRecord(
        id=row.id,
        external_id=row.external_id,
        status=row.status,  # type: ignore[arg-type]
        title=row.title,
        body=row.body,
        requester=row.requester,
        channel=row.channel,
        metadata=row.meta or {},
        intake=row.intake or {},
        assignee=row.assignee,
        team=row.team,
        priority=row.priority,
        category=row.category,
        needs_human=row.needs_human,
        reviewed=row.reviewed,
        resolution=row.resolution,
        result=TriageResult.model_validate(row.result) if row.result else None,
        error=row.error,
        created_at=as_utc(row.created_at),
        triaged_at=as_utc(row.triaged_at),
        first_response_at=as_utc(row.first_response_at),
        resolved_at=as_utc(row.resolved_at),
        updated_at=as_utc(row.updated_at),
    )


def applied_fields(result: TriageResult) -> list[str]:
    """The fields whose decision goes onto the ticket of record: those its mode applied (agents/modes.py); every
    field for a result made before modes existed."""
    if not result.actions:
        return ["team", "priority", "category"]
    return [name for name, action in result.actions.items() if action.action == "applied"]


def llm_audit(result: TriageResult, ticket_id: str | None) -> list[AuditEntry]:
    """One audit entry per LLM call the engine made for a result (model, latency, tokens, what went in and out)."""
    return [
        AuditEntry(
            kind="llm_call",
            actor="triage",
            ticket_id=ticket_id,
            model=call.backend,
            latency_ms=call.latency_ms,
            tokens_in=call.prompt_tokens,
            tokens_out=call.completion_tokens,
            input=getattr(call, "input", None),
            output=getattr(call, "output", None),
            detail={
                "task": call.task,
                "ok": call.ok,
                "mode": call.mode,
                "error": call.error,
                "prompt": call.prompt,
            },
        )
        for call in getattr(result, "llm_calls", [])
    ]
