"""Hot swap and shared ticket memory, measured: swap time under load, memory rebuild time, a peer's staleness.

    .venv/bin/python scripts/bench_hot_swap.py swap --template DATA_DIR --promotes 5 --json swap.json
    .venv/bin/python scripts/bench_hot_swap.py memory --history demo --repeat 3 --json memory-demo.json
    .venv/bin/python scripts/bench_hot_swap.py memory --history synthetic --tickets 20000 --repeat 1 --json m20k.json
    .venv/bin/python scripts/bench_hot_swap.py staleness --template DATA_DIR --tickets 5 --json stale.json

swap: two `triage serve` replicas on one copy of DATA_DIR (one SQLite file, one models folder; DATA_DIR holds at
least two model versions and the SOP index), clients sending demo tickets to both the whole time; `triage models
promote` alternates between the two newest versions; for each promote, the seconds from the pointer's move (its
updated_at) until each replica's GET /v1/models names the version. memory: StoredMemorySync's first look (read,
embed, add) over a stored history, then a look with nothing new, then one with 10 new tickets. staleness: two
replicas on one fresh PostgreSQL database; a ticket stored on one, the seconds until the other finds it as a duplicate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if not (REPO / "agents").is_dir():
    REPO = Path.cwd()
sys.path.insert(0, str(REPO))

from agents.jsonl import read_jsonl  # noqa: E402
from agents.settings import DEMO_TICKETS  # noqa: E402
from tests.serverkit import ServerProcess  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMITS = {"TRIAGE_RATE_LIMIT_PER_SECOND": "1000000", "TRIAGE_RATE_LIMIT_BURST": "1000000"}


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


# ---- swap --------------------------------------------------------------------------------------------------------


class Clients:
    """`per_replica` clients per replica, each sending demo tickets back to back (every fifth one stored)."""

    def __init__(self, urls: list[str], key: str, per_replica: int) -> None:
        self.urls, self.key = urls * per_replica, key
        self.stop = threading.Event()
        self.outcomes: list[int | str] = []
        self.lock = threading.Lock()
        self.rows = read_jsonl(DEMO_TICKETS)
        self.threads = [threading.Thread(target=self._run, args=(u, i), daemon=True) for i, u in enumerate(self.urls)]

    def start(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, url: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers={"X-API-Key": self.key}, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                row = rng.choice(self.rows)
                path = "/v1/tickets" if n % 5 == 0 else "/v1/triage"
                try:
                    outcome: int | str = client.post(
                        path, json={"title": row["title"], "body": row["body"]}
                    ).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self.lock:
                    self.outcomes.append(outcome)

    def finish(self) -> dict[str, int]:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        return counts


def served(server: ServerProcess, key: str) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": key}, timeout=30).json()["version"])


def cmd_swap(args: argparse.Namespace) -> dict[str, Any]:
    from agents.models.versions import VersionStore

    work = Path(tempfile.mkdtemp(prefix="bench_swap_"))
    data = work / "data"
    shutil.copytree(args.template, data, ignore=shutil.ignore_patterns("triage.db*"))
    ids = VersionStore(data / "models").ids()[-2:]
    env = {"TRIAGE_EMBEDDER": args.embedder, "TRIAGE_MODELS_POLL": str(args.poll), **LIMITS}
    cli_env = {**os.environ, "TRIAGE_EMBEDDER": args.embedder}
    servers = [ServerProcess(data, work / "a.log", env).start(timeout=600)]
    (key,) = servers[0].printed_keys()
    servers.append(ServerProcess(data, work / "b.log", env).start(timeout=600))
    promotes: list[dict[str, Any]] = []
    clients = Clients([s.url for s in servers], key, args.clients).start()
    try:
        time.sleep(args.settle)
        for i in range(args.promotes):
            target = ids[i % 2] if served(servers[0], key)["loaded"] != ids[i % 2] else ids[(i + 1) % 2]
            started = time.monotonic()
            cmd = [sys.executable, "-m", "agents.cli.main", "models", "promote", target, "--data-dir", str(data)]
            subprocess.run(cmd, check=True, env=cli_env, cwd=REPO, capture_output=True)
            exited = time.monotonic()
            pointer = json.loads((data / "models" / "current.json").read_text(encoding="utf-8"))
            moved = datetime.fromisoformat(pointer["updated_at"]).timestamp()  # the promote's clock, this machine
            seen: dict[int, float] = {}
            while len(seen) < len(servers):
                for j, server in enumerate(servers):
                    if j not in seen and served(server, key)["loaded"] == target:
                        seen[j] = time.time() - moved
                if time.monotonic() - exited > 120:
                    raise SystemExit(f"promote {i + 1}: not every replica serves {target} after 120 s: {seen}")
                time.sleep(0.02)
            loads = [served(s, key)["load_seconds"] for s in servers]
            promotes.append(
                {
                    "version": target,
                    "command_seconds": round(exited - started, 3),
                    "seen_seconds": [round(seen[j], 3) for j in range(len(servers))],
                    "both_seconds": round(max(seen.values()), 3),
                    "load_seconds": loads,
                    "load_avg": load_avg(),
                }
            )
            print(json.dumps(promotes[-1]), flush=True)
            time.sleep(args.settle)
    finally:
        outcomes = clients.finish()
        for server in servers:
            server.stop()
    failed = sum(n for code, n in outcomes.items() if code not in ("200", "201"))
    return {
        "promotes": promotes,
        "median_both_seconds": statistics.median(p["both_seconds"] for p in promotes),
        "median_load_seconds": statistics.median(x for p in promotes for x in p["load_seconds"]),
        "median_command_seconds": statistics.median(p["command_seconds"] for p in promotes),
        "requests": sum(outcomes.values()),
        "failed_requests": failed,
        "outcomes": outcomes,
        "poll_seconds": args.poll,
    }


# ---- memory ------------------------------------------------------------------------------------------------------


def synthetic_history(store: Any, n: int) -> int:
    """`n` triaged tickets from the demo tickets' text (each made unique), stamped over the last 365 days."""
    from agents.store.rows import new_ticket_id
    from agents.store.tables import TicketRow

    rows, now, rng = read_jsonl(DEMO_TICKETS), datetime.now(UTC), random.Random(7)
    for start in range(0, n, 2000):
        batch = []
        for i in range(start, min(n, start + 2000)):
            row = rows[i % len(rows)]
            at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
            batch.append(
                TicketRow(
                    id=new_ticket_id(),
                    status="triaged",
                    title=f"{row['title']} (case {i})",
                    body=row["body"],
                    channel="api",
                    meta={},
                    team=row["team"],
                    category=row["category"],
                    priority=row["priority"],
                    needs_human=False,
                    reviewed=False,
                    attempts=1,
                    created_at=at,
                    triaged_at=at,
                    updated_at=at,
                )
            )
        with store.write() as session:
            session.add_all(batch)
    return n


def demo_history(store: Any) -> int:
    """`triage demo seed --no-triage`'s history (14 days, seed 7), ending now."""
    from agents.digest.demo_history import DemoHistory
    from kb.loader import load_kb

    kb = load_kb(REPO / "kb")
    return int(
        DemoHistory(read_jsonl(DEMO_TICKETS), kb, days=14, per_day=40.0, seed=7).seed(store, datetime.now(UTC))[
            "tickets"
        ]
    )


def cmd_memory(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    from agents.models.stored_memory import StoredMemorySync
    from agents.similar import TicketMemory
    from agents.store.tables import TicketRow
    from agents.store.tickets import Store
    from agents.types import Ticket
    from retrieval.factory import make_embedder

    name = f"bench_memory_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    if args.database == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    else:
        url = f"sqlite:///{work / 'triage.db'}"
    store = Store.open(work, url)
    try:
        started = time.perf_counter()
        stored = demo_history(store) if args.history == "demo" else synthetic_history(store, args.tickets)
        seeded = round(time.perf_counter() - started, 2)
        embedder = make_embedder(args.embedder)
        embedder.embed(["warm up"])
        runs = []
        for rep in range(args.repeat):
            memory = TicketMemory(embedder.dim)
            sync = StoredMemorySync(store, embedder, memory, max_tickets=args.max_stored)
            rss_before, load_before = rss_mb(), load_avg()
            t = time.perf_counter()
            added = sync.refresh()
            first = time.perf_counter() - t
            rss_after = rss_mb()
            idle = []
            for _ in range(5):
                t = time.perf_counter()
                sync.refresh()
                idle.append(time.perf_counter() - t)
            records, _ = store.create([Ticket(title=f"new ticket {rep}-{i}", body="printer jams") for i in range(10)])
            with store.write() as session:  # triaged, as a replica's save_results stamps them
                for r in records:
                    row = session.get(TicketRow, r.id)
                    row.status, row.updated_at = "triaged", datetime.now(UTC)
            t = time.perf_counter()
            new = sync.refresh()
            ten = time.perf_counter() - t
            runs.append(
                {
                    "first_look_seconds": round(first, 3),
                    "added": added,
                    "idle_look_ms_median": round(statistics.median(idle) * 1000, 2),
                    "ten_new_look_ms": round(ten * 1000, 2),
                    "ten_new_added": new,
                    "vector_bytes": memory.nbytes,
                    "in_memory": len(memory),
                    "rss_growth_mb": round(rss_after - rss_before, 1),
                    "load_avg": [load_before, load_avg()],
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    finally:
        store.close()
        if args.database == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        shutil.rmtree(work, ignore_errors=True)
    first = statistics.median(r["first_look_seconds"] for r in runs)
    return {
        "history": args.history,
        "database": args.database,
        "embedder": embedder.name,
        "stored_tickets": stored,
        "seed_seconds": seeded,
        "runs": runs,
        "median_first_look_seconds": first,
        "tickets_per_second": round(runs[0]["added"] / first, 1) if first else None,
        "vector_mb_per_100k": round(runs[0]["vector_bytes"] / runs[0]["in_memory"] * 100_000 / 1e6, 1),
        "rss_mb_per_100k": round(runs[0]["rss_growth_mb"] / max(1, runs[0]["added"]) * 100_000, 1),
    }


# ---- staleness ---------------------------------------------------------------------------------------------------


def cmd_staleness(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    name = f"bench_stale_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    work = Path(tempfile.mkdtemp(prefix="bench_stale_"))
    env = {
        "TRIAGE_EMBEDDER": args.embedder,
        "TRIAGE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        "TRIAGE_MEMORY_POLL": str(args.poll),
        **LIMITS,
    }
    servers: list[ServerProcess] = []
    delays = []
    try:
        for side in ("a", "b"):
            data = work / side
            shutil.copytree(args.template, data, ignore=shutil.ignore_patterns("triage.db*"))
            servers.append(ServerProcess(data, work / f"{side}.log", env).start(timeout=600))
            if side == "a":
                (key,) = servers[0].printed_keys()
        headers = {"X-API-Key": key}
        rng = random.Random(11)
        for i in range(args.tickets):
            time.sleep(rng.uniform(0, args.poll))  # at a random moment of b's poll cycle
            ticket = {"title": f"Badge reader {secrets.token_hex(3)} at gate {i}", "body": "It beeps red at me."}
            reply = httpx.post(f"{servers[0].url}/v1/tickets", json=ticket, headers=headers, timeout=60)
            stored_at, ticket_id = time.monotonic(), reply.json()["id"]
            while True:
                found = httpx.post(f"{servers[1].url}/v1/triage", json=ticket, headers=headers, timeout=60).json()
                if found["possible_duplicate_of"] == ticket_id:
                    break
                if time.monotonic() - stored_at > 120:
                    raise SystemExit(f"ticket {i}: not found on b after 120 s")
                time.sleep(0.05)
            delays.append(round(time.monotonic() - stored_at, 3))
            print(f"ticket {i}: found on b after {delays[-1]} s", flush=True)
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return {"poll_seconds": args.poll, "delays": delays, "median": statistics.median(delays), "max": max(delays)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("swap")
    p.add_argument("--template", type=Path, required=True)
    p.add_argument("--promotes", type=int, default=5)
    p.add_argument("--poll", type=float, default=5.0, help="TRIAGE_MODELS_POLL of the replicas")
    p.add_argument("--clients", type=int, default=2, help="clients per replica")
    p.add_argument("--settle", type=float, default=3.0, help="seconds of load before and after each promote")
    p = sub.add_parser("memory")
    p.add_argument("--history", choices=["demo", "synthetic"], default="demo")
    p.add_argument("--tickets", type=int, default=20000, help="synthetic history size")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--max-stored", type=int, default=100_000)
    p = sub.add_parser("staleness")
    p.add_argument("--template", type=Path, required=True)
    p.add_argument("--tickets", type=int, default=5)
    p.add_argument("--poll", type=float, default=5.0, help="TRIAGE_MEMORY_POLL of the replicas")
    for p in sub.choices.values():
        p.add_argument("--embedder", default="minilm-int8")
        p.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    out = {"swap": cmd_swap, "memory": cmd_memory, "staleness": cmd_staleness}[args.what](args)
    out = {"started": started.isoformat(timespec="seconds"), "load_avg_end": load_avg(), **out}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
