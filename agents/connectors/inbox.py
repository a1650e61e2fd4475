"""Inbound vendor events: check the caller, read the event, store and triage a new ticket, record agents' values."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents.connectors.base import FIELDS, ConnectorError, InboundEvent
from agents.connectors.registry import Connectors
from agents.store.records import TicketPatch, TicketRecord
from agents.store.review import Review
from agents.store.tables import ConnectorEventRow, TicketRow
from agents.store.tickets import Store
from agents.types import MAX_BODY_CHARS, MAX_TITLE_CHARS, Ticket
from agents.web.desk import Desk

log = logging.getLogger(__name__)


class ConnectorOff(ConnectorError):
    status = 404
    code = "connector_off"


class EventDone(BaseModel):
    """What became of one inbound event."""

    model_config = ConfigDict(extra="forbid")

    system: str
    event_id: str
    kind: Literal["created", "updated"]
    ticket_id: str | None
    duplicate: bool = False
    status: str | None = None  # the stored ticket's status afterwards
    recorded: list[str] = []  # fields whose final value was recorded as an outcome
    ignored: list[str] = []  # vendor values we could not use, and why


def decode(system: str, body: bytes) -> object:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConnectorError(system, f"the body is not JSON ({exc})") from None


class ConnectorInbox:
    """One instance per service: every connector route goes through `receive`."""

    def __init__(
        self,
        store: Store,
        desk: Desk,
        review: Review,
        connectors: Connectors,
        plan: Callable[[Session, TicketRow], int] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.desk, self.review, self.connectors = store, desk, review, connectors
        # plan a triaged ticket's write-back in the transaction that records its event (else the delivery pass
        # plans it), then wake the deliverer
        self.plan, self.wake = plan, wake or (lambda: None)

    def verified_event(self, system: str, headers: Mapping[str, str], body: bytes, now: float) -> InboundEvent:
        """The caller is checked before the body is even decoded; then the event is read."""
        connector = self.connectors.get(system)
        if connector is None:
            why = self.connectors.off.get(system, "not a system (zendesk, jira, servicenow, zammad)")
            raise ConnectorOff(system, f"connector {why}")
        connector.verify(headers, body, now)
        event = connector.parse(decode(system, body), headers)
        if event.system != system:
            raise ConnectorError(system, f"the event says it is from {event.system}")
        return event

    async def receive(self, system: str, headers: Mapping[str, str], body: bytes, now: float) -> EventDone:
        event = self.verified_event(system, headers, body, now)
        known = await asyncio.to_thread(self._find, event)
        if known.duplicate:
            return known
        if event.kind == "created" or known.ticket_id is None:
            return await self.create(event)
        return await asyncio.to_thread(self.update, event, known.ticket_id)

    def _find(self, event: InboundEvent) -> EventDone:
        with self.store.read() as session:
            seen = session.scalar(
                select(ConnectorEventRow).where(
                    ConnectorEventRow.system == event.system, ConnectorEventRow.event_id == event.event_id
                )
            )
            ticket = session.scalar(
                select(TicketRow.id).where(
                    TicketRow.channel == event.system, TicketRow.external_id == event.external_id
                )
            )
        done = EventDone(system=event.system, event_id=event.event_id, kind=event.kind, ticket_id=ticket)
        if seen is not None:
            done.duplicate, done.ticket_id = True, seen.ticket_id or ticket
        return done

    async def create(self, event: InboundEvent) -> EventDone:
        """Store and triage (or queue) the ticket; the vendor's ticket id is the idempotency key, so a ticket comes in
        once however many events announce it."""
        # the vendor's values when triage first saw the ticket: an update that leaves one as it was is no verdict
        metadata: dict[str, object] = {
            "connector": event.system,
            "event_id": event.event_id,
            "vendor_values": event.values,
        }
        if len(event.title) > MAX_TITLE_CHARS or len(event.body) > MAX_BODY_CHARS:
            metadata["truncated"] = True  # the vendor keeps the whole text; triage reads the first part
        if event.event_id.startswith("backfill:"):
            metadata["backfill"] = True  # a past ticket: measured, never written back
        ticket = Ticket(
            id=event.external_id,
            title=event.title[:MAX_TITLE_CHARS],
            body=event.body[:MAX_BODY_CHARS],
            requester=event.requester[:256] if event.requester else None,
            created_at=event.created_at,
            channel=event.system,
            metadata=metadata,
            intake=event.intake,
        )
        key = f"{event.system}:{event.external_id}"
        records, replay = await self.desk.submit([ticket], key, None, scope="connector", batch=False)
        record = records[0]
        if await asyncio.to_thread(self._remember, event, record.id, record.status != "received"):
            self.wake()
        done = EventDone(system=event.system, event_id=event.event_id, kind=event.kind, ticket_id=record.id)
        done.status, done.duplicate = record.status, replay
        if not event.resolved or replay:
            return done
        if record.status == "received":  # queued for a worker: no prediction yet to compare the final values with
            done.ignored.append("final values: the ticket is queued for triage, so there is no prediction yet")
            return done
        return await asyncio.to_thread(self.update, event, record.id, remember=False)  # a ticket closed already

    def _remember(self, event: InboundEvent, ticket_id: str, triaged: bool) -> int:
        """Record the event and plan the ticket's write-back in one transaction; how many items are to be sent."""
        with self.store.write() as session:
            try:
                with session.begin_nested():
                    session.add(self._event_row(event, ticket_id))
            except IntegrityError:  # the same event raced in twice: the ticket itself was created once
                pass
            row = session.get(TicketRow, ticket_id) if triaged and self.plan else None
            return self.plan(session, row) if row is not None and self.plan else 0

    def _event_row(self, event: InboundEvent, ticket_id: str | None) -> ConnectorEventRow:
        return ConnectorEventRow(
            system=event.system,
            event_id=event.event_id,
            kind=event.kind,
            ticket_id=ticket_id,
            received_at=self.store.clock(),
        )

    def update(self, event: InboundEvent, ticket_id: str, remember: bool = True) -> EventDone:
        """The agent's values in the vendor become the ticket's values and, for predicted fields, its outcomes."""
        done = EventDone(system=event.system, event_id=event.event_id, kind=event.kind, ticket_id=ticket_id)
        mapping = self.connectors.on[event.system].mapping
        current = self.store.get(ticket_id)
        first_seen = current.metadata.get("vendor_values") or {}
        changes: dict[str, str] = {}
        for field in FIELDS:
            value = event.values.get(field)
            if value is None:
                continue
            label = mapping.from_vendor(field, value)
            if not event.resolved and first_seen.get(field) == value:
                done.ignored.append(f"{field} {value!r}: unchanged since the ticket came in")
            elif label is None:
                done.ignored.append(f"{field} {value!r}: no single label maps to it")
            elif not event.resolved and self._echo(current, field, label):
                done.ignored.append(f"{field} {label}: the value triage set itself")
            else:
                changes[field] = label
        sent: dict[str, object] = dict(changes)
        if event.resolved and current.status not in ("resolved", "closed"):
            sent["status"] = "resolved"

        def remember_event(session: Session) -> None:
            if remember:
                with session.begin_nested():
                    session.add(self._event_row(event, ticket_id))

        try:
            record = self.review.update(
                ticket_id,
                TicketPatch.model_validate(sent),
                f"{event.system}:{event.author or 'vendor'}",
                "connector",
                also=remember_event,
            )
        except IntegrityError:  # recorded by a concurrent delivery of the same event: nothing was changed twice
            done.duplicate = True
            return done
        done.status = record.status
        done.recorded = sorted(changes)
        return done

    @staticmethod
    def _echo(current: TicketRecord, field: str, label: str) -> bool:
        """A value equal to the one triage applied to the vendor is our own write coming back, not an agent's
        verdict (it counts once the ticket is resolved with it)."""
        result = current.result
        action = result.actions.get(field) if result else None
        return bool(result and action and action.action == "applied" and getattr(result, field) == label)
