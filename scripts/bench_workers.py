"""Tickets per second through Celery workers (`triage worker`, solo pool) beside the in-process path, in one run.

The same demo tickets each time, classical policy, a SQLite file and the real Redis. Each repetition stores the
tickets afresh and times from the commit of the batch to the last result committed:

- in-process: the API's path without a broker (chunks of 32 through the engine, each chunk's results committed);
- 1 worker, 2 workers: the ids queued in tasks of 32 (what a batch POST queues), and in tasks of 1 (what single
  POSTs queue), triaged by worker processes started beforehand (their engines loaded, not timed).

Beside tickets/s, each ticket's latency from its commit as received to its result's commit (p50, p99 over all
repetitions). More tickets than the 460 demo tickets repeat them.

    .venv/bin/python scripts/bench_workers.py --data-dir data --tickets 2000 --repeat 1

The data folder needs trained models and an index for the embedder (a first `triage serve` makes them); the
script copies them to a temporary folder and never writes to it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.app import build_service  # noqa: E402
from agents.jsonl import read_jsonl  # noqa: E402
from agents.settings import DEMO_TICKETS, Settings  # noqa: E402
from agents.store.tables import TicketRow  # noqa: E402
from agents.store.tickets import Store  # noqa: E402
from agents.types import Ticket  # noqa: E402
from agents.web.desk import as_ticket, chunks  # noqa: E402
from agents.workers.config import FAST, build_celery  # noqa: E402
from agents.workers.queues import TicketQueue  # noqa: E402


def start_worker(env: dict[str, str], data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "agents.cli.main", "-v", "worker", "--queues", FAST, "--data-dir", str(data_dir)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.monotonic() + 180
    while " ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc


def in_process(store: Store, service, tickets: list[Ticket]) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    records, _ = store.create(tickets)
    for part in chunks(records, 32):
        results = service.triage_batch([as_ticket(r) for r in part])
        store.save_results({r.id: res for r, res in zip(part, results, strict=True)})
    return time.perf_counter() - started, [r.id for r in records]


def latencies_ms(store: Store, ids: list[str]) -> list[float]:
    """Per ticket, from its commit as received to its result's commit (created_at -> triaged_at)."""
    with store.read() as session:
        rows = session.execute(select(TicketRow.created_at, TicketRow.triaged_at).where(TicketRow.id.in_(ids))).all()
    return [(done - made).total_seconds() * 1000 for made, done in rows if made and done]


def queued(store: Store, queue: TicketQueue, tickets: list[Ticket], per_task: int) -> tuple[float, list[str]]:
    queue.chunk = per_task
    started = time.perf_counter()
    records, _ = store.create(tickets)
    ids = [r.id for r in records]
    queue.enqueue(ids)
    while True:
        with store.read() as session:
            left = session.scalar(select(func.count()).where(TicketRow.id.in_(ids), TicketRow.status == "received"))
        if not left:
            return time.perf_counter() - started, ids
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a data folder with trained models and an SOP index")
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    namespace = f"bench_{secrets.token_hex(4)}"
    for name in ("models", "index"):
        shutil.copytree(Path(args.data_dir) / name, work / name)
    settings = Settings(data_dir=work, policy="classical_only", broker_url=args.redis, redis_namespace=namespace)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TRIAGE_POLICY": "classical_only",
        "TRIAGE_EMBEDDER": settings.embedder,
        "TRIAGE_BROKER_URL": args.redis,
        "TRIAGE_REDIS_NAMESPACE": namespace,
        "TRIAGE_DATABASE_URL": f"sqlite:///{work / 'triage.db'}",
    }
    rows = read_jsonl(DEMO_TICKETS)
    picked = [rows[i % len(rows)] for i in range(args.tickets)]  # the demo tickets again past the 460th
    tickets = [Ticket(title=r.get("title", ""), body=r.get("body", "")) for r in picked]
    store = Store.open(work, env["TRIAGE_DATABASE_URL"])
    service = build_service(settings)
    queue = TicketQueue(build_celery(settings), FAST)
    procs: list[subprocess.Popen[bytes]] = []
    figures: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}

    def record(name: str, run: tuple[float, list[str]]) -> None:
        seconds, ids = run
        lat = latencies_ms(store, ids)
        figures.setdefault(name, []).append(len(tickets) / seconds)
        waits.setdefault(name, []).extend(lat)
        p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
        print(
            f"{name:28s} {len(tickets) / seconds:7.1f} tickets/s  latency p50 {p50:.0f} ms p99 {p99:.0f} ms", flush=True
        )

    try:
        in_process(store, service, tickets)  # warm-up, not counted
        for workers in (1, 2):
            while len(procs) < workers:
                procs.append(start_worker(env, work, work / f"worker{len(procs) + 1}.log"))
            queued(store, queue, tickets, 32)  # warm-up of the new worker, not counted
            for _ in range(args.repeat):
                record(f"in-process ({workers}w run)", in_process(store, service, tickets))
                record(f"{workers} worker(s), tasks of 32", queued(store, queue, tickets, 32))
                record(f"{workers} worker(s), tasks of 1", queued(store, queue, tickets, 1))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        queue.close()
        store.close()
        client = redis.Redis.from_url(args.redis)
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        shutil.rmtree(work, ignore_errors=True)
    summary = {name: round(statistics.median(values), 1) for name, values in figures.items()}
    latency = {
        name: {"p50_ms": round(statistics.median(v)), "p99_ms": round(statistics.quantiles(v, n=100)[98])}
        for name, v in waits.items()
    }
    figures_out = {"tickets": len(tickets), "repeat": args.repeat, "embedder": settings.embedder, **summary}
    print(json.dumps({**figures_out, "latency_commit_to_result": latency}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
