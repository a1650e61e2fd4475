"""The outbox: write-backs committed before they are sent, claimed with a lease, then delivered, retried or dead."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents.errors import TriageError
from agents.store.tables import OutboxRow
from agents.store.tickets import Store, as_utc

OutboxStatus = Literal["pending", "delivered", "dead", "skipped"]
LAST_ERROR_CHARS = 2000  # of the vendor's last answer, kept for people to read


class OutboxNotFound(TriageError):
    def __init__(self, item_id: int) -> None:
        self.item_id = item_id
        super().__init__(f"no outbox item {item_id}")


class OutboxItem(BaseModel):
    """One write-back as stored: what to write, where it stands, and the vendor's last answer."""

    model_config = ConfigDict(extra="forbid")

    id: int
    key: str
    system: str
    ticket_id: str
    external_id: str
    kind: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None


def to_item(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        key=row.key,
        system=row.system,
        ticket_id=row.ticket_id,
        external_id=row.external_id,
        kind=row.kind,
        payload=row.payload,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        next_attempt_at=as_utc(row.next_attempt_at),
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        delivered_at=as_utc(row.delivered_at),
    )


class Outbox:
    """The outbox table through the ticket store; every change is one short transaction."""

    def __init__(self, store: Store, lease: timedelta = timedelta(seconds=120)) -> None:
        self.store, self.lease = store, lease  # an item claimed and not settled within the lease is claimable again

    def add(self, session: Session, **fields: Any) -> bool:
        """Add one item inside the caller's transaction; False when its key is already there (planned before)."""
        now = self.store.clock()
        try:
            with session.begin_nested():
                session.add(OutboxRow(attempts=0, next_attempt_at=now, created_at=now, updated_at=now, **fields))
        except IntegrityError:
            return False
        return True

    def claim(self, limit: int, skip_systems: set[str] | frozenset[str] = frozenset()) -> list[OutboxItem]:
        """Due pending items, oldest first, each leased to this caller (another deliverer skips them)."""
        now = self.store.clock()
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
                or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
            )
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if skip_systems:
            query = query.where(OutboxRow.system.not_in(list(skip_systems)))
        with self.store.write() as session:
            rows = list(session.scalars(query))
            for row in rows:  # an attempt counts from its claim: one that died mid-way still counts (and is checked)
                row.claimed_until, row.attempts = now + self.lease, row.attempts + 1
            return [to_item(row) for row in rows]

    def settle(
        self,
        item_id: int,
        status: OutboxStatus,
        *,
        http_status: int | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
        refund: bool = False,
    ) -> OutboxItem:
        """Record one attempt's end: delivered, dead, or pending again with its next time."""
        now = self.store.clock()
        with self.store.write() as session:
            row = session.scalars(select(OutboxRow).where(OutboxRow.id == item_id).with_for_update()).one()
            row.attempts -= 1 if refund else 0  # an attempt that never reached the vendor (its connector is off)
            row.status, row.claimed_until, row.updated_at = status, None, now
            row.last_status = http_status if http_status is not None else row.last_status
            row.last_error = error[:LAST_ERROR_CHARS] if error else (None if status == "delivered" else row.last_error)
            if status == "delivered":
                row.delivered_at = now
            if retry_at is not None:
                row.next_attempt_at = retry_at
            return to_item(row)

    def replay(self, item_ids: list[int]) -> list[OutboxItem]:
        """Dead items become pending again with a fresh count of attempts; other items are left as they are."""
        now = self.store.clock()
        with self.store.write() as session:
            rows = list(session.scalars(select(OutboxRow).where(OutboxRow.id.in_(item_ids)).with_for_update()))
            missing = set(item_ids) - {r.id for r in rows}
            if missing:
                raise OutboxNotFound(min(missing))
            for row in rows:
                if row.status == "dead":
                    row.status, row.attempts, row.next_attempt_at, row.updated_at = "pending", 0, now, now
            return [to_item(r) for r in rows]

    def list(
        self, status: str | None = None, system: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[OutboxItem]:
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(OutboxRow.status == status)
        if system:
            query = query.where(OutboxRow.system == system)
        with self.store.read() as session:
            return [to_item(r) for r in session.scalars(query)]

    def get(self, item_id: int) -> OutboxItem:
        with self.store.read() as session:
            row = session.get(OutboxRow, item_id)
            if row is None:
                raise OutboxNotFound(item_id)
            return to_item(row)

    def counts(self) -> dict[tuple[str, str], int]:
        """Items per (system, status): for /metrics and the console."""
        query = select(OutboxRow.system, OutboxRow.status, func.count()).group_by(OutboxRow.system, OutboxRow.status)
        with self.store.read() as session:
            return {(system, status): int(n) for system, status, n in session.execute(query)}
