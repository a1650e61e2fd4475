"""Load test of `POST /v1/triage` on loopback: requests/s and p50/p99 latency at several concurrency levels.

Starts `triage serve` in a subprocess (or uses --url and --key of a running server), sends demo tickets from
an async httpx client, bounded by --requests per level and --seconds per level, and prints a Markdown table
(and JSON with --json). Example:

    .venv/bin/python scripts/load_test.py --data-dir data --concurrency 1 8 32 --requests 1500 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from retrieval.factory import EMBEDDERS

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "evals" / "data" / "demo_tickets.v1.jsonl"
KEY = re.compile(r"tri_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def run_level(
    url: str | list[str], key: str, tickets: list[dict[str, str]], concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    """One level; with several URLs (replicas), the requests go round-robin over them."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=u, headers={"X-API-Key": key}, limits=limits, timeout=30)
            )
            for u in ([url] if isinstance(url, str) else url)
        ]
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                ticket, client = tickets[sent % len(tickets)], clients[sent % len(clients)]
                sent += 1
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/triage", json=ticket)
                    if response.status_code != 200:
                        errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                        continue
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(wall, 2),
        "rps": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else float("nan"),
    }


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process and its threads so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(data_dir: Path, port: int, embedder: str | None, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "TRIAGE_POLICY": "classical_only",
        "TRIAGE_RATE_LIMIT_PER_SECOND": "1000000",
        "TRIAGE_RATE_LIMIT_BURST": "1000000",
        "TRIAGE_DATA_DIR": str(data_dir),
    }
    if embedder:
        env["TRIAGE_EMBEDDER"] = embedder
    cmd = [sys.executable, "-m", "agents.cli.main", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # a first start trains the models
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    keys = KEY.findall(log.read_text())
    if not keys:
        proc.terminate()
        raise SystemExit("no API key was printed: use a fresh --data-dir database, or pass --url and --key")
    return proc, keys[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server (then --key is needed)")
    parser.add_argument("--key")
    parser.add_argument("--data-dir", default="data", help="for the server this script starts")
    parser.add_argument("--embedder", choices=EMBEDDERS)
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=1000, help="at most this many per level")
    parser.add_argument("--seconds", type=float, default=30.0, help="at most this long per level")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    tickets = [{"title": r["title"], "body": r["body"]} for r in rows]
    proc = None
    if args.url:
        url, key = args.url, args.key or ""
    else:
        log = Path(tempfile.mkstemp(prefix="triage-load-", suffix=".log")[1])
        proc, key = start_server(Path(args.data_dir), args.port, args.embedder, log)
        url = f"http://127.0.0.1:{args.port}"
    try:
        ready = httpx.get(f"{url}/readyz", headers={"X-API-Key": key}).json()
        asyncio.run(run_level(url, key, tickets, 4, args.warmup, 60))
        results = []
        for level in args.concurrency:
            server_cpu, client_cpu = cpu_seconds(proc.pid if proc else None), time.process_time()
            result = asyncio.run(run_level(url, key, tickets, level, args.requests, args.seconds))
            after = cpu_seconds(proc.pid if proc else None)
            done = max(1, result["requests"])
            if server_cpu is not None and after is not None:
                result["server_cpu_ms_per_request"] = round((after - server_cpu) * 1000 / done, 1)
            result["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) * 1000 / done, 1)
            results.append(result)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"embedder: {ready.get('embedder')}, {os.cpu_count()} CPUs, client and server on the same machine\n")
    print("| concurrent clients | requests | errors | requests/s | p50 ms | p99 ms | max ms | server CPU ms/req |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        errors = sum(r["errors"].values())
        print(
            f"| {r['concurrency']} | {r['requests']} | {errors} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
            f"{r['max_ms']} | {r.get('server_cpu_ms_per_request', '-')} |"
        )
    print(f"\nload average during the run: {os.getloadavg()[0]:.1f} (1 min)")
    if args.json:
        Path(args.json).write_text(json.dumps({"embedder": ready.get("embedder"), "levels": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
