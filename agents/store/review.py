"""What people do to stored tickets: change them (PATCH), accept or correct predictions, and the rows that teaches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.store.outcomes import OutcomeSource, record_final_values, record_outcome
from agents.store.records import DONE, FIELDS, AuditEntry, FeedbackIn, FeedbackRecord, TicketPatch, TicketRecord
from agents.store.rows import to_record
from agents.store.tables import FeedbackRow, TicketRow
from agents.store.tickets import InvalidChange, Store, TicketBusy, TicketNotFound, as_utc
from kb.loader import KnowledgeBase

WORKED = frozenset({"in_progress", "waiting", "resolved", "closed"})


def allowed_labels(kb: KnowledgeBase) -> dict[str, list[str]]:
    return {
        "category": kb.taxonomy.category_ids,
        "priority": kb.taxonomy.priority_ids,
        "team": sorted(kb.teams),
    }


class Review:
    """Applies human changes through the store, checks labels against the taxonomy, and audits every change."""

    def __init__(self, store: Store, kb: KnowledgeBase) -> None:
        self.store = store
        self.labels = allowed_labels(kb)

    def _check_label(self, field: str, value: str) -> None:
        if value not in self.labels[field]:
            raise InvalidChange(field, f"{value!r} is not one of {self.labels[field]}")

    def update(
        self,
        ticket_id: str,
        patch: TicketPatch,
        actor: str,
        source: OutcomeSource = "patch",
        also: Callable[[Session], None] | None = None,
    ) -> TicketRecord:
        """Apply the fields the caller sent; stamps first response, resolution and re-opening. `also` runs in the
        same transaction (a connector records the vendor event there, so a redelivery finds it or finds nothing)."""
        sent = patch.model_dump(include=patch.model_fields_set)
        for name in FIELDS:
            if sent.get(name) is not None:
                self._check_label(name, sent[name])
        for required in ("status", "category", "priority"):
            if required in sent and sent[required] is None:
                raise InvalidChange(required, "cannot be null")
        now = self.store.clock()
        with self.store.write() as session:
            # locked: under READ COMMITTED two concurrent changes would both read the old values, and both stamp
            # resolution or first response and audit changes from a state the other already replaced
            row = session.get(TicketRow, ticket_id, with_for_update=True)
            if row is None:
                raise TicketNotFound(ticket_id)
            if row.status == "received":
                raise TicketBusy(row.id)
            changes: dict[str, Any] = {}
            for key, value in sent.items():
                old = getattr(row, key)
                if old != value:
                    changes[key] = [old, value]
                    setattr(row, key, value)
            if also is not None:
                also(session)
            if not changes:
                return to_record(row)
            status = changes.get("status")
            if status and status[0] in DONE and status[1] not in DONE:
                row.resolved_at, changes["reopened"] = None, True
            if status and status[1] in DONE and row.resolved_at is None:
                row.resolved_at = now
            if row.first_response_at is None and (
                (status and status[1] in WORKED) or changes.get("assignee", [None, None])[1]
            ):
                row.first_response_at = now
            row.updated_at = now
            for name in FIELDS:  # an agent's value for a predicted field is its outcome (shadow agreement)
                if name in changes and getattr(row, name):
                    record_outcome(session, row, name, getattr(row, name), source, now)
            if status and status[1] in DONE:  # the values a ticket is resolved with are final
                record_final_values(session, row, "resolved", now)
            session.add(self.store.audit_row(AuditEntry(kind="update", actor=actor, ticket_id=row.id, detail=changes)))
            predicted = (row.result or {}).get("team")
            if "team" in changes and row.team and predicted and row.team != predicted:
                session.add(
                    FeedbackRow(
                        ticket_id=row.id,
                        field="team",
                        action="correct",
                        predicted=predicted,
                        label=row.team,
                        author=actor,
                        comment="reassigned",
                        created_at=now,
                    )
                )
            return to_record(row)

    def feedback(self, item: FeedbackIn, author: str) -> list[FeedbackRecord]:
        """Store a verdict on predicted fields; a correction also changes the ticket's field."""
        if item.action == "correct" and item.field and item.value:
            self._check_label(item.field, item.value)
        now = self.store.clock()
        with self.store.write() as session:
            # locked, as in update: the verdict compares with the ticket's current fields and may change them
            row = session.get(TicketRow, item.ticket_id, with_for_update=True)
            if row is None:
                raise TicketNotFound(item.ticket_id)
            if row.result is None:
                raise InvalidChange("ticket_id", f"ticket {row.id} has no prediction yet (status {row.status})")
            fields = [item.field] if item.field else list(FIELDS)
            rows: list[FeedbackRow] = []
            for name in fields:
                predicted = row.result.get(name)
                label = item.value if item.action == "correct" and item.value else predicted
                rows.append(
                    FeedbackRow(
                        ticket_id=row.id,
                        field=name,
                        action=item.action,
                        predicted=predicted,
                        label=label,
                        author=author,
                        comment=item.comment,
                        created_at=now,
                    )
                )
                if label and (item.action == "correct" or getattr(row, name) is None) and getattr(row, name) != label:
                    setattr(row, name, label)  # a correction, or an accepted suggestion the mode did not apply
                if item.action in ("accept", "correct") and label:
                    record_outcome(session, row, name, label, "feedback", now)
            row.reviewed, row.updated_at = True, now
            session.add_all(rows)
            session.add(
                self.store.audit_row(
                    AuditEntry(
                        kind="feedback",
                        actor=author,
                        ticket_id=row.id,
                        detail={"action": item.action, "fields": {r.field: [r.predicted, r.label] for r in rows}},
                    )
                )
            )
            session.flush()
            return [_feedback_record(r) for r in rows]

    def list_feedback(self, ticket_id: str | None = None, limit: int = 100) -> list[FeedbackRecord]:
        query = select(FeedbackRow).order_by(FeedbackRow.id.desc()).limit(limit)
        if ticket_id is not None:
            query = query.where(FeedbackRow.ticket_id == ticket_id)
        with self.store.read() as session:
            return [_feedback_record(r) for r in session.scalars(query)]


def _feedback_record(row: FeedbackRow) -> FeedbackRecord:
    return FeedbackRecord(
        id=row.id,
        ticket_id=row.ticket_id,
        field=row.field,  # type: ignore[arg-type]
        action=row.action,  # type: ignore[arg-type]
        predicted=row.predicted,
        label=row.label,
        author=row.author,
        comment=row.comment,
        created_at=as_utc(row.created_at),
    )


def _shown(row: TicketRow, field: str) -> str | None:
    """The value a reviewer saw suggested for a field the mode did not apply (a shadow value was never shown)."""
    result = row.result or {}
    action = (result.get("actions") or {}).get(field) or {}
    return result.get(field) if action.get("action") == "suggested" else None


def feedback_training_rows(store: Store) -> list[dict[str, Any]]:
    """One labelled row per ticket a person reviewed: the newest verdict per field, and for a field nobody
    judged, the ticket's current value or the suggestion it showed (the person saw it and left it). Rows missing a
    label (a shadow field nobody set) are skipped."""
    with store.read() as session:
        verdicts = session.execute(
            select(FeedbackRow.ticket_id, FeedbackRow.field, FeedbackRow.label).order_by(FeedbackRow.id)
        ).all()
        latest: dict[str, dict[str, str]] = {}
        for ticket_id, field, label in verdicts:
            latest.setdefault(ticket_id, {})[field] = label
        rows = list(session.scalars(select(TicketRow).where(TicketRow.id.in_(list(latest))))) if latest else []
        out: list[dict[str, Any]] = []
        for row in rows:
            labels: dict[str, Any] = {f: latest[row.id].get(f) or getattr(row, f) or _shown(row, f) for f in FIELDS}
            if all(labels.values()):
                out.append(
                    {
                        "id": row.id,
                        "title": row.title,
                        "body": row.body,
                        "intake": row.intake or {},
                        **labels,
                        "resolution": row.resolution,
                    }
                )
    return out
