"""Plan the write-back of a triaged vendor ticket: the internal note and the fields its modes applied."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.connectors.base import FIELDS, FieldMapping, WriteBack
from agents.connectors.outbox import Outbox
from agents.store.tables import OutboxRow, TicketRow
from agents.types import TriageResult

log = logging.getLogger(__name__)
KIND = "triage"  # one write-back per ticket: the triage note (and fields)
MARKER_PREFIX = "kestrel-triage-ref:"


def outbox_key(system: str, ticket_id: str, kind: str = KIND) -> str:
    return f"{system}:{ticket_id}:{kind}"


def render_note(result: TriageResult, shown: dict[str, str], marker: str) -> str:
    """The internal note: each field shown (suggested or applied) with its confidence, then owner, summary, why
    and the SOP steps. Plain text: every vendor shows it as it is."""
    lines = ["Kestrel triage"]
    for field, action in shown.items():
        confidence = result.confidence.get(field, 0.0)
        lines.append(f"- {field}: {getattr(result, field)} (confidence {confidence:.2f}, {action})")
    owner = result.owner
    who = [f"{owner.team_name} ({owner.team})"]
    if owner.on_call:
        who.append(f"on call {owner.on_call}")
    if owner.escalation:
        who.append(f"escalation {owner.escalation}")
    if owner.channel:
        who.append(f"channel {owner.channel}")
    lines.append("Owner: " + "; ".join(who))
    if result.summary:
        lines.append(f"Summary: {result.summary}")
    if result.needs_human:
        lines.append("A person must look: " + ("; ".join(result.reasons[:3]) or "low confidence"))
    elif result.reasons:
        lines.append("Why: " + "; ".join(result.reasons[:3]))
    if result.kb_refs:
        lines.append("SOPs:")
        lines += [f"- {ref.title}, {ref.section} ({ref.path})" for ref in result.kb_refs[:3]]
    if result.suggested_reply:
        lines.append(f"Suggested reply: {result.suggested_reply}")
    lines.append(marker)
    return "\n".join(lines)


def plan_writeback(
    system: str, ticket_id: str, external_id: str, result: TriageResult, mapping: FieldMapping
) -> WriteBack | None:
    """The write-back the modes allow, or None when they allow nothing (every field in shadow or off)."""
    shown: dict[str, str] = {}
    set_fields: dict[str, str] = {}
    for field in FIELDS:
        action = result.actions.get(field)
        if action is None or action.action not in ("applied", "suggested"):
            continue
        label = getattr(result, field)
        vendor = mapping.to_vendor(field, label) if action.action == "applied" else None
        if action.action == "applied" and vendor is None:  # start-up checks make this rare: say it, never guess
            log.warning("%s has no %s value for %s %s: suggested instead", system, system, field, label)
        if vendor is not None:
            set_fields[field] = vendor
        shown[field] = "set" if vendor is not None else "suggested"
    if not shown:
        return None
    marker = MARKER_PREFIX + outbox_key(system, ticket_id)
    note = render_note(result, shown, marker)
    return WriteBack(external_id=external_id, set_fields=set_fields, note=note, marker=marker)


def plan_pending(outbox: Outbox, mappings: Mapping[str, FieldMapping], limit: int = 200) -> int:
    """Add the write-back of every triaged vendor ticket that has none yet (a ticket with nothing to write gets a
    `skipped` item, so it is looked at once). Runs after each event and in every delivery
    pass, so a crash between triage and planning loses nothing; the unique key makes a second planner harmless."""
    systems = list(mappings)
    if not systems:
        return 0
    planned = select(OutboxRow.id).where(OutboxRow.ticket_id == TicketRow.id)
    query = (
        select(TicketRow)
        .where(TicketRow.channel.in_(systems), TicketRow.status != "received", TicketRow.result.is_not(None))
        .where(~planned.exists())
        .order_by(TicketRow.created_at)
        .limit(limit)
    )
    with outbox.store.write() as session:
        return plan_rows(session, outbox, mappings, list(session.scalars(query)))


def plan_rows(session: Session, outbox: Outbox, mappings: Mapping[str, FieldMapping], rows: list[TicketRow]) -> int:
    """Add the outbox items of these triaged rows inside the caller's transaction; how many are to be sent."""
    pending = 0
    for row in rows:
        if row.meta.get("backfill") or row.external_id is None or row.result is None or row.channel not in mappings:
            outbox.add(session, **_fields(row, None, "skipped"))
            continue
        result = TriageResult.model_validate(row.result)
        write = plan_writeback(row.channel, row.id, row.external_id, result, mappings[row.channel])
        pending += outbox.add(session, **_fields(row, write, "pending" if write else "skipped")) and write is not None
    return pending


def _fields(row: TicketRow, write: WriteBack | None, status: str) -> dict[str, object]:
    return {
        "key": outbox_key(row.channel, row.id),
        "system": row.channel,
        "ticket_id": row.id,
        "external_id": row.external_id or "",
        "kind": KIND,
        "payload": write.model_dump(mode="json") if write else {},
        "status": status,
    }
