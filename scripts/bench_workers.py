"""Tickets per second through Celery workers (`triage worker`, solo pool) beside the in-process path, in one run.

The same demo tickets each time, classical policy, a SQLite file and the real Redis. Each repetition stores the
tickets afresh and times from just before the commit of the batch to the last result's commit (its `triaged_at`):

- in-process: the API's path without a broker: the API's engine (the stored tickets' memory kept current in the
  background, as `triage serve` does), chunks of 32 through it, each chunk's results committed;
- the worker phases (--phases: `N` workers on every usable core, `N@C` on the first C cores): the ids queued in
  tasks of 32 (what a batch POST queues), and in tasks of 1 (what single POSTs queue), triaged by worker processes
  started beforehand (their engines loaded, not timed). The workers of a phase split its cores between them (CPU
  affinity, set with `taskset`); each sizes its thread pools from the cores it may use.

Every process keeps at most --memory stored tickets in its memory (TRIAGE_MEMORY_MAX_STORED), so that every arm
searches a memory of the same size, whatever ran before it. Beside tickets/s, each ticket's latency from its commit
as received to its result's commit (p50, p99 over all repetitions), tickets per CPU-second of the processes that
triaged (the workers, or this process in-process: the per-core figure), and the 1-minute load before each arm. The wait
for a batch looks at the database every 0.25 s with one indexed query (the end time is read from the results, not
from the look), so the benchmark takes next to no CPU from the workers. More tickets than the 460 demo tickets
repeat them.

    .venv/bin/python scripts/bench_workers.py --data-dir data --tickets 2000 --repeat 1 --phases 1,2

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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.app import build_engine, watch_node  # noqa: E402
from agents.jsonl import read_jsonl  # noqa: E402
from agents.settings import DEMO_TICKETS, Settings  # noqa: E402
from agents.store.tables import TicketRow  # noqa: E402
from agents.store.tickets import Store, as_utc  # noqa: E402
from agents.types import Ticket  # noqa: E402
from agents.web.desk import as_ticket, chunks  # noqa: E402
from agents.workers.config import FAST, build_celery  # noqa: E402
from agents.workers.queues import TicketQueue  # noqa: E402
from scripts.load_test import cpu_seconds  # noqa: E402

LOOK_EVERY = 0.25  # seconds between looks at the database while a batch is queued


def phase(spec: str) -> tuple[int, int]:
    """`N` (N workers on every usable core) or `N@C` (N workers on the first C usable cores) as (N, C)."""
    workers, _, cores = spec.partition("@")
    return int(workers), int(cores) if cores else len(os.sched_getaffinity(0))


def core_sets(workers: int, cores: int) -> list[list[int]]:
    """The first `cores` usable cores split into `workers` disjoint sets (shared when workers outnumber them)."""
    usable = sorted(os.sched_getaffinity(0))[:cores]
    if workers >= len(usable):
        return [[usable[i % len(usable)]] for i in range(workers)]
    size = len(usable) // workers
    return [usable[i * size : (i + 1) * size] for i in range(workers)]


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds these processes have used, all their threads; a process gone is an error."""
    used = [cpu_seconds(pid) for pid in pids]
    if None in used:
        raise RuntimeError(f"cannot read the CPU time of {pids}: a process is gone")
    return sum(u for u in used if u is not None)


def start_worker(env: dict[str, str], data_dir: Path, log: Path, cores: list[int]) -> subprocess.Popen[bytes]:
    cmd = ["taskset", "-c", ",".join(map(str, cores)), sys.executable, "-m", "agents.cli.main", "-v", "worker"]
    cmd += ["--queues", FAST, "--data-dir", str(data_dir)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.monotonic() + 180
    while " ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc


def finished(store: Store, ids: list[str], started: datetime) -> tuple[float, list[str]]:
    """Seconds from `started` to the last result's commit; every ticket of the batch must be triaged."""
    with store.read() as session:
        done = session.scalar(select(func.count()).where(TicketRow.id.in_(ids), TicketRow.status == "triaged"))
        last = session.scalar(select(func.max(TicketRow.triaged_at)).where(TicketRow.id.in_(ids)))
    if done != len(ids) or last is None:
        raise RuntimeError(f"{len(ids) - (done or 0)} of {len(ids)} tickets were not triaged")
    return (as_utc(last) - started).total_seconds(), ids


def in_process(store: Store, service, tickets: list[Ticket]) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    records, _ = store.create(tickets)
    for part in chunks(records, 32):
        results = service.triage_batch([as_ticket(r) for r in part])
        store.save_results({r.id: res for r, res in zip(part, results, strict=True)})
    return finished(store, [r.id for r in records], started)


def latencies_ms(store: Store, ids: list[str]) -> list[float]:
    """Per ticket, from its commit as received to its result's commit (created_at -> triaged_at)."""
    with store.read() as session:
        rows = session.execute(select(TicketRow.created_at, TicketRow.triaged_at).where(TicketRow.id.in_(ids))).all()
    return [(done - made).total_seconds() * 1000 for made, done in rows if made and done]


def queued(store: Store, queue: TicketQueue, tickets: list[Ticket], per_task: int) -> tuple[float, list[str]]:
    """Queue a batch and wait until no ticket is left `received` (the benchmark's folder holds this batch only)."""
    queue.chunk = per_task
    started = datetime.now(UTC)
    records, _ = store.create(tickets)
    ids = [r.id for r in records]
    queue.enqueue(ids)
    waiting = select(TicketRow.id).where(TicketRow.status == "received").limit(1)  # the status index: microseconds
    while True:
        time.sleep(LOOK_EVERY)
        with store.read() as session:
            if session.scalar(waiting) is None:
                return finished(store, ids, started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a data folder with trained models and an SOP index")
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", type=int, default=2000, help="stored tickets each process keeps in its memory")
    parser.add_argument(
        "--phases", default="1,1@1,2", help="worker phases: N (N workers on all usable cores) or N@C (on C cores)"
    )
    parser.add_argument("--redis", default=os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    namespace = f"bench_{secrets.token_hex(4)}"
    for name in ("models", "index"):
        shutil.copytree(Path(args.data_dir) / name, work / name)
    database = f"sqlite:///{work / 'triage.db'}"
    settings = Settings(
        data_dir=work,
        policy="classical_only",
        broker_url=args.redis,
        redis_namespace=namespace,
        database_url=database,
        memory_max_stored=args.memory,
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TRIAGE_POLICY": "classical_only",
        "TRIAGE_EMBEDDER": settings.embedder,
        "TRIAGE_BROKER_URL": args.redis,
        "TRIAGE_REDIS_NAMESPACE": namespace,
        "TRIAGE_DATABASE_URL": database,
        "TRIAGE_MEMORY_MAX_STORED": str(args.memory),
    }
    rows = read_jsonl(DEMO_TICKETS)
    picked = [rows[i % len(rows)] for i in range(args.tickets)]  # the demo tickets again past the 460th
    tickets = [Ticket(title=r.get("title", ""), body=r.get("body", "")) for r in picked]
    store = Store.open(work, database)
    engine = build_engine(settings)
    live = engine.live
    if live is None:
        raise RuntimeError("the engine has no live service")
    watch = watch_node(settings, live, engine.stored, store)  # the memory kept current, as in `triage serve`
    queue = TicketQueue(build_celery(settings), FAST)
    procs: list[subprocess.Popen[bytes]] = []
    figures: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    loads: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {}

    def record(name: str, run: tuple[float, list[str]], load: float, cpu: float) -> None:
        seconds, ids = run
        lat = latencies_ms(store, ids)
        figures.setdefault(name, []).append(len(tickets) / seconds)
        waits.setdefault(name, []).extend(lat)
        loads.setdefault(name, []).append(load)
        per_cpu.setdefault(name, []).append(len(tickets) / cpu)
        p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
        print(
            f"{name:30s} {len(tickets) / seconds:7.1f} tickets/s {len(tickets) / cpu:6.1f} per CPU-second"
            f"  latency p50 {p50:.0f} ms p99 {p99:.0f} ms  (load {load:.2f} before)",
            flush=True,
        )

    def measured(name: str, run: Callable[[], tuple[float, list[str]]], pids: list[int]) -> None:
        """Run one arm; its CPU is that of `pids` (the workers), or of this process (in-process)."""
        load = os.getloadavg()[0]
        cpu_before = cpu_of(pids) if pids else time.process_time()
        result = run()
        cpu = (cpu_of(pids) if pids else time.process_time()) - cpu_before
        record(name, result, load, cpu)

    def stop_workers() -> None:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        procs.clear()

    try:
        in_process(store, live.current, tickets)  # warm-up, not counted
        for spec in args.phases.split(","):
            workers, cores = phase(spec)
            stop_workers()  # each phase's workers on their own share of the cores
            for i, cpus in enumerate(core_sets(workers, cores)):
                procs.append(start_worker(env, work, work / f"worker{spec}-{i + 1}.log", cpus))
            queued(store, queue, tickets, 32)  # warm-up of the new workers, not counted
            pids = [p.pid for p in procs]
            for _ in range(args.repeat):
                measured(f"in-process ({spec} run)", lambda: in_process(store, live.current, tickets), [])
                measured(f"{workers} worker(s)@{cores}, tasks of 32", lambda: queued(store, queue, tickets, 32), pids)
                measured(f"{workers} worker(s)@{cores}, tasks of 1", lambda: queued(store, queue, tickets, 1), pids)
    finally:
        stop_workers()
        watch.stop()
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
    load_before = {name: round(statistics.median(v), 2) for name, v in loads.items()}
    cpu = {name: round(statistics.median(v), 1) for name, v in per_cpu.items()}
    head = {"tickets": len(tickets), "repeat": args.repeat, "embedder": settings.embedder, "memory": args.memory}
    out = {**head, **summary, "per_cpu_second": cpu, "latency_commit_to_result": latency, "load": load_before}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
