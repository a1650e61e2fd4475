"""POST /v1/triage at 1/8/32 clients: one server on SQLite beside two replicas on PostgreSQL + Redis, interleaved.

    .venv/bin/python scripts/bench_replicas.py --template DATA_DIR --repeat 3 --seconds 10 --json out.json

A: one `triage serve` on its own SQLite file. B: two `triage serve` replicas on one fresh PostgreSQL database
(dropped after) with TRIAGE_REDIS_URL (shared rate limits), the client sending round-robin over the two ports.
All three servers run for the whole run; the arms are interleaved per repetition and level; medians of the repeats.
The template needs trained models and an index (`triage train --data-dir`, then one `triage serve` start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.load_test import DEMO, run_level  # noqa: E402
from tests.serverkit import ServerProcess, fresh_data_dir  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMITS = {"TRIAGE_RATE_LIMIT_PER_SECOND": "1000000", "TRIAGE_RATE_LIMIT_BURST": "1000000"}


def pg_admin(statement: sql.Composed) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(statement)


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the repetitions; errors summed."""
    row: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms", "requests")}
    row["errors"] = sum(sum(r["errors"].values()) for r in runs)
    row["load_start"] = [r["load_start"] for r in runs]
    row["load_end"] = [r["load_end"] for r in runs]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path, required=True, help="data folder with models/ and index/")
    parser.add_argument("--embedder", default="minilm-int8")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000, help="at most this many per level and arm")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most this long per level and arm")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    tickets = [{"title": r["title"], "body": r["body"]} for r in rows]
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    database = f"bench_replicas_{secrets.token_hex(4)}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    namespace = f"bench_{secrets.token_hex(4)}"
    base = {"TRIAGE_EMBEDDER": args.embedder, **LIMITS}
    servers: list[ServerProcess] = []
    pg_admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        single = ServerProcess(fresh_data_dir(args.template, work / "a"), work / "a.log", base)
        servers.append(single.start(timeout=300))
        shared = {
            **base,
            "TRIAGE_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "TRIAGE_REDIS_URL": redis_url,
            "TRIAGE_REDIS_NAMESPACE": namespace,
        }
        replicas = []
        for name in ("b1", "b2"):  # one after the other: the first migrates the database and prints the key
            replica = ServerProcess(fresh_data_dir(args.template, work / name), work / f"{name}.log", shared)
            servers.append(replica.start(timeout=300))
            replicas.append(replica)
        arms: dict[str, tuple[str | list[str], str]] = {
            "A": (single.url, single.printed_keys()[0]),
            "B": ([r.url for r in replicas], replicas[0].printed_keys()[0]),
        }
        for url, key in arms.values():
            asyncio.run(run_level(url, key, tickets, 4, args.warmup, 60))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rep in range(args.repeat):
            for level in args.concurrency:
                for arm, (url, key) in arms.items():
                    before = os.getloadavg()[0]
                    result = asyncio.run(run_level(url, key, tickets, level, args.requests, args.seconds))
                    result.update(load_start=round(before, 2), load_end=round(os.getloadavg()[0], 2))
                    runs.setdefault((arm, level), []).append(result)
                    print(f"rep {rep + 1} {arm} c={level}: {json.dumps(result)}", flush=True)
    finally:
        for server in servers:
            server.stop()
        pg_admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        client = redis.Redis.from_url(redis_url)
        for k in client.scan_iter(f"{namespace}:*"):
            client.delete(k)
        client.close()

    table = {f"{arm}/{level}": median_row(r) for (arm, level), r in runs.items()}
    print(f"\n{os.cpu_count()} CPUs, client and servers on the same machine, medians of {args.repeat}\n")
    print("| arm | clients | requests/s | p50 ms | p99 ms | errors | load 1 min start -> end (each rep) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in table.items():
        arm, level = name.split("/")
        loads = ", ".join(f"{s} -> {e}" for s, e in zip(r["load_start"], r["load_end"], strict=True))
        print(f"| {arm} | {level} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {loads} |")
    print("\n| clients | B/A requests/s | B/A p99 |\n|---:|---:|---:|")
    for level in args.concurrency:
        a, b = table[f"A/{level}"], table[f"B/{level}"]
        print(f"| {level} | {b['rps'] / a['rps']:.2f} | {b['p99_ms'] / a['p99_ms']:.2f} |")
    if args.json:
        raw = {f"{arm}/{level}": r for (arm, level), r in runs.items()}
        args.json.write_text(json.dumps({"medians": table, "runs": raw}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
