"""The ticket store: SQLite (WAL) by default, any SQLAlchemy URL; tickets, results, feedback and the audit trail."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents.store.db import (  # noqa: F401  (re-exported: the store's public names)
    IdempotencyConflict,
    InvalidChange,
    TicketBusy,
    TicketNotFound,
    as_utc,
    database_url,
    make_engine,
    utcnow,
)
from agents.store.records import AuditEntry, Claim, OpenTicket, TicketRecord
from agents.store.rows import applied_fields, llm_audit, new_ticket_id, to_record
from agents.store.tables import AuditRow, TicketRow
from agents.types import Ticket, TriageResult

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# how long a claimed `received` ticket is left to its claimer before another replica may claim it again;
# longer than one chunk's triage (LLM timeouts included), short enough that a crashed replica's work comes back
CLAIM_LEASE = timedelta(minutes=15)
MIGRATION_LOCK = 0x6B657374  # pg_advisory_xact_lock key: replicas starting together migrate one after the other


class Store:
    """Sessions on one engine; `write()` is one transaction that holds SQLite's write lock from the start.
    On PostgreSQL (READ COMMITTED) a write that reads a row to decide how to change it locks that row first."""

    def __init__(
        self, engine: Engine, clock: Callable[[], datetime] = utcnow, claim_lease: timedelta | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock
        if claim_lease is None:  # SQLite is one replica's file: no other claimer can be at work
            claim_lease = timedelta(0) if engine.dialect.name == "sqlite" else CLAIM_LEASE
        self.claim_lease = claim_lease
        self._writer = engine.execution_options(sqlite_write=True)

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None) -> Store:
        store = cls(make_engine(database_url(data_dir, url)))
        store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (run on every start-up)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":  # held until commit; PostgreSQL's DDL commits with it
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # --- tickets -------------------------------------------------------------------------------------------------

    def create(
        self,
        tickets: list[Ticket],
        idempotency_key: str | None = None,
        body_hash: str | None = None,
        *,
        scope: str = "",
        batch: bool = False,
    ) -> tuple[list[TicketRecord], bool]:
        """Commit tickets as `received`. With an idempotency key (per scope), a replay returns the stored tickets
        and True; the same key with another body raises IdempotencyConflict."""
        keys = None
        if idempotency_key is not None:
            base = f"{scope}:{idempotency_key}"
            keys = [f"{base}#{i}" for i in range(len(tickets))] if batch else [base]
            replay = self._replay(keys, body_hash, idempotency_key)
            if replay is not None:
                return replay, True
        now = self.clock()
        rows = [
            TicketRow(
                id=new_ticket_id(),
                external_id=t.id,
                status="received",
                title=t.title,
                body=t.body,
                requester=t.requester,
                channel=t.channel,
                meta=t.metadata,
                intake=t.intake,
                created_at=t.created_at or now,
                updated_at=now,
                idempotency_key=keys[i] if keys else None,
                body_hash=body_hash if keys else None,
                needs_human=False,
                reviewed=False,
                attempts=0,
            )
            for i, t in enumerate(tickets)
        ]
        try:
            with self.write() as session:
                session.add_all(rows)
        except IntegrityError:  # the same key raced in from another request
            replay = self._replay(keys or [], body_hash, idempotency_key or "")
            if replay is None:
                raise
            return replay, True
        return [to_record(r) for r in rows], False

    def _replay(self, keys: list[str], body_hash: str | None, key: str) -> list[TicketRecord] | None:
        with self.read() as session:
            found = {
                r.idempotency_key: r
                for r in session.scalars(select(TicketRow).where(TicketRow.idempotency_key.in_(keys)))
            }
        if not found:
            return None
        if len(found) != len(keys) or any(r.body_hash != body_hash for r in found.values()):
            raise IdempotencyConflict(key)
        return [to_record(found[k]) for k in keys]

    def save_results(self, results: dict[str, TriageResult]) -> int:
        """Commit results of tickets still `received`; a ticket already triaged is left alone (exactly once)."""
        now, saved = self.clock(), 0
        # locked (in id order: no deadlock between two savers): under READ COMMITTED two replicas could both
        # read `received` and both save, the second overwriting the first result and auditing it twice
        query = select(TicketRow).where(TicketRow.id.in_(list(results))).order_by(TicketRow.id).with_for_update()
        with self.write() as session:
            for row in session.scalars(query):
                if row.status != "received":
                    continue
                result = results[row.id]
                row.status, row.result = "triaged", result.model_dump(mode="json")
                for name in applied_fields(result):  # what the field's mode applies; a value already set stays
                    setattr(row, name, getattr(row, name) or getattr(result, name))
                row.needs_human, row.error = result.needs_human, None
                row.triaged_at = row.updated_at = now
                session.add(
                    self.audit_row(
                        AuditEntry(kind="triage", actor="triage", ticket_id=row.id, detail={"backend": result.backend})
                    )
                )
                session.add_all(self.audit_row(e) for e in llm_audit(result, row.id))
                saved += 1
        return saved

    def mark_failed(self, ticket_ids: list[str], error: str) -> None:
        # locked like save_results: a result another replica is committing must not be overwritten by `failed`
        query = select(TicketRow).where(TicketRow.id.in_(ticket_ids)).order_by(TicketRow.id).with_for_update()
        with self.write() as session:
            for row in session.scalars(query):
                if row.status == "received":
                    row.status, row.error, row.needs_human, row.updated_at = "failed", error[:2000], True, self.clock()

    def claim_received(
        self, limit: int, max_attempts: int, *, older_than: timedelta | None = None
    ) -> list[TicketRecord]:
        """Tickets a crash left `received`, oldest first; each claim counts an attempt, and too many fail it.
        A claim stamps `updated_at`; a ticket claimed within `claim_lease` is its claimer's and is not claimed
        again (0 on SQLite: as before, every claim takes what is `received`). On PostgreSQL the candidates are
        locked with FOR UPDATE SKIP LOCKED in the claiming transaction, so two replicas take disjoint tickets
        without waiting; SQLite ignores the clause (BEGIN IMMEDIATE already serialises claimers).
        `older_than` (the running sweep): only tickets untouched that long, so a request still at work on its
        own tickets, here or on another replica, keeps them."""
        now = self.clock()
        query = select(TicketRow).where(TicketRow.status == "received")
        if older_than is not None:
            query = query.where(TicketRow.updated_at <= now - max(older_than, self.claim_lease))
        elif self.claim_lease:  # never claimed (attempts 0): a crash's orphan, claimable at once, as on SQLite
            query = query.where(or_(TicketRow.attempts == 0, TicketRow.updated_at <= now - self.claim_lease))
        query = query.order_by(TicketRow.created_at).limit(limit).with_for_update(skip_locked=True)
        while True:  # a chunk whose every ticket ran out of attempts is failed; then look at the next chunk
            with self.write() as session:
                rows = list(session.scalars(query))
                for row in rows:
                    row.attempts += 1
                    row.updated_at = now
                    if row.attempts > max_attempts:
                        row.status, row.needs_human = "failed", True
                        row.error = f"triage did not finish after {max_attempts} attempts"
            claimed = [to_record(r) for r in rows if r.status == "received"]
            if claimed or not rows:
                return claimed

    # --- queued triage (agents/workers/): a claim per ticket id, the dead letter and its replay -------------------

    def claim_ids(self, ticket_ids: builtins.list[str], max_attempts: int) -> Claim:
        """Claim these tickets for one queued task. A ticket still `received` and not held by another claimer
        (a claim within `claim_lease`) is stamped and its attempt counted; one already claimed `max_attempts` times
        is `dead` instead. Tickets triaged, dead or unknown are left out: there is nothing left to do for them."""
        now, claim = self.clock(), Claim()
        query = (
            select(TicketRow)
            .where(TicketRow.id.in_(ticket_ids), TicketRow.status == "received")
            .order_by(TicketRow.id)
            .with_for_update()
        )
        with self.write() as session:
            for row in session.scalars(query):
                held = (as_utc(row.updated_at) + self.claim_lease - now).total_seconds()
                if row.attempts and held > 0:
                    claim.busy.append(row.id)
                    claim.wait = min(claim.wait or held, held)
                elif row.attempts >= max_attempts:
                    row.status, row.needs_human, row.updated_at = "dead", True, now
                    row.error = f"triage did not finish after {max_attempts} attempts"
                else:
                    row.attempts += 1
                    row.updated_at = now
                    claim.claimed.append(to_record(row))
        return claim

    def release_ids(self, ticket_ids: builtins.list[str]) -> None:
        """Give back claims of tickets still `received` (their triage failed and will be retried): claimable now."""
        query = select(TicketRow).where(TicketRow.id.in_(ticket_ids), TicketRow.status == "received").with_for_update()
        with self.write() as session:
            for row in session.scalars(query.order_by(TicketRow.id)):
                row.updated_at = self.clock() - self.claim_lease

    def mark_dead(self, errors: dict[str, str]) -> int:
        """The dead letter: tickets still `received` whose queued triage failed on every retry, with the last
        error (audited); returns how many. A ticket triaged meanwhile is left alone."""
        query = select(TicketRow).where(TicketRow.id.in_(list(errors)), TicketRow.status == "received")
        dead = 0
        with self.write() as session:
            for row in session.scalars(query.order_by(TicketRow.id).with_for_update()):
                row.status, row.needs_human, row.updated_at = "dead", True, self.clock()
                row.error = errors[row.id][:2000]
                session.add(
                    self.audit_row(
                        AuditEntry(kind="dead", actor="worker", ticket_id=row.id, detail={"error": row.error})
                    )
                )
                dead += 1
        return dead

    def revive_dead(self, ticket_ids: builtins.list[str], actor: str) -> builtins.list[str]:
        """Dead tickets back to `received` with a fresh count of attempts (audited), to be queued again; returns
        the ids revived (ids not dead are left out)."""
        query = select(TicketRow).where(TicketRow.id.in_(ticket_ids), TicketRow.status == "dead")
        revived = []
        with self.write() as session:
            for row in session.scalars(query.order_by(TicketRow.id).with_for_update()):
                session.add(
                    self.audit_row(
                        AuditEntry(kind="replay", actor=actor, ticket_id=row.id, detail={"error": row.error})
                    )
                )
                row.status, row.attempts, row.error, row.needs_human = "received", 0, None, False
                row.updated_at = self.clock()
                revived.append(row.id)
        return revived

    def get(self, ticket_id: str) -> TicketRecord:
        with self.read() as session:
            row = session.get(TicketRow, ticket_id)
        if row is None:
            raise TicketNotFound(ticket_id)
        return to_record(row)

    def list(self, filters: dict[str, Any], limit: int, offset: int) -> tuple[list[TicketRecord], int]:
        query = select(TicketRow)
        for name, value in filters.items():
            if value is not None:
                query = query.where(getattr(TicketRow, name) == value)
        with self.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(TicketRow.created_at.desc(), TicketRow.id.desc()).limit(limit).offset(offset)
            )
            return [to_record(r) for r in rows], total

    def open_tickets(self, limit: int) -> builtins.list[OpenTicket]:
        """The most recent tickets not resolved or closed; only the columns the ask path reads."""
        t = TicketRow
        query = select(t.id, t.status, t.title, t.assignee, t.team).where(t.status.not_in(("resolved", "closed")))
        with self.read() as session:
            rows = session.execute(query.order_by(t.created_at.desc()).limit(limit)).all()
        return [OpenTicket.model_validate(r, from_attributes=True) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        with self.read() as session:
            return dict(session.execute(select(TicketRow.status, func.count()).group_by(TicketRow.status)).all())

    # --- audit ---------------------------------------------------------------------------------------------------

    def audit_row(self, entry: AuditEntry) -> AuditRow:
        return AuditRow(**entry.model_dump(), created_at=self.clock())

    def audit(self, entries: builtins.list[AuditEntry]) -> None:
        if entries:
            with self.write() as session:
                session.add_all(self.audit_row(e) for e in entries)

    def audit_log(
        self, ticket_id: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[dict[str, Any]]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if ticket_id is not None:
            query = query.where(AuditRow.ticket_id == ticket_id)
        if kind is not None:
            query = query.where(AuditRow.kind == kind)
        with self.read() as session:
            rows = list(session.scalars(query))
        return [
            {
                **AuditEntry.model_validate(r, from_attributes=True).model_dump(),
                "id": r.id,
                "created_at": as_utc(r.created_at),
            }
            for r in rows
        ]
