"""Processes SIGKILLed mid-batch on real PostgreSQL and Redis: a worker, then an API replica; nothing lost or doubled.

PostgreSQL is TRIAGE_TEST_PG_URL (a fresh database per test, dropped after it), Redis TRIAGE_TEST_REDIS_URL (a key
prefix per test); `triage serve` and `triage worker` run as real processes. Without a service a test skips."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from agents.store.tables import TicketRow
from agents.store.tickets import Store, make_engine
from agents.web.desk import CHUNK
from agents.workers.config import FAST
from tests.serverkit import ServerProcess, fresh_data_dir
from tests.test_replicas_shared_state import pg_url  # noqa: F401  (a fixture)
from tests.test_workers import (  # noqa: F401  (broker, deployment, small_training: fixtures)
    Deployment,
    WorkerProcess,
    audit_kinds,
    broker,
    deployment,
    small_training,
    wait_for,
)

T = TypeVar("T")
WORKER_BATCH = 500  # tickets in the batch a worker dies under
REPLICA_BATCH = 200  # tickets in each batch POSTed to the replicas
CAUGHT_WITHIN = 60.0  # seconds to catch a batch half triaged (a chunk in a worker's hands) before the kill


def batch_of(demo_rows: list[dict], size: int, tag: str) -> dict[str, Any]:
    """`size` demo tickets (repeated as needed), each title marked with the batch and its place in it."""
    rows = (demo_rows * (size // len(demo_rows) + 1))[:size]
    return {"tickets": [{"title": f"{r['title']} [{tag} {i}]", "body": r["body"]} for i, r in enumerate(rows)]}


def statuses(store: Store, key_like: str | None = None) -> dict[str, int]:
    """Tickets per status; with `key_like`, only those whose idempotency key matches (one request's tickets)."""
    query = select(TicketRow.status, func.count()).group_by(TicketRow.status)
    if key_like is not None:
        query = query.where(TicketRow.idempotency_key.like(key_like))
    with store.read() as session:
        return {str(status): int(n) for status, n in session.execute(query).all()}


def stored_ids(store: Store) -> list[str]:
    with store.read() as session:
        return sorted(session.scalars(select(TicketRow.id)))


def caught(check: Callable[[], T | None], what: str) -> T:
    """Poll `check` closely (a chunk is in flight for a fraction of a second) until it returns something."""
    deadline = time.monotonic() + CAUGHT_WITHIN
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.005)
    raise AssertionError(f"never caught {what} within {CAUGHT_WITHIN:.0f} s")


def half_done(counts: dict[str, int]) -> dict[str, int] | None:
    return counts if counts.get("triaged", 0) >= 1 and counts.get("received", 0) >= 1 else None


def assert_each_triaged_once(store: Store, ids: list[str]) -> None:
    """Exactly once: one `triage` entry in the audit trail per ticket, and nothing else (no dead, no replay)."""
    twice_or_never = {i: kinds for i in ids if (kinds := audit_kinds(store, i)) != ["triage"]}
    assert not twice_or_never, f"{len(twice_or_never)} ticket(s) not triaged exactly once: {twice_or_never}"


# ---- 1. a worker SIGKILLed in the middle of a 500-ticket batch ---------------------------------------------------


def tasks_open(log: str) -> int:
    """Tasks a worker's -v log shows as received and not yet finished: > 0 while it runs one."""
    return log.count(f"Task triage.tickets.{FAST}[") - 2 * (log.count(" succeeded in ") + log.count(" retry: "))


def claims(store: Store) -> dict[tuple[str, int], int]:
    """Tickets per (status, attempts): ("received", 1) are claimed by a worker and not saved yet."""
    query = select(TicketRow.status, TicketRow.attempts, func.count()).group_by(TicketRow.status, TicketRow.attempts)
    with store.read() as session:
        return {(str(status), int(n)): int(count) for status, n, count in session.execute(query).all()}


def holding_a_claim(workers: list[WorkerProcess], store: Store) -> tuple[WorkerProcess, dict[str, int]] | None:
    """A worker caught between committing its claim of a chunk and saving the chunk's results, with some tickets
    triaged already; None when not (yet). Every worker is paused while the logs and the store are read, and the one
    returned stays paused, so it cannot save its chunk before the caller kills it (the caller resumes the others).
    The claims seen are the open worker's: a worker with no task open has saved all it claimed (two open: more than
    one chunk)."""
    for worker in workers:
        worker.pause()
    found = None
    try:
        logs = [w.output() for w in workers]
        seen = claims(store)
        running = [w for w, log in zip(workers, logs, strict=True) if tasks_open(log) > 0]
        claimed = sum(n for (status, attempts), n in seen.items() if status == "received" and attempts >= 1)
        triaged = sum(n for (status, _), n in seen.items() if status == "triaged")
        if triaged and claimed and running and (len(running) == 1 or claimed > CHUNK):
            found = running[0], {"triaged": triaged, "claimed": claimed, "received": WORKER_BATCH - triaged}
        return found
    finally:
        for worker in workers:
            if found is None or worker is not found[0]:
                worker.resume()


@pytest.mark.slow
def test_a_worker_killed_mid_batch_leaves_no_ticket_lost_and_none_triaged_twice(
    deployment: Deployment,  # noqa: F811
    pg_url: str,  # noqa: F811
    served_data_dir: Path,
    tmp_path: Path,
    demo_rows: list[dict],
) -> None:
    d = deployment
    d.database_url = pg_url
    # Redis hands a dead worker's unacknowledged task on after 4 s; its claims end 2 s after they were made
    short = {"TRIAGE_WORKER_VISIBILITY_TIMEOUT": "4", "PYTHONUNBUFFERED": "1"}
    workers = [d.worker(FAST, start=True, **short) for _ in range(2)]
    api = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "api-data"), tmp_path / "api.log", d.env(**short))
    api.start()
    store = Store(make_engine(pg_url))
    try:
        for worker in workers:
            worker.ready()
        (key,) = api.printed_keys()
        posted = httpx.post(
            f"{api.url}/v1/tickets/batch",
            json=batch_of(demo_rows, WORKER_BATCH, "w"),
            headers={"X-API-Key": key, "Idempotency-Key": "kill-a-worker"},
            timeout=60,
        )
        assert posted.status_code == 202, posted.text  # acknowledged: stored as received and queued
        ids = sorted(t["id"] for t in posted.json()["tickets"])
        assert len(set(ids)) == WORKER_BATCH

        victim, at_kill = caught(lambda: holding_a_claim(workers, store), "a worker between its claim and its save")
        victim.kill()
        assert 0 < at_kill["triaged"] < WORKER_BATCH and at_kill["claimed"] >= 1, at_kill
        assert statuses(store).get("received", 0) >= 1  # the dead worker's chunk is not done: it waits for Redis
        survivor = next(w for w in workers if w is not victim)

        wait_for(lambda: statuses(store) == {"triaged": WORKER_BATCH}, f"all {WORKER_BATCH} triaged after the kill")
        wait_for(lambda: d.broker.idle(FAST), "every task acknowledged, the dead worker's one handed on included")
        assert stored_ids(store) == ids  # every acknowledged ticket stored, none more
        assert_each_triaged_once(store, ids)
        by_attempts = {attempts: n for (_, attempts), n in claims(store).items()}
        assert by_attempts.get(2, 0) >= 1, by_attempts  # the dead worker's chunk, claimed again once its lease ended
        assert "Traceback" not in survivor.output()
        print(f"worker killed with {at_kill}; tickets per number of claims: {by_attempts}")
    finally:
        store.close()
        api.stop()


# ---- 2. an API replica SIGKILLed in the middle of a batch POST --------------------------------------------------


@pytest.mark.slow
def test_a_replica_killed_mid_batch_post_loses_nothing_and_the_retry_on_another_replays_it(
    pg_url: str,  # noqa: F811
    served_data_dir: Path,
    tmp_path: Path,
    demo_rows: list[dict],
) -> None:
    env = {"TRIAGE_DATABASE_URL": pg_url}  # no broker: each replica triages in its own process
    a = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "a"), tmp_path / "a.log", env).start()
    b: ServerProcess | None = None
    store = Store(make_engine(pg_url))
    try:
        (key,) = a.printed_keys()
        b = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "b"), tmp_path / "b.log", env).start()
        assert b.printed_keys() == []  # the database is shared: the key made by replica A works on B
        headers = {"X-API-Key": key}
        batches = {f"batch-{n}": batch_of(demo_rows, REPLICA_BATCH, f"r{n}") for n in range(4)}
        acknowledged: dict[str, list[str]] = {}

        def post(server: ServerProcess, name: str) -> httpx.Response:
            return httpx.post(
                f"{server.url}/v1/tickets/batch",
                json=batches[name],
                headers={**headers, "Idempotency-Key": name},
                timeout=120,
            )

        for name in ("batch-0", "batch-1"):  # answered by A before it dies
            answered = post(a, name)
            assert answered.status_code == 201, answered.text
            acknowledged[name] = [t["id"] for t in answered.json()["tickets"]]

        died: list[BaseException] = []

        def send() -> None:
            try:
                post(a, "batch-2")
            except httpx.TransportError as exc:  # replica A dies under the request
                died.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        at_kill = caught(lambda: half_done(statuses(store, "%:batch-2#%")), "batch-2 stored and half triaged")
        a.kill()
        sender.join(timeout=30)
        assert died, "the request should have died with replica A"
        assert 0 < at_kill["triaged"] < REPLICA_BATCH, at_kill
        left = statuses(store, "%:batch-2#%")
        assert sum(left.values()) == REPLICA_BATCH and left.get("received", 0) >= 1, left  # committed, half done

        retried = post(b, "batch-2")  # the client's retry: the same request, the same key, on replica B
        assert retried.status_code == 200 and retried.headers["idempotent-replayed"] == "true", retried.text
        records = retried.json()["tickets"]
        assert {r["status"] for r in records} == {"triaged"}  # the replay finished what A left received
        acknowledged["batch-2"] = [r["id"] for r in records]
        with store.read() as session:  # the same tickets A stored, in the request's order
            keyed = session.execute(
                select(TicketRow.idempotency_key, TicketRow.id).where(TicketRow.idempotency_key.like("%:batch-2#%"))
            ).all()
        by_place = {int(str(k).rsplit("#", 1)[1]): i for k, i in keyed}
        assert acknowledged["batch-2"] == [by_place[n] for n in range(REPLICA_BATCH)]

        after = post(b, "batch-3")  # replica B goes on taking new requests
        assert after.status_code == 201, after.text
        acknowledged["batch-3"] = [t["id"] for t in after.json()["tickets"]]
        again = post(b, "batch-0")  # a request A acknowledged, replayed on B: the same tickets, none new
        assert again.status_code == 200 and [t["id"] for t in again.json()["tickets"]] == acknowledged["batch-0"]

        ids = sorted(i for batch in acknowledged.values() for i in batch)
        assert len(set(ids)) == len(ids) == 4 * REPLICA_BATCH
        assert stored_ids(store) == ids  # every acknowledged ticket stored once, nothing stored twice
        assert statuses(store) == {"triaged": 4 * REPLICA_BATCH}
        assert_each_triaged_once(store, ids)
        print(f"killed replica A with batch-2 at {at_kill}; {left} left by it")
    finally:
        store.close()
        a.stop()
        if b is not None:
            b.stop()
