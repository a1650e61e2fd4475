"""Faults against real services started privately by each test (never the shared ones): a Redis of the test's own
is stopped and started again under the app, as its rate limiter and as its broker; requests during the outage get
503 with Retry-After, nothing is lost, and the app recovers without a restart of its own.

Needs /usr/bin/redis-server (REDIS_SERVER overrides the path); without it the tests skip, saying why."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import redis

from agents.workers.config import FAST
from tests.serverkit import free_port, stop_process
from tests.test_server_api import Api, make_api
from tests.test_workers import (  # noqa: F401  (small_training: a fixture)
    REPO,
    Broker,
    Deployment,
    audit_kinds,
    deploy,
    small_training,
    wait_for,
)

REDIS_SERVER = Path(os.environ.get("REDIS_SERVER", "/usr/bin/redis-server"))
RECOVERED_WITHIN = 30.0  # seconds: generous for a shared 2-core machine


class PrivateRedis:
    """`redis-server` on a free loopback port, keeping nothing on disk; stopped and started again on that port."""

    def __init__(self, log: Path) -> None:
        self.port, self.log = free_port(), log
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        cmd = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            wait_for(lambda: self._answers(client), f"redis-server on port {self.port} answering", 20.0)
        finally:
            client.close()
        return self

    def _answers(self, client: redis.Redis) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not REDIS_SERVER.is_file():
        pytest.skip(f"no redis-server at {REDIS_SERVER}; install redis-server or set REDIS_SERVER to run these tests")
    server = PrivateRedis(tmp_path / "redis.log").start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(trained_service, answerer, data_dir: Path, **overrides: str) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    """The real app (tests/test_server_api.py make_api) as a context manager, shut down on leaving it."""
    yield from make_api(trained_service, answerer, data_dir, **overrides)


def _refused_with_retry_after(response, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.text
    assert response.json()["code"] == code and "Traceback" not in response.text
    assert int(response.headers["retry-after"]) >= 1


# ---- Redis as the shared rate limiter -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_rate_limiter_redis_stopped_fails_closed_and_recovers_on_its_own(
    trained_service, served_answerer, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    with serving(trained_service, served_answerer, tmp_path, redis_url=private_redis.url, redis_namespace="f") as api:
        assert api.client.get("/v1/tickets", headers=api.read).status_code == 200
        private_redis.stop()
        for _ in range(5):  # each one answered at once, none let through: closed, not open
            started = time.monotonic()
            _refused_with_retry_after(api.client.get("/v1/tickets", headers=api.read), "rate_limiter_unavailable")
            assert time.monotonic() - started < 5.0
        posted = api.client.post("/v1/tickets", json={"title": "VPN drops"}, headers=api.triage)
        _refused_with_retry_after(posted, "rate_limiter_unavailable")
        assert api.client.get("/healthz").status_code == 200  # the process itself is fine

        private_redis.start()  # the same port, empty: the app is not restarted
        wait_for(
            lambda: api.client.get("/v1/tickets", headers=api.read).status_code == 200,
            "requests allowed again once Redis is back",
            RECOVERED_WITHIN,
        )
        record = api.post_ticket("VPN will not connect", "GlobalConnect says the gateway is unreachable")
        assert record["status"] == "triaged"
        assert api.count() == 1  # the ticket refused during the outage was never stored, and said so with a 503


# ---- Redis as the broker --------------------------------------------------------------------------------------


@pytest.fixture
def private_deployment(
    tmp_path: Path,
    private_redis: PrivateRedis,
    served_data_dir: Path,
    small_training: Path,  # noqa: F811
) -> Iterator[Deployment]:
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1, socket_timeout=5)
    try:
        yield from deploy(
            tmp_path,
            Broker(private_redis.url, f"faults_{secrets.token_hex(4)}", client),
            served_data_dir,
            small_training,
        )
    finally:
        client.close()


def _replay_received(d: Deployment) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "agents.cli.main", "worker", "replay", "--received", "--data-dir", str(d.tmp_path)]
    return subprocess.run(cmd, env=d.env(), cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_broker_stopped_refuses_intake_with_503_loses_nothing_and_replay_triages_once(
    trained_service, served_answerer, private_redis: PrivateRedis, private_deployment: Deployment
) -> None:
    d = private_deployment
    app = serving(
        trained_service, served_answerer, d.tmp_path, broker_url=d.broker.url, redis_namespace=d.broker.namespace
    )
    with app as api, closing(d.store()) as store:
        before = api.client.post("/v1/tickets", json={"title": "Printer jams"}, headers=api.triage)
        assert before.status_code == 202, before.text
        private_redis.stop()  # the task queued before is lost with it (nothing on disk): replay finds it received

        started = time.monotonic()
        during = api.client.post(
            "/v1/tickets",
            json={"title": "VPN will not connect", "body": "GlobalConnect says the gateway is unreachable"},
            headers=api.triage,
        )
        assert time.monotonic() - started < 30.0  # an answer, not a hang
        _refused_with_retry_after(during, "queue_unavailable")
        assert "stored as received" in during.json()["message"]
        received = api.client.get("/v1/tickets", headers=api.read, params={"status": "received"}).json()
        assert received["total"] == 2  # nothing lost: both committed, neither triaged
        received_ids = [t["id"] for t in received["items"]]
        assert before.json()["id"] in received_ids

        private_redis.start()
        after = wait_for(
            lambda: (
                (
                    r := api.client.post("/v1/tickets", json={"title": "Outlook not syncing"}, headers=api.triage)
                ).status_code
                == 202
                and r
            ),
            "intake queueing again once Redis is back, without restarting the app",
            RECOVERED_WITHIN,
        )
        everything = api.client.get("/v1/tickets", headers=api.read, params={"limit": 100}).json()["items"]
        ids = sorted(t["id"] for t in everything)  # a POST refused while Redis was starting is stored received too
        assert after.json()["id"] in ids and set(ids) >= set(received_ids) and len(ids) >= 3
        assert {t["status"] for t in everything} == {"received"}

        replay = _replay_received(d)
        assert replay.returncode == 0, replay.stderr
        assert f"queued {len(ids)} ticket(s)" in replay.stdout, replay.stdout  # the one queued after: twice
        worker = d.worker(FAST).ready()
        wait_for(lambda: all(store.get(i).status == "triaged" for i in ids), "every ticket triaged after the outage")
        wait_for(lambda: d.broker.idle(FAST), "every delivery handled, the duplicate one included")
        for ticket_id in ids:
            assert audit_kinds(store, ticket_id) == ["triage"], ticket_id  # exactly once, though queued twice
        assert store.get(ids[0]).result is not None and "Traceback" not in worker.output()


# ---- PostgreSQL restarted under a run of requests ---------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb, pg_ctl) on a free port; as root, run as the postgres user in
    a folder it owns (initdb refuses root)."""

    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    def init(self) -> PrivatePostgres:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> PrivatePostgres:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


PG_BIN = Path(os.environ.get("PG_BIN", "/usr/local/bin"))


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        pytest.skip(f"no initdb/pg_ctl in {PG_BIN}; set PG_BIN to the PostgreSQL binaries to run this test")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or _no_postgres_user()):
        pytest.skip("running as root, and no postgres user to run initdb as (initdb refuses root)")
    root = Path(tempfile.mkdtemp(prefix="triage-pg-"))  # not under tmp_path: the postgres user must reach it
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(root)
    try:
        yield server.init().start()
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _no_postgres_user() -> bool:
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return True
    return False


@pytest.mark.slow
def test_postgres_restarted_under_requests_gives_503_then_works_again_without_an_app_restart(
    trained_service, served_answerer, tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    with serving(trained_service, served_answerer, tmp_path, database_url=private_postgres.url) as api:
        stored = [api.post_ticket(f"VPN drops at site {i}", "the tunnel resets")["id"] for i in range(3)]
        private_postgres.stop()
        during = [
            api.client.post("/v1/tickets", json={"title": "Printer jams"}, headers=api.triage),
            api.client.get(f"/v1/tickets/{stored[0]}", headers=api.read),
            api.client.get("/v1/tickets", headers=api.read),
        ]
        for response in during:
            _refused_with_retry_after(response, "database_unavailable")
        assert api.client.get("/healthz").status_code == 200

        private_postgres.start()  # the same cluster and port: the app's pool reconnects on its own
        wait_for(
            lambda: api.client.get("/v1/tickets", headers=api.read).status_code == 200,
            "reads answered again once PostgreSQL is back",
            RECOVERED_WITHIN,
        )
        after = api.post_ticket("Outlook not syncing", "since this morning")
        assert after["status"] == "triaged"
        listed = api.client.get("/v1/tickets", headers=api.read, params={"limit": 100}).json()["items"]
        assert sorted(t["id"] for t in listed) == sorted([*stored, after["id"]])  # nothing lost, nothing half-made
