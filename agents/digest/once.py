"""A scheduled digest made once per (scope, day) however many schedulers share a PostgreSQL store."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from sqlalchemy import select, text

from agents.digest.job import DigestRun, deliver, digest_from_settings
from agents.settings import Settings
from agents.store.tables import AuditRow
from agents.store.tickets import Store
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
RUN_MARKER = "digest_run"  # the audit kind that records a scheduled run as done (scope and day in its detail)


def slot_key(scope: str, day: date) -> int:
    """The PostgreSQL advisory lock key (a signed 64-bit integer) of one scheduled digest: scope and day."""
    return int.from_bytes(hashlib.sha256(f"digest:{scope}:{day.isoformat()}".encode()).digest()[:8], "big", signed=True)


def _done(store: Store, scope: str, day: date) -> bool:
    since = store.clock() - timedelta(days=3)  # a slot's marker is written on its day: older ones cannot match
    with store.read() as session:
        details = session.scalars(
            select(AuditRow.detail).where(AuditRow.kind == RUN_MARKER, AuditRow.created_at >= since)
        ).all()
    return any(d.get("scope") == scope and d.get("day") == day.isoformat() for d in details if d)


@contextmanager
def claim_slot(store: Store, scope: str, day: date) -> Iterator[bool]:
    """True for the one process that should make the digest of (scope, day); False for every other.

    On PostgreSQL (several schedulers on one database) a session-level `pg_try_advisory_lock` is held for the
    whole run, and a run already recorded as done (an audit row of kind RUN_MARKER, written by `mark_done`) is
    not made again. On SQLite (one machine's file, one scheduler) always True: today's behaviour."""
    if store.engine.dialect.name != "postgresql":
        yield True
        return
    key = slot_key(scope, day)
    with store.engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()
        if not got:
            log.info("digest %s for %s: another scheduler is making it; skipped", scope, day)
            yield False
            return
        try:
            done = _done(store, scope, day)
            if done:
                log.info("digest %s for %s: already made by another scheduler; skipped", scope, day)
            yield not done
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
            except Exception:  # the connection is gone, and the lock with it; never pool a connection that holds it
                conn.invalidate()


def mark_done(store: Store, scope: str, day: date, run: DigestRun) -> None:
    """Record the scheduled run of (scope, day) as done, for `claim_slot` in the other schedulers."""
    if store.engine.dialect.name != "postgresql":
        return
    with store.write() as session:
        session.add(
            AuditRow(
                kind=RUN_MARKER,
                actor="scheduler",
                detail={"scope": scope, "day": day.isoformat(), "file": run.files.get("md"), "posted": run.posted},
                created_at=store.clock(),
            )
        )


def run_scheduled_digest(
    settings: Settings,
    *,
    day: date,
    team: str | None = None,
    post: str | None = None,
    timezone: str | None = None,
    embedder: Embedder | None = None,
    now: datetime | None = None,
) -> DigestRun | None:
    """One scheduled digest (scope, day), made once however many schedulers run it; None when another made it."""
    scope = team or "all"
    store = Store.open(settings.data_dir, settings.database_url)
    try:
        with claim_slot(store, scope, day) as mine:
            if not mine:
                return None
            digest = digest_from_settings(settings, store, embedder=embedder, now=now, team=team, timezone=timezone)
            run = deliver(digest, settings.data_dir, post=post)
            mark_done(store, scope, day, run)
            return run
    finally:
        store.close()
