"""`triage serve` in a real process: first-start key, SIGKILL in the middle of a batch, restart, nothing lost;
then oversized and chunked bodies over the real socket of the restarted server."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverkit import ServerProcess, fresh_data_dir

BATCH = 128


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM tickets GROUP BY status").fetchall())


@pytest.fixture
def data_dir(served_data_dir: Path, tmp_path: Path) -> Path:
    return fresh_data_dir(served_data_dir, tmp_path / "data")


@pytest.mark.slow  # a real process or a retrain: `make test` only
def test_sigkill_mid_batch_loses_no_ticket_and_triages_each_once(data_dir: Path, tmp_path: Path, demo_rows) -> None:
    server = ServerProcess(data_dir, tmp_path / "server.log").start()
    try:
        (key,) = server.printed_keys()
        headers = {"X-API-Key": key, "Idempotency-Key": "crash-batch-1"}
        batch = {"tickets": [{"title": r["title"], "body": r["body"]} for r in (demo_rows * 2)[:BATCH]]}
        errors: list[BaseException] = []

        def send() -> None:
            try:
                httpx.post(f"{server.url}/v1/tickets/batch", json=batch, headers=headers, timeout=120)
            except httpx.TransportError as exc:  # the server dies under us
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        db = data_dir / "triage.db"
        deadline = time.monotonic() + 60
        seen: dict[str, int] = {}
        while time.monotonic() < deadline:
            seen = counts(db) if db.exists() else {}
            if seen.get("triaged", 0) >= 1 and seen.get("received", 0) >= 1:
                break
            time.sleep(0.01)
        server.kill()
        sender.join(timeout=30)
        assert seen.get("received", 0) >= 1 and seen.get("triaged", 0) >= 1, f"never caught it mid-batch: {seen}"
        assert errors, "the request should have died with the server"
        assert sum(counts(db).values()) == BATCH and counts(db).get("received", 0) >= 1  # all committed first
    finally:
        server.stop()

    restarted = ServerProcess(data_dir, tmp_path / "server2.log").start()
    try:
        assert restarted.printed_keys() == []  # a key is printed on the first start only
        ready = httpx.get(f"{restarted.url}/readyz", headers={"X-API-Key": key}).json()
        assert ready["recovered_at_start"] >= 1 and ready["tickets"] == {"triaged": BATCH}
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            per_ticket = conn.execute(
                "SELECT t.id, count(a.id) FROM tickets t LEFT JOIN audit a ON a.ticket_id = t.id AND a.kind = 'triage' "
                "GROUP BY t.id"
            ).fetchall()
            results = conn.execute("SELECT count(*) FROM tickets WHERE result IS NOT NULL").fetchone()[0]
        assert len(per_ticket) == BATCH and {n for _, n in per_ticket} == {1} and results == BATCH
        replay = httpx.post(f"{restarted.url}/v1/tickets/batch", json=batch, headers=headers, timeout=60)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert sorted(t["id"] for t in replay.json()["tickets"]) == sorted(i for i, _ in per_ticket)
        assert counts(db) == {"triaged": BATCH}
        check_oversized_bodies(restarted.url, key)
        assert counts(db) == {"triaged": BATCH}
    finally:
        restarted.stop()


def check_oversized_bodies(url: str, key: str) -> None:
    """Over a real socket: 10 MB with a Content-Length and chunked without one both get 413; bad UTF-8 gets 400."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    huge = b'{"title": "' + b"a" * 10_000_000 + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must be counted while reading
        for i in range(0, len(huge), 65536):
            yield huge[i : i + 65536]

    for content in (huge, chunks()):
        response = httpx.post(f"{url}/v1/tickets", content=content, headers=headers, timeout=30)
        assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    bad_utf8 = httpx.post(f"{url}/v1/triage", content=b'{"title": "\xff"}', headers=headers)
    assert bad_utf8.status_code == 400 and bad_utf8.json()["code"] == "invalid_body"
