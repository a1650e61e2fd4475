"""The store's foundations: its errors, the engine (SQLite WAL, PostgreSQL, any SQLAlchemy URL), UTC time."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool

from agents.errors import StoreUnreadable, TriageError


class IdempotencyConflict(TriageError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used with a different body")


class TicketNotFound(TriageError):
    def __init__(self, ticket_id: str) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"no ticket with id {ticket_id!r}")


class TicketBusy(TriageError):
    def __init__(self, ticket_id: str) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"ticket {ticket_id} is still being triaged; try again in a moment")


class InvalidChange(TriageError):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def database_url(data_dir: Path, url: str | None = None) -> str:
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'triage.db').resolve()}"


def unreadable(url: str, exc: sqlite3.DatabaseError) -> StoreUnreadable:
    """The file SQLite cannot read, named, with SQLite's reason."""
    what = "is not a SQLite database" if "not a database" in str(exc) else "is damaged"
    return StoreUnreadable(make_url(url).database or url, f"{what} (SQLite: {exc})")


def server_engine(url: str) -> Engine:
    """A database server (PostgreSQL): pooled connections, checked before use; PostgreSQL sessions speak UTC,
    so a naive datetime means UTC (as on SQLite) and times come back as +00:00 whatever the server's zone."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect", insert=True)
        def _utc(dbapi_conn: Any, _record: Any) -> None:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True  # a session setting, outside any transaction the pool would roll back
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SET TIME ZONE 'UTC'")
            finally:
                cursor.close()
                dbapi_conn.autocommit = autocommit

    return engine


def make_engine(url: str) -> Engine:
    """SQLite gets WAL, full sync, foreign keys and `BEGIN IMMEDIATE` for writes (no upgrade deadlocks);
    any other URL (PostgreSQL) a plain server engine: its row locks are taken by the queries themselves."""
    if not url.startswith("sqlite"):
        return server_engine(url)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        **({"poolclass": StaticPool} if memory else {"pool_size": 8, "max_overflow": 8}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
                cursor.execute(f"PRAGMA {pragma}")
        except sqlite3.OperationalError:  # busy, locked, cannot open: SQLite's own words are right
            raise
        except sqlite3.DatabaseError as exc:
            raise unreadable(url, exc) from None
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_write") else "BEGIN")

    return engine
