"""Intake-form values (a ticket's `intake`): validated, stored, and read by models trained with them, end to end."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agents.classical.training import train_models
from agents.errors import DataError
from agents.settings import Settings
from agents.store.records import FeedbackIn
from agents.store.review import Review, feedback_training_rows
from agents.store.tickets import Store
from agents.types import MAX_INTAKE_FIELDS, Ticket
from agents.web.desk import Desk, as_ticket
from agents.web.metrics import ServiceMetrics
from tests.serverkit import ServerProcess

# the same words ask for access when the requester chose "request" on the form and report a broken share when they
# chose "incident": only the intake value can tell the two apart
SHARE = "Finance share for the team in office {n}", "The finance share of the team in office {n}, please have a look."
BY_TYPE = {"request": ("access", "identity"), "incident": ("storage", "infra")}


def intake_rows(demo_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The demo tickets (no intake) plus 40 share tickets whose category and team follow their ticket type."""
    rows = [dict(r) for r in demo_rows]
    for n in range(40):
        kind = "request" if n % 2 else "incident"
        category, team = BY_TYPE[kind]
        title, body = (part.format(n=n) for part in SHARE)
        rows.append(
            {
                "id": f"SHARE-{n:03d}",
                "title": title,
                "body": body,
                "intake": {"ticket_type": kind},
                "category": category,
                "priority": "P3",
                "team": team,
            }
        )
    return rows


def post(url: str, path: str, key: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(demo_rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`triage serve` on a fresh data folder: its first start trains on the share tickets with ticket_type read."""
    root = tmp_path_factory.mktemp("intake")
    data = root / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in intake_rows(demo_rows)), encoding="utf-8")
    env = {"TRIAGE_TRAINING_DATA": str(data), "TRIAGE_INTAKE_FIELDS": "ticket_type", "TRIAGE_TRAIN_FOLDS": "3"}
    process = ServerProcess(root / "data", root / "server.log", env=env).start(timeout=180)
    try:
        yield process.url, process.printed_keys()[0]
    finally:
        process.stop()


def test_the_intake_value_decides_between_otherwise_identical_tickets(server: tuple[str, str]) -> None:
    url, key = server
    title, body = (part.format(n=99) for part in SHARE)  # an office no training ticket named
    for kind, (category, team) in BY_TYPE.items():
        status, result = post(url, "/v1/triage", key, {"title": title, "body": body, "intake": {"ticket_type": kind}})
        assert status == 200, result
        assert (result["category"], result["team"]) == (category, team), (kind, result)


def test_a_stored_ticket_keeps_its_intake_and_an_unseen_value_is_triaged_as_text(server: tuple[str, str]) -> None:
    url, key = server
    intake = {"ticket_type": "change", "source_form": "portal"}  # a value and a name no model was trained on
    status, record = post(url, "/v1/tickets", key, {"title": "Printer on floor 3 jams", "intake": intake})
    assert status in (200, 201), record
    assert record["intake"] == intake and record["status"] == "triaged"
    assert record["result"]["category"] == "hardware"


@pytest.mark.parametrize(
    ("intake", "said"),
    [
        ({"Ticket Type": "request"}, "should match pattern"),
        ({"ticket_type": 3}, "valid string"),
        ({"ticket_type": "x" * 129}, "at most 128 characters"),
        ({f"field_{i}": "x" for i in range(MAX_INTAKE_FIELDS + 1)}, f"at most {MAX_INTAKE_FIELDS} items"),
        (["ticket_type"], "valid dictionary"),
    ],
)
def test_malformed_intake_is_a_422_that_says_what_is_wrong(server: tuple[str, str], intake: Any, said: str) -> None:
    url, key = server
    status, body = post(url, "/v1/tickets", key, {"title": "VPN down", "intake": intake})
    assert status == 422 and body["code"] == "invalid_request", body
    assert said in json.dumps(body["detail"]), body


def test_models_trained_without_intake_ignore_it(trained_service) -> None:
    title, body = (part.format(n=99) for part in SHARE)
    results = [trained_service.triage(Ticket(title=title, body=body, intake={"ticket_type": kind})) for kind in BY_TYPE]
    assert trained_service.models.intake_fields == []
    assert results[0].confidence == results[1].confidence and results[0].category == results[1].category


def test_training_refuses_an_intake_field_no_row_carries(demo_rows, hashing_embedder, demo_kb) -> None:
    with pytest.raises(DataError, match="no training ticket carries the intake field 'ticket_type'"):
        train_models(demo_rows, hashing_embedder, demo_kb, folds=2, intake_fields=["ticket_type"])
    broken = [*demo_rows[:20], {**demo_rows[20], "intake": {"ticket_type": 7}}]
    with pytest.raises(DataError, match="row 20 .* intake must be an object of strings"):
        train_models(broken, hashing_embedder, demo_kb, folds=2, intake_fields=["ticket_type"])


def test_intake_is_stored_read_back_and_reaches_the_training_rows(tmp_path: Path, trained_service) -> None:
    store = Store.open(tmp_path)
    records, _ = store.create([Ticket(title="badge reader broken", intake={"ticket_type": "incident"})])
    assert store.get(records[0].id).intake == {"ticket_type": "incident"}
    assert as_ticket(store.get(records[0].id)).intake == {"ticket_type": "incident"}  # what a worker triages
    Desk(store, trained_service, ServiceMetrics()).recover()
    Review(store, trained_service.kb).feedback(FeedbackIn(ticket_id=records[0].id, action="accept"), "ana")
    assert [r["intake"] for r in feedback_training_rows(store)] == [{"ticket_type": "incident"}]


def test_a_database_from_before_intake_is_migrated_and_its_tickets_read_an_empty_intake(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from agents.store.tickets import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'triage.db'}")
    store = Store.open(tmp_path)
    store.close()
    command.downgrade(config, "0004")  # the schema as the previous release left it, with one ticket in it
    with sqlite3.connect(tmp_path / "triage.db") as db:
        assert "intake" not in {row[1] for row in db.execute("PRAGMA table_info(tickets)")}
        db.execute(
            "INSERT INTO tickets (id, status, title, body, channel, metadata, needs_human, reviewed, attempts, "
            "created_at, updated_at) VALUES ('tkt_old', 'received', 'old', '', 'api', '{}', 0, 0, 0, "
            "'2026-12-01 08:00:00', '2026-12-01 08:00:00')"
        )
    store = Store.open(tmp_path)
    assert store.get("tkt_old").intake == {}


def test_intake_field_names_are_read_from_a_comma_separated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_INTAKE_FIELDS", "ticket_type, source_form")
    assert Settings().intake_fields == ["ticket_type", "source_form"]
    monkeypatch.setenv("TRIAGE_INTAKE_FIELDS", "")
    assert Settings().intake_fields == []
    monkeypatch.setenv("TRIAGE_INTAKE_FIELDS", "Ticket Type")
    with pytest.raises(ValidationError, match="lower-case words joined by _"):
        Settings()


def test_onboarding_carries_an_intake_column_into_the_helpdesk_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`triage onboard --intake ticket_type=Type`: the training tickets carry it, the helpdesk folder names it, and
    the service built from the folder tells the share request from the share incident by it."""
    from agents.app import build_service
    from agents.cli.main import main
    from tests.test_onboard import ticket_rows

    rows = [
        {"title": r["Subject"], "body": r["Description"], "kind": r["Category"], "Type": "Incident"}
        for r in ticket_rows()
    ]
    for n in range(40):
        kind = "Request" if n % 2 else "Incident"
        title, body = (part.format(n=n) for part in SHARE)
        rows.append({"title": title, "body": body, "kind": "Access" if kind == "Request" else "Storage", "Type": kind})
    (tmp_path / "export.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "hd"
    base = ["onboard", "--data", str(tmp_path / "export.jsonl"), "--text-col", "title", "--text-col", "body"]
    base += ["--field", "category=kind", "--embedder", "hashing", "--quiet", "--out", str(out)]
    assert main([*base, "--field", "team=Type", "--intake", "ticket_type=Type"]) != 0
    assert "--intake: Type is also a text or label column: a label would leak" in capsys.readouterr().err
    assert main([*base, "--intake", "Type"]) != 0
    assert "'Type' is not NAME=COLUMN" in capsys.readouterr().err
    assert main([*base, "--intake", "ticket_type=Type"]) == 0
    tickets = [json.loads(line) for line in (out / "tickets.jsonl").read_text().splitlines()]
    assert {t["intake"]["ticket_type"] for t in tickets} == {"Incident", "Request"}
    assert json.loads((out / "helpdesk.json").read_text())["settings"]["intake_fields"] == ["ticket_type"]
    settings = Settings(config_dir=out, embedder="hashing", policy="classical_only", train_folds=3)
    assert settings.intake_fields == ["ticket_type"]
    assert Settings(config_dir=out, intake_fields="").intake_fields == []  # set explicitly, it wins
    service = build_service(settings)
    title, body = (part.format(n=99) for part in SHARE)
    said = {
        k: service.triage(Ticket(title=title, body=body, intake={"ticket_type": k})) for k in ("Request", "Incident")
    }
    assert (said["Request"].category, said["Incident"].category) == ("access", "storage")
    # and `triage ticket` on the folder takes the form's value as an option
    capsys.readouterr()
    ticket = ["ticket", "--config", str(out), "--embedder", "hashing", "--json", "--title", title, body]
    assert main([*ticket, "--intake", "ticket_type=Request"]) == 0
    assert json.loads(capsys.readouterr().out)["category"] == "access"
    assert main([*ticket, "--intake", "ticket_type"]) != 0
    assert "--intake 'ticket_type' is not NAME=VALUE" in capsys.readouterr().err


def test_the_review_queue_shows_what_the_requester_chose_on_the_form(
    trained_service, served_answerer, tmp_path: Path
) -> None:
    from tests.test_server_api import make_api

    apis = make_api(trained_service, served_answerer, tmp_path)
    api = next(apis)
    try:
        unsure = api.client.post(
            "/v1/tickets", headers=api.triage, json={"title": "xq zzv", "intake": {"ticket_type": "<b>request</b>"}}
        ).json()
        review = api.client.get("/console/review", headers=api.read).text
    finally:
        apis.close()
    assert unsure["needs_human"] is True
    assert unsure["id"] in review and "on the form: ticket_type: &lt;b&gt;request&lt;/b&gt;" in review


def test_the_memory_of_stored_tickets_embeds_them_as_the_models_read_them(
    tmp_path: Path, trained_service, hashing_embedder
) -> None:
    from agents.classical.field_tokens import with_field_tokens
    from agents.models.stored_memory import StoredMemorySync
    from agents.similar import TicketMemory

    store = Store.open(tmp_path)
    records, _ = store.create([Ticket(title="badge reader broken", intake={"ticket_type": "incident"})])
    Desk(store, trained_service, ServiceMetrics()).recover()
    memory = TicketMemory(hashing_embedder.dim)
    StoredMemorySync(store, hashing_embedder, memory, max_tickets=10, intake_fields=lambda: ["ticket_type"]).refresh()
    read = with_field_tokens("badge reader broken", {"ticket_type": "incident"}, ["ticket_type"])
    plain, tokened = hashing_embedder.embed(["badge reader broken", read])
    assert [n.id for n in memory.search(tokened, 1)] == [records[0].id]
    assert memory.search(tokened, 1)[0].score == pytest.approx(1.0, abs=1e-5)
    assert memory.search(plain, 1)[0].score < 0.99  # the intake token is part of the vector
