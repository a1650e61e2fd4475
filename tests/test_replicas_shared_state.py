"""Several replicas on one database: key revocation reaches every replica within a second, rate limits are counted
across replicas in Redis (503 when it is down), and a scheduled digest is made once however many schedulers run.

Real services only: a SQLite file, PostgreSQL (TRIAGE_TEST_PG_URL, default postgres@127.0.0.1:5432) and Redis
(TRIAGE_TEST_REDIS_URL, default redis://127.0.0.1:6379/0); a test that needs an absent service skips, saying why."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import event, func, make_url, select

from agents.digest.once import RUN_MARKER, claim_slot
from agents.digest.scheduler import Schedule, digest_job
from agents.settings import Settings
from agents.store.tables import AuditRow
from agents.store.tickets import Store
from agents.web.auth import KeyRing
from agents.web.limits import LimiterUnavailable, RedisRateLimiter
from tests.serverkit import redis_namespace as redis_namespace_in
from tests.test_server_api import make_api

PG_ADMIN = make_url(os.environ.get("TRIAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _libpq(url) -> str:  # type: ignore[no-untyped-def]
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_admin(statement: sql.Composable) -> None:
    with psycopg.connect(_libpq(PG_ADMIN), autocommit=True, connect_timeout=3) as conn:
        conn.execute(statement)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    try:
        psycopg.connect(_libpq(PG_ADMIN), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN.host}:{PG_ADMIN.port or 5432} ({type(exc).__name__})")
    name = f"triage_test_{secrets.token_hex(6)}"
    _pg_admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PG_ADMIN.set(database=name).render_as_string(hide_password=False)
    finally:
        _pg_admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A namespace of its own in the real Redis, emptied after the test."""
    with redis_namespace_in(REDIS_URL) as (_, namespace):
        yield namespace


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- 1. a revoked key stops working on every replica within about a second -------------------------------------


def _two_replicas(url: str, tmp_path: Path) -> tuple[Store, Store]:
    return Store.open(tmp_path / "a", url), Store.open(tmp_path / "b", url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_a_key_revoked_on_one_replica_is_refused_by_the_other_within_a_second(database: str, tmp_path: Path) -> None:
    store_a, store_b = _two_replicas(database, tmp_path)
    try:
        ring_a, ring_b = KeyRing(store_a), KeyRing(store_b)
        _, secret = ring_a.create("ci", ["read"])
        assert ring_b.verify(secret) is not None  # accepted before the revocation, and now in b's cache

        statements = []
        event.listen(store_b.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        started = time.monotonic()
        for _ in range(200):
            assert ring_b.verify(secret) is not None
        if time.monotonic() - started < 0.9:  # within one check interval: served from the cache, no query per request
            assert len(statements) <= 1, statements

        ring_a.revoke(secret.split("_")[1])
        revoked = time.monotonic()
        while ring_b.verify(secret) is not None:
            assert time.monotonic() - revoked < 5.0, "the other replica still accepts a revoked key after 5 s"
            time.sleep(0.02)
        delay = time.monotonic() - revoked
        print(f"revocation seen by the other replica after {delay:.3f} s ({make_url(database).get_backend_name()})")
        assert delay < 2.0  # bounded by the 1 s check interval, with room for a slow CI machine
    finally:
        store_a.close()
        store_b.close()


# ---- 2. rate limits shared in Redis ----------------------------------------------------------------------------


def test_two_replicas_spend_from_one_budget_in_redis(redis_namespace: str) -> None:
    one, two = (RedisRateLimiter.from_url(REDIS_URL, 0.5, 3, redis_namespace) for _ in range(2))
    assert [one.take("key1"), two.take("key1"), one.take("key1")] == [0.0, 0.0, 0.0]
    assert two.take("key1") > 0 and one.take("key1") > 0  # the burst of 3 is spent, whichever replica asks
    assert two.take("key2") == 0.0  # another caller has a bucket of its own
    other = RedisRateLimiter.from_url(REDIS_URL, 0.5, 3, f"{redis_namespace}:other")
    assert other.take("key1") == 0.0  # and another namespace a budget of its own


def test_a_redis_bucket_refills(redis_namespace: str) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, 10.0, 1, redis_namespace)
    assert limiter.take("k") == 0.0
    wait = limiter.take("k")
    assert 0 < wait <= 0.1 + 1e-6
    time.sleep(wait + 0.05)
    assert limiter.take("k") == 0.0


def test_a_dead_redis_is_a_quick_limiter_unavailable() -> None:
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{closed_port()}/0", 10.0, 5, "dead")
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable) as err:
        limiter.take("k")
    assert time.monotonic() - started < 2.0 and err.value.retry_after > 0 and "127.0.0.1" in err.value.where


def test_the_api_shares_limits_in_redis(trained_service, served_answerer, tmp_path: Path, redis_namespace) -> None:
    api_gen = make_api(
        trained_service,
        served_answerer,
        tmp_path,
        redis_url=REDIS_URL,
        redis_namespace=redis_namespace,
        rate_limit_per_second=0.01,
        rate_limit_burst=2,
    )
    api = next(api_gen)
    try:
        codes = [api.client.get("/v1/tickets", headers=api.read).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        client = redis.Redis.from_url(REDIS_URL)
        assert any(client.scan_iter(f"{redis_namespace}:key:*"))  # counted in Redis, under the namespace
    finally:
        api_gen.close()


def test_a_dead_redis_gives_503_with_retry_after(trained_service, served_answerer, tmp_path: Path) -> None:
    api_gen = make_api(trained_service, served_answerer, tmp_path, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    api = next(api_gen)
    try:
        started = time.monotonic()
        response = api.client.get("/v1/tickets", headers=api.read)
        assert time.monotonic() - started < 2.0
        assert response.status_code == 503 and response.json()["code"] == "rate_limiter_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        wrong = api.client.get("/v1/tickets", headers={"Authorization": "Bearer tri_000000000000_wrong"})
        assert wrong.status_code == 503  # refused credentials are counted in Redis too: closed, not open
        assert api.client.get("/healthz").status_code == 200  # routes without a key check still answer
    finally:
        api_gen.close()


# ---- 3. one scheduled digest per slot, however many schedulers run -----------------------------------------------


def test_two_schedulers_on_postgres_make_one_digest(pg_url: str, tmp_path: Path) -> None:
    Store.open(tmp_path / "unused", pg_url).close()  # migrated once, as `triage serve` would have done
    item = Schedule(None, 8, 30, "UTC", False)
    dirs = [tmp_path / "replica1", tmp_path / "replica2"]
    jobs = [digest_job(Settings(data_dir=d, embedder="hashing", database_url=pg_url)) for d in dirs]
    start = threading.Barrier(len(jobs))

    def run(job) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        job(item)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    made = [p for d in dirs for p in (d / "digests" / "all").glob("*.md")]
    assert len(made) == 1, made
    jobs[1](item)  # later the same day, on the replica that did not make it: already done
    jobs[0](item)
    assert len([p for d in dirs for p in (d / "digests" / "all").glob("*.md")]) == 1
    store = Store.open(tmp_path / "unused", pg_url)
    try:
        with store.read() as session:
            assert session.scalar(select(func.count()).where(AuditRow.kind == RUN_MARKER)) == 1
    finally:
        store.close()


def test_on_sqlite_every_scheduled_run_goes_ahead_as_before(tmp_path: Path) -> None:
    store = Store.open(tmp_path, None)
    try:
        for _ in range(2):
            with claim_slot(store, "all", date(2026, 12, 4)) as mine:
                assert mine
    finally:
        store.close()
