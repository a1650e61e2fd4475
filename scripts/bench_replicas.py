"""POST /v1/triage at 1/8/32 clients: a plain FastAPI echo, one server on SQLite and two replicas on PostgreSQL +
Redis (and optionally single servers running other checkouts' code), interleaved in one run.

    .venv/bin/python scripts/bench_replicas.py --template DATA_DIR --repeat 3 --seconds 10 --json out.json \
        [--tree before=/tmp/scale-before] [--arms echo before A B]

echo: scripts/echo_app.py, uvicorn started as `triage serve` starts it, one route that validates the ticket body
(the framework's ceiling on this machine). A: one `triage serve` on its own SQLite file. `--tree NAME=DIR` adds an
arm NAME: the same as A, run from the code in DIR (e.g. `git archive HEAD | tar -x -C DIR`), for a before/after.
B: two `triage serve` replicas on one fresh PostgreSQL database (dropped after) with TRIAGE_REDIS_URL (shared rate
limits), the client sending round-robin over the two ports. Every server runs for the whole run; the arms are
interleaved per repetition and level; medians of the repeats, with each arm's server CPU ms per request (from
/proc, all its processes' threads), the load client's own CPU ms per request (it runs on the same cores) and the
1-minute load before and after each arm's level.
The template needs trained models and an index (`triage train --data-dir`, then one `triage serve` start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.load_test import DEMO, cpu_seconds, run_level  # noqa: E402
from tests.serverkit import ServerProcess, free_port, fresh_data_dir, stop_process, wait_ready  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMITS = {"TRIAGE_RATE_LIMIT_PER_SECOND": "1000000", "TRIAGE_RATE_LIMIT_BURST": "1000000"}
ARMS = ("echo", "A", "B")


def pg_admin(statement: Any) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(statement)


def start_echo(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """scripts/echo_app.py on a free loopback port, once it answers."""
    port = free_port()
    with open(log, "ab") as out:
        cmd = [sys.executable, str(REPO / "scripts" / "echo_app.py"), "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, log, 60, "echo app")
    return proc, url


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each figure over the repetitions; errors summed."""
    keys = ("rps", "p50_ms", "p99_ms", "requests", "server_cpu_ms", "client_cpu_ms")
    row: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
    row["errors"] = sum(sum(r["errors"].values()) for r in runs)
    row["load_start"] = [r["load_start"] for r in runs]
    row["load_end"] = [r["load_end"] for r in runs]
    return row


def print_tables(table: dict[str, dict[str, Any]], arms: list[str], levels: list[int], repeat: int) -> None:
    print(f"\n{os.cpu_count()} CPUs, client and servers on the same machine, medians of {repeat}\n")
    print(
        "| arm | clients | requests/s | p50 ms | p99 ms | server CPU ms/req | client CPU ms/req | errors | load 1 min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for level in levels:
        for arm in arms:
            r = table[f"{arm}/{level}"]
            loads = ", ".join(f"{s} -> {e}" for s, e in zip(r["load_start"], r["load_end"], strict=True))
            print(
                f"| {arm} | {level} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_ms']} | "
                f"{r['client_cpu_ms']} | {r['errors']} | {loads} |"
            )
    if "echo" in arms:
        others = [a for a in arms if a != "echo"]
        print("\n| clients | " + " | ".join(f"{a}/echo requests/s" for a in others) + " |")
        print("|---:|" + "---:|" * len(others))
        for level in levels:
            echo = table[f"echo/{level}"]["rps"]
            cells = " | ".join(f"{table[f'{a}/{level}']['rps'] / echo:.2f}" for a in others)
            print(f"| {level} | {cells} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path, required=True, help="data folder with models/ and index/")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help=f"of {', '.join(ARMS)} and the --tree names")
    parser.add_argument("--tree", action="append", default=[], help="NAME=DIR: an arm running DIR's code")
    parser.add_argument("--embedder", default="minilm-int8")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000, help="at most this many per level and arm")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most this long per level and arm")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trees = {name: Path(path) for name, _, path in (t.partition("=") for t in args.tree)}
    if unknown := set(args.arms) - set(ARMS) - set(trees):
        parser.error(f"unknown arm(s) {sorted(unknown)}: name other checkouts with --tree NAME=DIR")

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    tickets = [{"title": r["title"], "body": r["body"]} for r in rows]
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    database = f"bench_replicas_{secrets.token_hex(4)}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    namespace = f"bench_{secrets.token_hex(4)}"
    base = {"TRIAGE_EMBEDDER": args.embedder, **LIMITS}
    servers: list[ServerProcess] = []
    echo_proc: subprocess.Popen[bytes] | None = None
    # per arm: the URL(s), the API key, and the pids whose CPU time is the arm's
    arms: dict[str, tuple[str | list[str], str, list[int]]] = {}
    if "B" in args.arms:
        from psycopg import sql

        pg_admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        if "echo" in args.arms:
            echo_proc, echo_url = start_echo(work / "echo.log")
            arms["echo"] = (echo_url, "", [echo_proc.pid])
        for arm, cwd in [*trees.items(), ("A", None)]:
            if arm in args.arms:
                single = ServerProcess(fresh_data_dir(args.template, work / arm), work / f"{arm}.log", base, cwd=cwd)
                servers.append(single.start(timeout=300))
                assert single.proc is not None
                arms[arm] = (single.url, single.printed_keys()[0], [single.proc.pid])
        if "B" in args.arms:
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
            pids = [r.proc.pid for r in replicas if r.proc is not None]
            arms["B"] = ([r.url for r in replicas], replicas[0].printed_keys()[0], pids)
        arms = {a: arms[a] for a in args.arms}  # the order asked for
        for url, key, _ in arms.values():
            asyncio.run(run_level(url, key, tickets, 4, args.warmup, 60))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rep in range(args.repeat):
            for level in args.concurrency:
                for arm, (url, key, pids) in arms.items():
                    before, cpu = os.getloadavg()[0], sum(cpu_seconds(p) or 0.0 for p in pids)
                    client = time.process_time()
                    result = asyncio.run(run_level(url, key, tickets, level, args.requests, args.seconds))
                    client, cpu = time.process_time() - client, sum(cpu_seconds(p) or 0.0 for p in pids) - cpu
                    done = max(1, result["requests"])
                    result.update(
                        load_start=round(before, 2),
                        load_end=round(os.getloadavg()[0], 2),
                        server_cpu_ms=round(cpu * 1000 / done, 2),
                        client_cpu_ms=round(client * 1000 / done, 2),
                    )
                    runs.setdefault((arm, level), []).append(result)
                    print(f"rep {rep + 1} {arm} c={level}: {json.dumps(result)}", flush=True)
    finally:
        for server in servers:
            server.stop()
        stop_process(echo_proc)
        if "B" in args.arms:
            import redis
            from psycopg import sql

            pg_admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            keys = redis.Redis.from_url(redis_url)
            for k in keys.scan_iter(f"{namespace}:*"):
                keys.delete(k)
            keys.close()

    table = {f"{arm}/{level}": median_row(r) for (arm, level), r in runs.items()}
    print_tables(table, list(arms), args.concurrency, args.repeat)
    if args.json:
        raw = {f"{arm}/{level}": r for (arm, level), r in runs.items()}
        args.json.write_text(json.dumps({"medians": table, "runs": raw}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
