"""Connector figures: events/s one Zendesk connector ingests, deliveries/s of the outbox against a vendor that
answers 429 one time in five, and lost or doubled writes when the delivering process is killed mid-way.

    .venv/bin/python scripts/bench_connectors.py --tickets 200 --repeat 3 --json out.json

`triage serve` runs in its own process (hashing embedder, classical path, every field in suggest, the outbox not
delivered in process); the vendor is the loopback Zendesk server of the tests; events are signed as Zendesk signs
them and sent by 8 client threads. Per repetition: the same number of tickets through `POST /v1/tickets` (the
baseline: stored and triaged, no connector); ingest a batch (events/s), deliver it in this process with
429 + Retry-After: 1 one time in five; ingest another, deliver it with 429 without Retry-After (backoff). Then a
last batch is delivered by `triage connectors deliver` processes, the first killed with SIGKILL mid-way.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.connectors.base import FieldMapping  # noqa: E402
from agents.connectors.delivery import Deliverer, DeliveryPolicy  # noqa: E402
from agents.connectors.outbox import Outbox  # noqa: E402
from agents.connectors.registry import connector_class, connector_config  # noqa: E402
from agents.connectors.writeback import MARKER_PREFIX  # noqa: E402
from agents.settings import Settings  # noqa: E402
from agents.store.tickets import Store  # noqa: E402
from tests.connector_kit import zendesk_kit  # noqa: E402
from tests.serverkit import ServerProcess  # noqa: E402
from tests.vendors.kit import Fault  # noqa: E402


def ingest(kit: Any, url: str, count: int, clients: int) -> tuple[float, list[str]]:
    """Seed `count` vendor tickets, POST a signed created event for each; events/s and the vendor ids."""
    ids = [
        kit.seed(f"VPN drops every {i % 9 + 2} minutes at site {i}", "GlobalConnect disconnects.") for i in range(count)
    ]

    def send(external: str) -> int:
        body, headers = kit.signed(kit.created(external, f"VPN drops at {external}", "GlobalConnect disconnects."))
        return httpx.post(f"{url}/v1/connectors/zendesk/events", content=body, headers=headers, timeout=30).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(send, ids))
    seconds = time.perf_counter() - start
    assert statuses.count(202) == count, {s: statuses.count(s) for s in set(statuses)}
    return count / seconds, ids


def api_baseline(url: str, key: str, count: int, clients: int) -> float:
    """The same tickets through `POST /v1/tickets` (stored and triaged, no connector): tickets/s."""

    def send(i: int) -> int:
        ticket = {"title": f"VPN drops at site {i}", "body": "GlobalConnect disconnects."}
        return httpx.post(f"{url}/v1/tickets", json=ticket, headers={"X-API-Key": key}, timeout=30).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(send, range(count)))
    seconds = time.perf_counter() - start
    assert statuses.count(201) == count, {s: statuses.count(s) for s in set(statuses)}
    return count / seconds


def deliver_all(deliverer: Deliverer, outbox: Outbox, timeout: float = 600) -> float:
    """Run passes until nothing is pending; deliveries/s over the wall time."""
    pending = sum(n for (_, status), n in outbox.counts().items() if status == "pending")
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        deliverer.run_once()
        if not any(status == "pending" and n for (_, status), n in outbox.counts().items()):
            break
        time.sleep(0.02)
    return pending / (time.perf_counter() - start)


def notes_per_ticket(kit: Any, ids: list[str]) -> dict[str, int]:
    counts = [sum(MARKER_PREFIX in n for n in kit.notes(i)) for i in ids]
    return {"lost": counts.count(0), "doubled": sum(c > 1 for c in counts), "once": counts.count(1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=200, help="events per batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    kit = zendesk_kit()
    kit.server.start()
    root = Path(tempfile.mkdtemp(prefix="bench-connectors-"))
    data = root / "data"
    mapping = root / "connectors.json"
    mapping.write_text(json.dumps({"zendesk": kit.mapping}))
    env = {f"TRIAGE_{k.upper()}": str(v) for k, v in kit.settings.items()}
    env |= {
        "TRIAGE_CONNECTOR_MAPPING": str(mapping),
        "TRIAGE_DEFAULT_MODE": "suggest",
        "TRIAGE_DATA_DIR": str(data),
        "TRIAGE_OUTBOX_IN_PROCESS": "false",
        "TRIAGE_EMBEDDER": "hashing",
        "TRIAGE_POLICY": "classical_only",
        "TRIAGE_CONNECTOR_TIMEOUT": "5",
    }
    subprocess.run(
        [sys.executable, "-m", "agents.cli.main", "train", "--data-dir", str(data)],
        check=True,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    server = ServerProcess(data, root / "serve.log", env).start(timeout=120)
    store = Store.open(data)
    settings = Settings(data_dir=data, connector_timeout=5, **kit.settings)
    config = connector_config(settings, "zendesk")
    assert config is not None
    connector = connector_class("zendesk")(config, FieldMapping(**kit.mapping))
    outbox = Outbox(store)
    policy = DeliveryPolicy(max_attempts=8, backoff=0.5, backoff_max=5.0, concurrency=4)
    rows: list[dict[str, Any]] = []
    try:
        for rep in range(args.repeat):
            row: dict[str, Any] = {"rep": rep, "load": os.getloadavg()[0]}
            row["api_tickets_per_s"] = api_baseline(server.url, server.printed_keys()[0], args.tickets, args.clients)
            for arm, retry_after in (("retry_after_1s", "1"), ("no_retry_after", None)):
                events, ids = ingest(kit, server.url, args.tickets, args.clients)
                kit.server.fail_every(
                    5, Fault(status=429, retry_after=retry_after, body={"error": "APIRateLimitExceeded"})
                )
                deliverer = Deliverer(outbox, {"zendesk": connector}, policy)
                row[f"events_per_s_{arm}"] = events
                row[f"deliveries_per_s_{arm}"] = deliver_all(deliverer, outbox)
                row[f"notes_{arm}"] = notes_per_ticket(kit, ids)
                deliverer.close()
                kit.server.state.every = None
            rows.append(row)
            print(json.dumps(row), flush=True)
        # a delivering process killed mid-way, then another: nothing lost, nothing doubled
        _, ids = ingest(kit, server.url, args.tickets * 2, args.clients)
        kit.server.fail_every(5, Fault(status=429, retry_after="1"))
        cli = [sys.executable, "-m", "agents.cli.main", "connectors", "deliver"]
        first = subprocess.Popen(cli, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waited = time.perf_counter()  # kill it mid-way: once a tenth of the notes are out (or after two minutes)
        while notes_per_ticket(kit, ids)["once"] < len(ids) // 10 and time.perf_counter() - waited < 120:
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        mid = notes_per_ticket(kit, ids)
        start = time.perf_counter()
        second = subprocess.Popen(cli, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while any(status == "pending" and n for (_, status), n in outbox.counts().items()):
            time.sleep(0.5)
            if time.perf_counter() - start > 900:
                break
        second.terminate()
        second.wait(timeout=30)
        restart = {
            "tickets": len(ids),
            "delivered_before_kill": mid["once"] + mid["doubled"],
            "after": notes_per_ticket(kit, ids),
            "resume_seconds": round(time.perf_counter() - start, 1),
            "dead": sum(n for (_, status), n in outbox.counts().items() if status == "dead"),
        }
        print(json.dumps({"restart": restart}), flush=True)
    finally:
        server.stop()
        kit.server.stop()
        store.close()
    summary = {
        key: round(statistics.median(r[key] for r in rows), 1)
        for key in rows[0]
        if key.startswith(("events_per_s", "deliveries_per_s", "api_"))
    }
    out = {
        "tickets_per_batch": args.tickets,
        "clients": args.clients,
        "median": summary,
        "runs": rows,
        "restart": restart,
    }
    print(json.dumps(out["median"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
