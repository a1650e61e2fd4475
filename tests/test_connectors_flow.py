"""Connectors end to end over HTTP: a signed vendor event in, triage, and the write-back the mode allows, exactly
once, on each vendor's loopback server; bad events refused with nothing stored."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.modes import ModeTable
from agents.store.outcomes import read_outcomes
from tests.connector_kit import VendorKit

TITLE, BODY = "VPN drops every ten minutes", "GlobalConnect disconnects every ten minutes when I work from home."


def with_modes(service: Any, default: str, **fields: str) -> Any:
    """The session's trained service with modes set as given (ModeTable's start-up checks are tested elsewhere)."""
    changed = copy.copy(service)
    changed.modes = ModeTable(default=default, fields=fields)  # type: ignore[arg-type]
    return changed


@contextmanager
def connected(kit: VendorKit, service: Any, answerer: Any, tmp_path: Path, **overrides: Any) -> Iterator[Any]:
    from tests.test_server_api import make_api

    mapping = tmp_path / "connectors.json"
    mapping.write_text(json.dumps({kit.system: kit.mapping}))
    settings = {"connector_mapping": mapping, "outbox_backoff": 0.05, **kit.settings, **overrides}
    apis = make_api(service, answerer, tmp_path, **settings)
    api = next(apis)
    try:
        yield api
    finally:
        apis.close()


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def outbox(api: Any, status: str) -> list[dict[str, Any]]:
    answer = api.client.get("/v1/connectors/outbox", params={"status": status}, headers=api.read)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


def post(api: Any, kit: VendorKit, payload: Any) -> Any:
    body, headers = kit.signed(payload)
    return api.client.post(f"/v1/connectors/{kit.system}/events", content=body, headers=headers)


def test_a_signed_new_ticket_is_triaged_and_gets_one_internal_note(
    kit: VendorKit, trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    external = kit.seed(TITLE, BODY)
    team_before = kit.extra["team_of"](external)
    with connected(kit, with_modes(trained_service, "suggest"), served_answerer, tmp_path) as api:
        answer = post(api, kit, kit.created(external, TITLE, BODY))
        assert answer.status_code == 202, answer.text
        done = answer.json()
        assert done["status"] == "triaged" and done["duplicate"] is False
        delivered = wait_for(lambda: outbox(api, "delivered"))
        again = post(api, kit, kit.created(external, TITLE, BODY))  # the vendor redelivers the same event
        assert again.status_code == 202 and again.json()["duplicate"] is True
        assert again.json()["ticket_id"] == done["ticket_id"]
        ticket = api.client.get(f"/v1/tickets/{done['ticket_id']}", headers=api.read).json()
        listed = api.client.get("/v1/tickets", headers=api.read).json()
    assert ticket["channel"] == kit.system and ticket["external_id"] == external and listed["total"] == 1
    assert ticket["intake"] == kit.extra["intake"]  # the form's ticket type, where the vendor has one
    assert [i["external_id"] for i in delivered] == [external]
    notes = [n for n in kit.notes(external) if "kestrel-triage-ref:" in n]
    assert len(notes) == 1, notes  # one note, however often the event came
    assert "network" in notes[0] and "confidence" in notes[0] and "Owner:" in notes[0]
    assert kit.extra["team_of"](external) == team_before  # suggest sets no field


def test_auto_sets_the_mapped_field_and_an_echo_of_it_is_not_an_agents_verdict(
    kit: VendorKit, trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    external = kit.seed(TITLE, BODY)
    service = with_modes(trained_service, "suggest", team="auto")
    with connected(kit, service, served_answerer, tmp_path) as api:
        done = post(api, kit, kit.created(external, TITLE, BODY)).json()
        wait_for(lambda: outbox(api, "delivered"))
        record = api.client.get(f"/v1/tickets/{done['ticket_id']}", headers=api.read).json()
        assert record["result"]["actions"]["team"]["action"] == "applied", record["result"]["actions"]
        assert kit.extra["team_of"](external) == kit.mapping["team"]["network"]
        echo = post(api, kit, kit.updated(external, {"team": kit.mapping["team"]["network"]}, False, 1)).json()
        assert echo["recorded"] == [] and any("the value triage set itself" in i for i in echo["ignored"])
        moved = post(api, kit, kit.updated(external, {"team": kit.mapping["team"]["workplace"]}, False, 2)).json()
        assert moved["recorded"] == ["team"]
        closed = post(api, kit, kit.updated(external, {"team": kit.mapping["team"]["workplace"]}, True, 3)).json()
        assert closed["status"] == "resolved"
        outcomes = read_outcomes(api.client.app.state.core.store)
    team = [o for o in outcomes if o.field == "team"]
    assert len(team) == 1 and team[0].final == "workplace" and not team[0].agreed and team[0].source == "connector"


def test_shadow_writes_nothing_and_records_the_agents_values(
    kit: VendorKit, trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    external = kit.seed(TITLE, BODY)
    with connected(kit, with_modes(trained_service, "shadow"), served_answerer, tmp_path) as api:
        done = post(api, kit, kit.created(external, TITLE, BODY)).json()
        skipped = wait_for(lambda: outbox(api, "skipped"))
        agent = post(api, kit, kit.updated(external, {"team": kit.mapping["team"]["network"]}, True, 1)).json()
        status = api.client.get("/v1/connectors", headers=api.read).json()
    assert [i["ticket_id"] for i in skipped] == [done["ticket_id"]]
    assert kit.writes() == [] and agent["status"] == "resolved" and "team" in agent["recorded"]
    assert {s["system"]: s["on"] for s in status}[kit.system] is True


def test_bad_events_are_refused_with_a_reason_and_nothing_is_stored(
    kit: VendorKit, trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    external = kit.seed(TITLE, BODY)
    route = f"/v1/connectors/{kit.system}/events"
    with connected(kit, trained_service, served_answerer, tmp_path, connector_max_body_bytes=4000) as api:
        body, headers = kit.signed(kit.created(external, TITLE, BODY))
        unsigned = {"Content-Type": "application/json"}
        assert api.client.post(route, content=body, headers=unsigned).status_code == 401
        wrong = {**headers, **kit.sign(b"another body")} if kit.signs_body else {"Authorization": "Bearer nope"}
        refused = api.client.post(route, content=body, headers=wrong)
        assert refused.status_code == 401 and refused.json()["code"] == "signature_invalid"
        big, big_headers = kit.signed(kit.created(external, TITLE, "x" * 5000))
        assert api.client.post(route, content=big, headers=big_headers).status_code == 413
        garbage = b"{not json"
        assert api.client.post(route, content=garbage, headers=kit.sign(garbage)).status_code == 400
        other = json.dumps({"webhookEvent": "nothing:we_know", "id": 1, "detail": {}}).encode()
        foreign = api.client.post(route, content=other, headers=kit.sign(other))
        assert foreign.status_code == 422 and foreign.json()["code"] == "payload_invalid", foreign.text
        off = "zammad" if kit.system != "zammad" else "zendesk"
        assert api.client.post(f"/v1/connectors/{off}/events", content=body, headers=headers).status_code == 404
        assert api.client.get("/v1/tickets", headers=api.read).json()["total"] == 0
    assert kit.server.received() == [] or all(r.method == "GET" for r in kit.server.received())


def test_a_write_to_a_ticket_deleted_in_the_vendor_is_dead_visible_and_replayable(
    kit: VendorKit, trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    with connected(kit, with_modes(trained_service, "suggest"), served_answerer, tmp_path) as api:
        assert post(api, kit, kit.created(kit.missing_id, TITLE, BODY)).status_code == 202
        (dead,) = wait_for(lambda: outbox(api, "dead"))
        assert dead["last_status"] == 404 and dead["external_id"] == kit.missing_id and dead["attempts"] == 1
        assert api.client.post(f"/v1/connectors/outbox/{dead['id']}/replay", headers=api.read).status_code == 403
        replayed = api.client.post(f"/v1/connectors/outbox/{dead['id']}/replay", headers=api.admin)
        assert replayed.status_code == 200 and replayed.json()["attempts"] == 0
        again = wait_for(lambda: [i for i in outbox(api, "dead") if i["attempts"] == 1])
        assert api.client.post("/v1/connectors/outbox/999/replay", headers=api.admin).status_code == 404
        metrics = api.client.get("/metrics", headers=api.read).text
        console = api.client.get("/console/outbox", headers=api.read)
    assert console.status_code == 200 and f'data-item="{dead["id"]}"' in console.text and "404" in console.text
    assert again[0]["id"] == dead["id"]
    assert f'triage_outbox_items{{status="dead",system="{kit.system}"}} 1.0' in metrics
