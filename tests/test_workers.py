"""Queued triage on real services: intake with TRIAGE_BROKER_URL queues ticket ids in the real Redis, `triage worker`
subprocesses (Celery, solo pool) claim and triage them in a real SQLite file (PostgreSQL where it says so).

Redis is TRIAGE_TEST_REDIS_URL (default redis://127.0.0.1:6379/0); every test has a key prefix of its own
(TRIAGE_REDIS_NAMESPACE), deleted afterwards. Without Redis the tests that need it skip, saying why."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import select

from agents.settings import Settings
from agents.store.tables import TicketRow
from agents.store.tickets import Store, make_engine
from agents.types import Ticket
from agents.workers.config import FAST, LLM, build_celery, restore_every
from agents.workers.queues import TicketQueue, ticket_queue_name
from agents.workers.tasks import backoff, longest_wait
from tests.llm_kit import write_evidence, write_writers_evidence
from tests.serverkit import fresh_data_dir, redis_namespace, stop_process
from tests.test_replicas_shared_state import closed_port, pg_url  # noqa: F401  (pg_url: a fixture)
from tests.test_server_api import Api, make_api

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TRIAGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
TRIAGED_WITHIN = 90.0  # seconds: generous for a shared 2-core machine; a failure here is a lost ticket


# ---- the real services and processes --------------------------------------------------------------------------


@dataclass
class Broker:
    """The real Redis, under a key prefix of this test's own (or RabbitMQ: no client, nothing to look into)."""

    url: str
    namespace: str
    client: redis.Redis | None

    def key(self, name: str) -> str:
        return f"{self.namespace}:celery:{name}"

    def waiting(self, queue: str) -> list[list[str]]:
        """The ticket ids of each task waiting on a queue, oldest first (decoded from the Celery messages)."""
        assert self.client is not None
        out = []
        for raw in reversed(self.client.lrange(self.key(queue), 0, -1)):  # pushed on the left, taken from the right
            args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
            out.append(args[0])
        return out

    def idle(self, queue: str) -> bool:
        """Nothing waiting on the queue and nothing delivered but unacknowledged (retries waiting included)."""
        assert self.client is not None
        return self.client.llen(self.key(queue)) == 0 and self.client.hlen(self.key("unacked")) == 0


@pytest.fixture
def broker() -> Iterator[Broker]:
    with redis_namespace(REDIS_URL, socket_timeout=5) as (client, namespace):
        yield Broker(REDIS_URL, namespace, client)
        client.close()


@pytest.fixture
def small_training(tmp_path: Path, demo_rows: list[dict]) -> Path:
    """A small JSONL of the demo tickets (the workers load saved models; this is what they would train on)."""
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in demo_rows[:80]), encoding="utf-8")
    return path


def wait_for(check: Callable[[], Any], what: str, timeout: float = TRIAGED_WITHIN) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


class WorkerProcess:
    """`triage worker` in its own process (the solo pool: one task at a time), logging to a file."""

    def __init__(self, env: dict[str, str], data_dir: Path, queues: str, log: Path) -> None:
        self.env, self.data_dir, self.queues, self.log = env, data_dir, queues, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        cmd = [sys.executable, "-m", "agents.cli.main", "-v", "worker", "--queues", self.queues]
        cmd += ["--data-dir", str(self.data_dir)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        return self

    def ready(self, timeout: float = 120.0) -> WorkerProcess:
        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            return " ready." in self.output()

        wait_for(up, f"worker on {self.queues} ready\n{self.output()[-2000:]}", timeout)
        return self

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def pause(self) -> None:
        """SIGSTOP: the worker does nothing (saves nothing) until `resume`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: nothing is acknowledged, nothing given back, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc, grace=30)  # Celery's warm shutdown


@dataclass
class Deployment:
    """One API (in this process, real app) and its workers (subprocesses) on one database and one broker."""

    tmp_path: Path
    broker: Broker
    database_url: str
    worker_data: Path
    training: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "TRIAGE_BROKER_URL": self.broker.url,
            "TRIAGE_REDIS_NAMESPACE": self.broker.namespace,
            "TRIAGE_DATABASE_URL": self.database_url,
            "TRIAGE_EMBEDDER": "hashing",
            "TRIAGE_POLICY": "classical_only",
            "TRIAGE_TRAINING_DATA": str(self.training),
            "TRIAGE_WORKER_MAX_RETRIES": "2",
            "TRIAGE_WORKER_RETRY_BACKOFF": "0.2",
            "TRIAGE_WORKER_CLAIM_LEASE": "2",
            **more,
        }

    def worker(self, queues: str = FAST, *, start: bool = True, **env: str) -> WorkerProcess:
        name = f"worker{len(self.workers) + 1}-{queues.replace(',', '-')}.log"
        process = WorkerProcess(self.env(**env), self.worker_data, queues, self.tmp_path / name)
        self.workers.append(process)
        return process.start() if start else process

    def settings(self, **more: Any) -> Settings:
        """The settings intake (or a test) sends with."""
        given: dict[str, Any] = {
            "data_dir": self.tmp_path,
            "database_url": self.database_url,
            "embedder": "hashing",
            "policy": "classical_only",
            "broker_url": self.broker.url,
            "redis_namespace": self.broker.namespace,
        }
        return Settings(**{**given, **more})

    def store(self) -> Store:
        return Store.open(self.tmp_path, self.database_url)

    def stop(self) -> None:
        for process in self.workers:
            process.stop()


def deploy(tmp_path: Path, broker: Broker, served_data_dir: Path, small_training: Path) -> Iterator[Deployment]:
    d = Deployment(
        tmp_path,
        broker,
        f"sqlite:///{tmp_path / 'triage.db'}",  # the API's own default file (its data_dir is tmp_path)
        fresh_data_dir(served_data_dir, tmp_path / "worker-data"),
        small_training,
    )
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def deployment(tmp_path: Path, broker: Broker, served_data_dir: Path, small_training: Path) -> Iterator[Deployment]:
    yield from deploy(tmp_path, broker, served_data_dir, small_training)


@pytest.fixture
def rabbit_deployment(tmp_path: Path, served_data_dir: Path, small_training: Path) -> Iterator[Deployment]:
    """The same on the real RabbitMQ (TRIAGE_TEST_AMQP_URL): one vhost, so the queues are shared with any other
    run (a stray task of another run names tickets this database does not hold: a no-op)."""
    where = urlsplit(AMQP_URL)
    try:
        socket.create_connection((where.hostname or "127.0.0.1", where.port or 5672), timeout=1).close()
    except OSError as exc:
        pytest.skip(
            f"no RabbitMQ at {where.hostname}:{where.port or 5672} ({type(exc).__name__}); set TRIAGE_TEST_AMQP_URL"
        )
    broker = Broker(AMQP_URL, f"triage_test_{secrets.token_hex(6)}", None)
    yield from deploy(tmp_path, broker, served_data_dir, small_training)


@pytest.fixture
def queued_api(trained_service, served_answerer, deployment: Deployment) -> Iterator[Api]:
    """The real app with TRIAGE_BROKER_URL set (classical policy: tickets go to the fast queue)."""
    yield from make_api(
        trained_service,
        served_answerer,
        deployment.tmp_path,
        broker_url=deployment.broker.url,
        redis_namespace=deployment.broker.namespace,
    )


def audit_kinds(store: Store, ticket_id: str) -> list[str]:
    return sorted(a["kind"] for a in store.audit_log(ticket_id=ticket_id, limit=500))


def attempts(store: Store, ticket_id: str) -> int:
    with store.read() as session:
        return int(session.scalar(select(TicketRow.attempts).where(TicketRow.id == ticket_id)) or 0)


class LlmGate:
    """An OpenAI-compatible endpoint of our own that holds every chat request until `opened`, then answers 503 at
    once (the engine falls back to classical). /v1/models answers, so a worker's start-up probe passes."""

    def __init__(self) -> None:
        self.seen, self.opened, self.calls = threading.Event(), threading.Event(), 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller was killed while it waited
                    pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "gate-model", "object": "model", "owned_by": "t"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gate.calls += 1
                gate.seen.set()
                gate.opened.wait(120)
                self._json(503, {"error": {"message": "the gate answers nothing useful", "type": "unavailable"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def llm_env(self, folder: Path) -> dict[str, str]:
        """A worker's settings for this LLM, with evidence that it helps classify (else llm_first never calls it)."""
        return {
            "TRIAGE_LLM_EVIDENCE": str(write_evidence(folder / "gate-evidence.json", "gate-model")),
            "TRIAGE_POLICY": "llm_first",
            "TRIAGE_LLM_BASE_URL": self.url,
            "TRIAGE_LLM_MODEL": "gate-model",
            "TRIAGE_LLM_API_KEY": "local",
            "TRIAGE_LLM_TIMEOUT": "120",
        }

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[LlmGate]:
    g = LlmGate()
    try:
        yield g
    finally:
        g.close()


# ---- without worker processes: claims, routing, back-off, intake ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_claim_holds_for_its_lease_is_given_back_and_ends_dead_after_max_attempts(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(make_engine(f"sqlite:///{tmp_path / 't.db'}"), clock=clock, claim_lease=timedelta(seconds=60))
    store.migrate()
    (a, b), _ = store.create([Ticket(title="vpn drops"), Ticket(title="printer jams")])
    first = store.claim_ids([a.id, b.id, "tkt_unknown"], max_attempts=3)
    assert [r.id for r in first.claimed] == sorted([a.id, b.id]) and first.busy == []  # unknown ids: nothing to do
    clock.now += timedelta(seconds=20)
    again = store.claim_ids([a.id], max_attempts=3)  # a duplicate delivery while the first claimer works
    assert again.claimed == [] and again.busy == [a.id] and again.wait == pytest.approx(40.0)
    store.release_ids([a.id])  # the first claimer failed and gives it back: claimable at once
    assert [r.id for r in store.claim_ids([a.id], max_attempts=3).claimed] == [a.id]
    clock.now += timedelta(seconds=61)  # its claimer died: the lease ends
    assert [r.id for r in store.claim_ids([a.id], max_attempts=3).claimed] == [a.id]
    clock.now += timedelta(seconds=61)
    exhausted = store.claim_ids([a.id], max_attempts=3)  # claimed 3 times and never finished: dead
    assert exhausted.claimed == [] and store.get(a.id).status == "dead"
    assert "3 attempts" in (store.get(a.id).error or "")
    assert store.mark_dead({b.id: "ValueError: boom"}) == 1 and store.mark_dead({b.id: "again"}) == 0
    dead_b = store.get(b.id)
    assert (dead_b.status, dead_b.error, dead_b.needs_human) == ("dead", "ValueError: boom", True)
    assert store.revive_dead([a.id, b.id, "tkt_unknown"], actor="test") == sorted([a.id, b.id])
    revived = store.claim_ids([b.id], max_attempts=1)  # a fresh count of attempts, claimable at once
    assert [r.id for r in revived.claimed] == [b.id] and revived.claimed[0].error is None
    assert audit_kinds(store, b.id) == ["dead", "replay"]
    store.close()


def test_a_claim_never_touches_a_ticket_triaged_already(tmp_path: Path, trained_service) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 't.db'}"), claim_lease=timedelta(seconds=60))
    store.migrate()
    (record,), _ = store.create([Ticket(title="VPN drops every ten minutes")])
    claim = store.claim_ids([record.id], max_attempts=3)
    result = trained_service.triage_batch([Ticket(id=record.id, title=record.title)])[0]
    assert store.save_results({record.id: result}) == 1
    store.release_ids([record.id])  # too late to matter: triaged
    assert claim.claimed and store.claim_ids([record.id], max_attempts=3).claimed == []
    assert store.mark_dead({record.id: "late"}) == 0 and store.get(record.id).status == "triaged"
    store.close()


def test_tickets_go_to_the_llm_queue_only_when_the_policy_calls_a_configured_llm(tmp_path: Path) -> None:
    base = {"broker_url": "redis://127.0.0.1:6379/0"}
    assert ticket_queue_name(Settings(policy="classical_only", llm_model="m", **base)) == FAST
    assert ticket_queue_name(Settings(policy="cascade", **base)) == FAST  # no LLM configured: classical
    assert ticket_queue_name(Settings(policy="cascade", llm_model="m", **base)) == FAST  # no evidence: classical
    evidence = tmp_path / "llm_evidence.json"
    write_evidence(evidence, "m")  # the LLM measured as helping category and priority
    assert ticket_queue_name(Settings(policy="cascade", llm_model="m", llm_evidence=evidence, **base)) == LLM
    first = {
        "policy": "llm_first",
        "llm_model": "m",
        "llm_base_url": "http://x:1/v1",
        "data_dir": tmp_path / "d",
        **base,
    }
    assert ticket_queue_name(Settings(**first)) == FAST  # no evidence: llm_first calls no LLM either
    assert ticket_queue_name(Settings(**first, llm_evidence=evidence)) == LLM
    writers = tmp_path / "writers.json"
    write_writers_evidence(writers, "m", {"answer": "helps", "summary": "no evidence"})  # `ask` is not triage
    assert ticket_queue_name(Settings(**first, llm_writers_evidence=writers)) == FAST
    write_writers_evidence(writers, "m", {"reply": "helps"})
    assert ticket_queue_name(Settings(**first, llm_writers_evidence=writers)) == LLM
    assert TicketQueue.from_settings(Settings()) is None  # no broker: in-process, as before


def test_the_back_off_doubles_and_stays_under_half_the_visibility_timeout() -> None:
    settings = Settings(worker_retry_backoff=2.0, worker_retry_backoff_max=300.0, worker_visibility_timeout=100.0)
    waits = [backoff(settings, n, rng=lambda: 0.0) for n in range(8)]
    assert waits[:5] == [2.0, 4.0, 8.0, 16.0, 32.0] and waits[5:] == [50.0, 50.0, 50.0]
    assert longest_wait(settings) == 50.0 and backoff(settings, 1, rng=lambda: 1.0) == 3.0  # jitter: up to -25 %
    assert [restore_every(v) for v in (4, 40, 3600)] == [1, 10, 10]
    app = build_celery(Settings(broker_url="redis://127.0.0.1:6379/0", redis_namespace="ns"))
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["global_keyprefix"] == "ns:celery:"


def test_intake_with_a_broker_answers_202_and_queues_the_ids(queued_api: Api, deployment: Deployment) -> None:
    one = queued_api.client.post("/v1/tickets", json={"title": "VPN drops"}, headers=queued_api.triage)
    assert one.status_code == 202, one.text
    record = one.json()
    assert record["status"] == "received" and record["result"] is None and record["id"].startswith("tkt_")
    batch = {"tickets": [{"title": f"printer {i} jams"} for i in range(40)]}
    many = queued_api.client.post("/v1/tickets/batch", json=batch, headers=queued_api.triage)
    assert many.status_code == 202 and {t["status"] for t in many.json()["tickets"]} == {"received"}
    ids = [t["id"] for t in many.json()["tickets"]]
    assert deployment.broker.waiting(FAST) == [[record["id"]], ids[:32], ids[32:]]  # a task per chunk of 32
    assert deployment.broker.waiting(LLM) == []
    page = queued_api.client.get("/v1/tickets", headers=queued_api.read, params={"status": "received"}).json()
    assert page["total"] == 41
    metrics = queued_api.client.get("/metrics", headers=queued_api.read).text
    assert 'triage_queue_depth{queue="fast"} 3.0' in metrics and 'triage_queue_depth{queue="llm"} 0.0' in metrics


def test_a_broker_that_cannot_be_reached_is_a_503_and_the_next_start_queues_the_ticket(
    trained_service, served_answerer, deployment: Deployment
) -> None:
    down = make_api(
        trained_service, served_answerer, deployment.tmp_path, broker_url=f"redis://127.0.0.1:{closed_port()}/0"
    )
    api = next(down)
    try:
        started = time.monotonic()
        response = api.client.post("/v1/tickets", json={"title": "Outlook not syncing"}, headers=api.triage)
        assert time.monotonic() - started < 10.0
        assert response.status_code == 503 and response.json()["code"] == "queue_unavailable", response.text
        assert int(response.headers["retry-after"]) >= 1 and "stored as received" in response.json()["message"]
        stored = api.client.get("/v1/tickets", headers=api.read, params={"status": "received"}).json()["items"]
        assert len(stored) == 1
    finally:
        down.close()
    up = make_api(
        trained_service,
        served_answerer,
        deployment.tmp_path,
        broker_url=deployment.broker.url,
        redis_namespace=deployment.broker.namespace,
    )
    api = next(up)  # a replica starting on the same database queues what was left received
    try:
        assert deployment.broker.waiting(FAST) == [[stored[0]["id"]]]
        assert api.client.get("/readyz", headers=api.read).json()["recovered_at_start"] == 1
    finally:
        up.close()


# ---- with `triage worker` processes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_posted_ticket_is_triaged_by_a_worker_exactly_once(queued_api: Api, deployment: Deployment) -> None:
    worker = deployment.worker(FAST).ready()
    record = queued_api.client.post(
        "/v1/tickets",
        json={"title": "VPN will not connect", "body": "GlobalConnect says the gateway is unreachable from home"},
        headers=queued_api.triage,
    ).json()
    batch = {"tickets": [{"title": f"printer {i} on floor 2 jams", "body": "paper jam"} for i in range(40)]}
    ids = [
        t["id"]
        for t in queued_api.client.post("/v1/tickets/batch", json=batch, headers=queued_api.triage).json()["tickets"]
    ]

    def get(ticket_id: str) -> dict:
        return queued_api.client.get(f"/v1/tickets/{ticket_id}", headers=queued_api.read).json()

    done = wait_for(lambda: (r := get(record["id"]))["status"] == "triaged" and r, "the posted ticket triaged")
    assert done["team"] == "network" and done["result"]["ticket_id"] == record["id"]
    wait_for(lambda: all(get(i)["status"] == "triaged" for i in ids), "the batch triaged")
    wait_for(lambda: deployment.broker.idle(FAST), "the queue drained")
    store = deployment.store()
    try:
        for ticket_id in [record["id"], *ids]:
            assert audit_kinds(store, ticket_id) == ["triage"] and attempts(store, ticket_id) == 1
    finally:
        store.close()
    received = queued_api.client.get("/v1/tickets", headers=queued_api.read, params={"status": "received"}).json()
    assert received["total"] == 0 and "Traceback" not in worker.output()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_same_task_delivered_again_and_again_triages_once(
    database: str, request: pytest.FixtureRequest, deployment: Deployment
) -> None:
    if database == "postgresql":
        deployment.database_url = str(request.getfixturevalue("pg_url"))
    store = deployment.store()
    try:
        records, _ = store.create([Ticket(title=f"VPN drops again, site {i}") for i in range(3)])
        ids = [r.id for r in records]
        two = [deployment.worker(FAST, start=True), deployment.worker(FAST, start=True)]
        for process in two:
            process.ready()
        queue = TicketQueue(build_celery(deployment.settings()), FAST)
        for _ in range(3):  # every id three times on its own, and once more together, to two workers at once
            for ticket_id in ids:
                queue.enqueue([ticket_id])
        queue.enqueue(ids)
        queue.close()
        wait_for(lambda: all(store.get(i).status == "triaged" for i in ids), "all three triaged")
        wait_for(lambda: deployment.broker.idle(FAST), "every delivery handled (held ones looked at again)")
        for ticket_id in ids:
            assert audit_kinds(store, ticket_id) == ["triage"], ticket_id
    finally:
        store.close()


@pytest.mark.slow
def test_a_worker_killed_mid_task_leaves_the_ticket_to_another_that_triages_it_once(
    deployment: Deployment, gate: LlmGate
) -> None:
    # Redis hands the task on 4 s after its delivery; the dead worker's claim holds for 15 s from the same moment
    short = {
        "TRIAGE_WORKER_VISIBILITY_TIMEOUT": "4",
        "TRIAGE_WORKER_CLAIM_LEASE": "15",
        **gate.llm_env(deployment.tmp_path),
    }
    first = deployment.worker(LLM, **short).ready()
    store = deployment.store()
    try:
        (record,), _ = store.create([Ticket(title="Laptop will not boot", body="black screen after the update")])
        measured = deployment.tmp_path / "gate-evidence.json"  # written by gate.llm_env: the LLM may classify
        queue = TicketQueue.from_settings(
            deployment.settings(policy="llm_first", llm_model="gate-model", llm_evidence=measured)
        )
        assert queue is not None and queue.queue == LLM
        queue.enqueue([record.id])
        queue.close()
        assert gate.seen.wait(60), "the first worker never called the LLM"
        assert store.get(record.id).status == "received" and attempts(store, record.id) == 1  # claimed, mid-task
        first.kill()
        gate.opened.set()  # from now on the LLM fails fast: the second worker's result falls back to classical
        second = deployment.worker(LLM, **short).ready()
        done = wait_for(lambda: (r := store.get(record.id)).status == "triaged" and r, "triaged after the kill")
        assert done.result is not None and attempts(store, record.id) == 2  # redelivered, claimed again
        wait_for(lambda: deployment.broker.idle(LLM), "the redelivered task acknowledged")
        assert audit_kinds(store, record.id).count("triage") == 1
        log = second.output()
        assert "'busy': 1" in log and "'saved': 1" in log  # first found under the lease, looked at again after it
        assert "Traceback" not in log
    finally:
        store.close()


POISON = """CREATE TRIGGER poison BEFORE UPDATE OF status ON tickets
WHEN NEW.status = 'triaged' AND NEW.title LIKE 'POISON%'
BEGIN SELECT RAISE(ABORT, 'poisoned ticket refused by the database'); END"""


@pytest.mark.slow
def test_a_ticket_that_keeps_failing_is_dead_with_its_error_and_replays(
    queued_api: Api, deployment: Deployment
) -> None:
    db = deployment.tmp_path / "triage.db"
    with sqlite3.connect(db) as conn:  # the database itself refuses to commit this one ticket's result
        conn.execute(POISON)
    deployment.worker(FAST).ready()
    batch = {"tickets": [{"title": "VPN drops"}, {"title": "POISON printer jams"}, {"title": "Outlook not syncing"}]}
    posted = queued_api.client.post("/v1/tickets/batch", json=batch, headers=queued_api.triage)
    good_a, poison, good_b = (t["id"] for t in posted.json()["tickets"])  # one task: one chunk of three

    def status(ticket_id: str) -> str:
        return queued_api.client.get(f"/v1/tickets/{ticket_id}", headers=queued_api.read).json()["status"]

    wait_for(lambda: status(poison) == "dead", "the poisoned ticket dead after its retries")
    assert status(good_a) == status(good_b) == "triaged"  # tried alone on the last attempt: the chunk was spared
    dead = queued_api.client.get("/v1/tickets", headers=queued_api.read, params={"status": "dead"}).json()
    assert [t["id"] for t in dead["items"]] == [poison]
    assert "poisoned ticket refused by the database" in dead["items"][0]["error"]
    assert "failed 3 times" in dead["items"][0]["error"] and dead["items"][0]["needs_human"]
    console = queued_api.client.get("/console/queue", headers=queued_api.read, params={"status": "dead"}).text
    assert poison in console and "poisoned ticket refused" in console and 'class="warn"' in console

    with sqlite3.connect(db) as conn:  # the cause is fixed
        conn.execute("DROP TRIGGER poison")
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.cli.main",
            "worker",
            "replay",
            poison,
            good_a,
            "--data-dir",
            str(deployment.tmp_path),
        ],
        env=deployment.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    assert "queued 1 ticket(s)" in replay.stdout and f"{good_a} (triaged)" in replay.stdout
    wait_for(lambda: status(poison) == "triaged", "the replayed ticket triaged")
    store = deployment.store()
    try:
        assert audit_kinds(store, poison) == ["dead", "replay", "triage"]
        assert audit_kinds(store, good_a) == ["triage"]
    finally:
        store.close()


@pytest.mark.slow
def test_the_fast_queue_keeps_flowing_while_the_llm_worker_hangs(
    queued_api: Api, deployment: Deployment, gate: LlmGate
) -> None:
    slow = deployment.worker(LLM, **gate.llm_env(deployment.tmp_path))
    fast = deployment.worker(FAST)
    slow.ready()
    fast.ready()
    store = deployment.store()
    try:
        (stuck,), _ = store.create([Ticket(title="SAP order screen freezes", body="since the update")])
        measured = deployment.tmp_path / "gate-evidence.json"  # written by gate.llm_env: the LLM may classify
        queue = TicketQueue.from_settings(
            deployment.settings(policy="llm_first", llm_model="gate-model", llm_evidence=measured)
        )
        assert queue is not None
        queue.enqueue([stuck.id])
        queue.close()
        assert gate.seen.wait(60), "the llm worker never called the LLM"
        posted = [
            queued_api.client.post("/v1/tickets", json={"title": f"printer {i} jams"}, headers=queued_api.triage)
            for i in range(5)
        ]
        assert {p.status_code for p in posted} == {202}
        ids = [p.json()["id"] for p in posted]
        wait_for(lambda: all(store.get(i).status == "triaged" for i in ids), "fast tickets triaged past a hung LLM")
        assert not gate.opened.is_set() and store.get(stuck.id).status == "received"  # the llm worker still waits
        gate.opened.set()
        wait_for(lambda: store.get(stuck.id).status == "triaged", "the llm ticket triaged once the LLM answers")
        assert gate.calls >= 1 and audit_kinds(store, stuck.id).count("triage") == 1
    finally:
        store.close()


@pytest.mark.slow
def test_reindex_and_digest_run_on_their_queues(deployment: Deployment) -> None:
    index = deployment.worker_data / "index"
    for path in index.iterdir():
        path.unlink()  # gone: the reindex task must build and save it again
    deployment.worker("reindex,digest").ready()  # no ticket queue: it loads no index until asked

    def send(job: str) -> None:
        sent = subprocess.run(
            [sys.executable, "-m", "agents.cli.main", "worker", "send", job],
            env=deployment.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0 and job in sent.stdout, sent.stderr

    send("reindex")
    wait_for(lambda: any(index.iterdir()), "the SOP index rebuilt and saved")
    send("digest")
    wait_for(lambda: (deployment.worker_data / "digests" / "latest-all.md").is_file(), "the digest written")


@pytest.mark.slow
def test_rabbitmq_carries_the_tickets_too(trained_service, served_answerer, rabbit_deployment: Deployment) -> None:
    d = rabbit_deployment
    api_gen = make_api(trained_service, served_answerer, d.tmp_path, broker_url=d.broker.url)
    api = next(api_gen)
    try:
        d.worker(FAST).ready()
        posted = [
            api.client.post("/v1/tickets", json={"title": t}, headers=api.triage) for t in ("VPN drops", "Printer jams")
        ]
        assert [p.status_code for p in posted] == [202, 202]
        ids = [p.json()["id"] for p in posted]
        wait_for(
            lambda: all(
                api.client.get(f"/v1/tickets/{i}", headers=api.read).json()["status"] == "triaged" for i in ids
            ),
            "triaged through RabbitMQ",
        )
        store = d.store()
        try:
            assert all(audit_kinds(store, i) == ["triage"] for i in ids)
        finally:
            store.close()
    finally:
        api_gen.close()
