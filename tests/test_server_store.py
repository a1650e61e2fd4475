"""The ticket store on real SQLite files: migrations, exactly-once results, recovery, idempotency races, feedback."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from agents.store.records import FeedbackIn, TicketPatch
from agents.store.review import Review, feedback_training_rows
from agents.store.tables import TicketRow
from agents.store.tickets import IdempotencyConflict, Store
from agents.types import Ticket
from agents.web.desk import Desk
from agents.web.metrics import ServiceMetrics
from tests.serverkit import head_revision


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path)


def test_migrations_create_the_schema_once_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    Store.open(tmp_path).close()  # a second start migrates nothing and breaks nothing
    tables = set(inspect(store.engine).get_table_names())
    assert {"tickets", "feedback", "audit", "api_keys", "alembic_version"} <= tables
    with sqlite3.connect(tmp_path / "triage.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    columns = {c["name"] for c in inspect(store.engine).get_columns("tickets")}
    assert {
        "status",
        "assignee",
        "team",
        "priority",
        "category",
        "created_at",
        "first_response_at",
        "resolved_at",
        "updated_at",
        "result",
        "idempotency_key",
        "body_hash",
    } <= columns


def test_any_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    store = Store.open(tmp_path / "unused", url)
    store.create([Ticket(title="x")])
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "unused" / "triage.db").exists()


def test_received_tickets_are_recovered_and_triaged_exactly_once(store: Store, trained_service) -> None:
    records, _ = store.create([Ticket(title=f"VPN drops {i}", body="GlobalConnect disconnects") for i in range(40)])
    desk = Desk(store, trained_service, ServiceMetrics(), chunk=16)
    assert desk.recover() == 40
    assert desk.recover() == 0
    assert store.count_by_status() == {"triaged": 40}
    log = store.audit_log(kind="triage", limit=500)
    assert sorted(a["ticket_id"] for a in log) == sorted(r.id for r in records)
    result = store.get(records[0].id).result
    assert result is not None and store.save_results({records[0].id: result}) == 0  # a second result is refused


def test_a_ticket_that_keeps_failing_is_marked_failed(store: Store) -> None:
    (record,), _ = store.create([Ticket(title="poison")])
    for _ in range(3):
        assert [r.id for r in store.claim_received(10, max_attempts=3)] == [record.id]
    assert store.claim_received(10, max_attempts=3) == []
    failed = store.get(record.id)
    assert failed.status == "failed" and failed.needs_human and "3 attempts" in (failed.error or "")


def test_concurrent_requests_with_one_idempotency_key_store_one_ticket(store: Store) -> None:
    outcomes: list[object] = []

    def send(body: str) -> None:
        try:
            outcomes.append(store.create([Ticket(title="same", body=body)], "race", body, scope="k")[0][0].id)
        except IdempotencyConflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=send, args=("b",)) for _ in range(8)]
    threads += [threading.Thread(target=send, args=("other",))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {o for o in outcomes if isinstance(o, str)}
    assert store.count_by_status() == {"received": 1} and len(ids) == 1
    assert sum(isinstance(o, IdempotencyConflict) for o in outcomes) >= 1


def test_feedback_becomes_training_rows(store: Store, trained_service) -> None:
    records, _ = store.create(
        [
            Ticket(title="badge reader broken", body="door at warehouse 2"),
            Ticket(title="vpn down", body="globalconnect fails"),
            Ticket(title="unreviewed"),
        ]
    )
    Desk(store, trained_service, ServiceMetrics()).recover()
    review = Review(store, trained_service.kb)
    review.feedback(FeedbackIn(ticket_id=records[0].id, action="correct", field="team", value="security"), "ana")
    review.feedback(FeedbackIn(ticket_id=records[0].id, action="correct", field="category", value="security"), "ana")
    review.feedback(FeedbackIn(ticket_id=records[1].id, action="accept"), "ana")
    review.update(records[1].id, TicketPatch(team="infra"), "bo")  # a reassignment is a correction too
    rows = {r["id"]: r for r in feedback_training_rows(store)}
    assert set(rows) == {records[0].id, records[1].id}
    assert (rows[records[0].id]["team"], rows[records[0].id]["category"]) == ("security", "security")
    assert rows[records[0].id]["priority"] == store.get(records[0].id).priority
    assert rows[records[1].id]["team"] == "infra" and rows[records[1].id]["title"] == "vpn down"


def test_train_with_feedback_adds_the_reviewed_tickets(
    tmp_path: Path, trained_service, demo_rows, monkeypatch, capsys
) -> None:
    from agents.cli.main import main

    store = Store.open(tmp_path)
    records, _ = store.create([Ticket(title="badge reader broken", body="door at warehouse 2 will not open")])
    Desk(store, trained_service, ServiceMetrics()).recover()
    Review(store, trained_service.kb).feedback(
        FeedbackIn(ticket_id=records[0].id, action="correct", field="team", value="security"), "ana"
    )
    data = tmp_path / "small.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in demo_rows[::12]), encoding="utf-8")  # 39 rows, every class
    monkeypatch.setenv("TRIAGE_EMBEDDER", "hashing")
    out = tmp_path / "models"
    assert main(["train", "--data", str(data), "--data-dir", str(tmp_path), "--out", str(out), "--with-feedback"]) == 0
    assert "adding 1 ticket(s) people reviewed" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["info"]["n_train"] == len(demo_rows[::12]) + 1


def test_recovery_goes_past_a_chunk_whose_tickets_ran_out_of_attempts(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        ids = [r.id for r in store.create([Ticket(title=f"printer jam {i}") for i in range(6)])[0]]
        with store.write() as session:
            for row in session.scalars(select(TicketRow).where(TicketRow.id.in_(ids[:3]))):
                row.attempts = 3
        claimed = store.claim_received(3, max_attempts=3)
        assert sorted(r.id for r in claimed) == sorted(ids[3:])
        assert {store.get(i).status for i in ids[:3]} == {"failed"}
    finally:
        store.close()
