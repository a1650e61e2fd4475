"""The Zammad connector against a loopback Zammad: signatures, payloads, write-back, note lookup, backfill, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.connectors.base import (
    ConnectorConfig,
    FieldMapping,
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
)
from agents.connectors.signatures import hmac_hex
from agents.connectors.zammad import BackfillCursorInvalid, ZammadConnector
from tests.vendors.kit import Fault, running
from tests.vendors.zammad import ZammadServer

FIXTURES = Path(__file__).parent / "fixtures" / "vendors" / "zammad"
SECRET, TOKEN = "zammad-hmac-secret", "zammad-test-token"
MAPPING = FieldMapping(
    category={"network": "network", "access": "access", "hardware": "hardware"},
    priority={"P1": "3 high", "P2": "2 normal", "P3": "1 low"},
    team={"network": "Network", "service_desk": "Users", "apps": "2nd Level"},
)
CREATED = {"X-Zammad-Trigger": "Kestrel triage: ticket created", "X-Zammad-Delivery": "4f1c-created"}
UPDATED = {"X-Zammad-Trigger": "Kestrel triage: ticket updated", "X-Zammad-Delivery": "9a2e-updated"}


def make(url: str = "http://127.0.0.1:9", token: str = TOKEN, secret: str | None = SECRET) -> ZammadConnector:
    config = ConnectorConfig(system="zammad", url=url, token=token, webhook_secret=secret)
    return ZammadConnector(config, MAPPING)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw(name))
    return loaded


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature": "sha1=" + hmac_hex(secret, body, "sha1")}


def send(client: httpx.Client, call: VendorCall) -> httpx.Response:
    return client.request(call.method, call.path, json=call.json_body, params=call.params or None)


def note(ticket_id: int | str, marker: str = "[triage:7f3a]", **fields: str) -> WriteBack:
    text = f"Kestrel triage suggests network / P1 (0.91): VPN drops on floor 3. {marker}"
    return WriteBack(external_id=str(ticket_id), set_fields=fields, note=text, marker=marker)


@pytest.fixture
def server() -> Iterator[ZammadServer]:
    vendor = ZammadServer(token=TOKEN)
    with running(vendor):
        yield vendor


# --- verify -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ticket_created.json", "ticket_updated.json", "ticket_closed.json"])
def test_a_body_signed_with_the_secret_passes_whatever_the_header_case_and_the_clock(name: str) -> None:
    body = raw(name)
    signature = signed(body)["X-Hub-Signature"]
    for headers in ({"X-Hub-Signature": signature}, {"x-hub-signature": signature.upper().replace("SHA1=", "sha1=")}):
        for now in (0.0, 1_772_000_000.0, 4_000_000_000.0):  # Zammad signs no timestamp: no replay window applies
            make().verify(headers, body, now)


@pytest.mark.parametrize(
    ("headers", "body", "connector", "reason"),
    [
        ({}, raw("ticket_created.json"), make(), "no X-Hub-Signature header"),
        (signed(raw("ticket_created.json"), "other-secret"), raw("ticket_created.json"), make(), "does not match"),
        (
            signed(raw("ticket_created.json")),
            raw("ticket_created.json").replace(b"2 normal", b"3 high"),
            make(),
            "match",
        ),
        ({"X-Hub-Signature": "sha256=" + "0" * 64}, raw("ticket_created.json"), make(), "must be `sha1=<hex digest>`"),
        (
            signed(raw("ticket_created.json")),
            raw("ticket_created.json"),
            make(secret=None),
            "WEBHOOK_SECRET is not set",
        ),
    ],
    ids=["missing", "wrong-secret", "tampered-body", "other-algorithm", "no-secret-configured"],
)
def test_an_unsigned_or_wrongly_signed_body_is_refused_with_the_reason(
    headers: dict[str, str], body: bytes, connector: ZammadConnector, reason: str
) -> None:
    with pytest.raises(SignatureInvalid) as refused:
        connector.verify(headers, body, 1_772_000_000.0)
    assert reason in refused.value.reason and refused.value.status == 401


# --- parse --------------------------------------------------------------------------------------------------------


def test_a_created_ticket_reads_as_a_created_event_with_plain_text_and_vendor_values() -> None:
    event = make().parse(payload("ticket_created.json"), CREATED)
    assert (event.system, event.kind, event.external_id, event.event_id) == ("zammad", "created", "81", "4f1c-created")
    assert event.title == "VPN drops every few minutes since this morning"
    assert (
        event.body
        == "Hi team,\n\nmy VPN (GlobalConnect) drops every few minutes & I lose my RDP session.\n\nThanks,\nEmily"
    )
    assert event.values == {"team": "Users", "priority": "2 normal"}  # the default payload carries no tags
    assert MAPPING.from_vendor("team", event.values["team"]) == "service_desk"
    assert (event.requester, event.author, event.resolved) == ("emily@example.com", "emily@example.com", False)
    assert event.created_at == datetime(2026, 3, 2, 9, 14, 5, 282000, tzinfo=UTC)


def test_an_update_and_a_close_read_with_their_new_values_and_the_resolved_flag() -> None:
    updated = make().parse(payload("ticket_updated.json"), UPDATED)
    assert (updated.kind, updated.values, updated.resolved) == (
        "updated",
        {"team": "Network", "priority": "3 high"},
        False,
    )
    assert updated.body == "Moved to Network: several users on floor 3 report the same drops."
    assert updated.author == "jacob@acme.example"
    closed = make().parse(payload("ticket_closed.json"), {"X-Zammad-Trigger": "Kestrel triage: ticket updated"})
    assert (closed.kind, closed.resolved, closed.values["priority"]) == ("updated", True, "3 high")
    assert closed.body == "The access point on floor 3 was replaced.\nPlease reopen if the VPN drops again."


def test_the_event_id_is_the_delivery_id_else_ticket_and_updated_at_so_redeliveries_match_and_updates_differ() -> None:
    zammad = make()
    first, again = zammad.parse(payload("ticket_updated.json"), {}), zammad.parse(payload("ticket_updated.json"), {})
    later = zammad.parse(payload("ticket_closed.json"), {})
    assert first.event_id == again.event_id == "81:2026-03-02T10:02:41.118Z"
    assert later.event_id == "81:2026-03-03T15:40:12.811Z" != first.event_id
    retried = zammad.parse(payload("ticket_updated.json"), {"x-zammad-delivery": "9a2e-updated"})
    assert retried.event_id == zammad.parse(payload("ticket_updated.json"), UPDATED).event_id == "9a2e-updated"
    assert zammad.parse(payload("ticket_closed.json"), {"X-Zammad-Delivery": "c3d4-closed"}).event_id != "9a2e-updated"


def test_without_a_telling_trigger_name_the_kind_comes_from_created_at_against_updated_at() -> None:
    zammad, unnamed = make(), {"X-Zammad-Trigger": "Kestrel triage"}
    assert zammad.parse(payload("ticket_created.json"), unnamed).kind == "created"  # 51 ms apart
    assert zammad.parse(payload("ticket_updated.json"), {}).kind == "updated"
    assert zammad.parse(payload("ticket_created.json"), UPDATED).kind == "updated"  # the trigger's name wins


@pytest.mark.parametrize(
    ("state", "resolved"),
    [
        ("closed", True),
        ({"name": "closed"}, True),
        ("resolved - confirmed", True),
        ("open", False),
        ("pending close", False),
    ],
)
def test_resolved_means_a_closed_or_resolved_state(state: Any, resolved: bool) -> None:
    body = payload("ticket_updated.json")
    body["ticket"]["state"] = state
    assert make().parse(body, UPDATED).resolved is resolved


@pytest.mark.parametrize(
    ("tags", "category"),
    [(["vpn", "network"], "network"), ("vpn, hardware", "hardware"), (["network", "hardware"], None), ([], None)],
)
def test_the_category_is_the_one_mapped_tag_when_the_payload_carries_tags(tags: Any, category: str | None) -> None:
    body = payload("ticket_updated.json")
    body["ticket"]["tags"] = tags  # a custom payload may add them; the default one has none
    assert make().parse(body, UPDATED).values.get("category") == category


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"type": "zen:event-type:ticket.created", "detail": {"id": "35436", "status": "OPEN"}}, "ticket.id"),
        ({"webhookEvent": "jira:issue_created", "issue": {"id": "10002", "key": "IT-7"}}, "ticket.id"),
        ({"ticket": {"id": 35436, "subject": "Printer", "status": "open"}}, "ticket.number"),
        ({"ticket": {"id": 81, "number": "31081"}}, "ticket.updated_at"),
        ({"ticket": "81"}, "ticket.id"),
        ([], "ticket.id"),
        ("ticket", "ticket.id"),
        (None, "ticket.id"),
    ],
    ids=["zendesk", "jira", "zendesk-trigger-json", "no-updated-at", "ticket-not-object", "list", "string", "null"],
)
def test_another_vendors_payload_or_garbage_is_refused_naming_what_is_missing(body: Any, missing: str) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        make().parse(body, {})
    assert f"`{missing}`" in refused.value.reason and refused.value.status == 422


# --- write-back ---------------------------------------------------------------------------------------------------


def test_one_put_sets_group_priority_and_the_internal_note_and_a_tag_call_sets_the_category(
    server: ZammadServer,
) -> None:
    ticket_id = server.seed("VPN drops", "<p>It drops</p>")
    write = note(ticket_id, team="Network", priority="3 high", category="network")
    zammad = make(server.url)
    with zammad.client() as client:
        statuses = [send(client, call).status_code for call in zammad.calls(write)]
    assert statuses == [200, 201]
    put, tag = server.received()
    assert (put.method, put.path, tag.method, tag.path) == (
        "PUT",
        f"/api/v1/tickets/{ticket_id}",
        "POST",
        "/api/v1/tags/add",
    )
    assert put.headers["authorization"] == tag.headers["authorization"] == f"Token token={TOKEN}"
    assert put.json == {
        "article": {"body": write.note, "type": "note", "internal": True, "content_type": "text/plain"},
        "group": "Network",
        "priority": "3 high",
    }
    assert tag.json == {"object": "Ticket", "o_id": ticket_id, "item": "network"}
    stored = server.ticket(ticket_id)
    assert (stored["group"], stored["priority"], stored["tags"]) == ("Network", "3 high", ["network"])
    [added] = server.notes(ticket_id)
    assert added["internal"] is True and added["type"] == "note" and write.marker in added["body"]


def test_an_empty_set_fields_adds_only_the_internal_note(server: ZammadServer) -> None:
    ticket_id = server.seed("Laptop fan loud", group="2nd Level", priority="1 low", tags=["hardware"])
    zammad = make(server.url)
    calls = zammad.calls(note(ticket_id))
    assert [(c.method, c.path) for c in calls] == [("PUT", f"/api/v1/tickets/{ticket_id}")]
    assert calls[0].json_body is not None and set(calls[0].json_body) == {"article"}
    with zammad.client() as client:
        assert send(client, calls[0]).status_code == 200
    assert len(server.received()) == 1
    stored = server.ticket(ticket_id)
    assert (stored["group"], stored["priority"], stored["tags"]) == ("2nd Level", "1 low", ["hardware"])
    assert [n["internal"] for n in server.notes(ticket_id)] == [True]


def test_note_exists_is_false_before_and_true_after_the_note_landed(server: ZammadServer) -> None:
    ticket_id = server.seed("Printer jam", "Floor 2 printer jams")
    zammad, write = make(server.url), note(ticket_id, team="Users")
    with zammad.client() as client:
        assert zammad.note_exists(client, write) is False
        assert all(send(client, call).is_success for call in zammad.calls(write))
        assert zammad.note_exists(client, write) is True
        assert zammad.note_exists(client, note(ticket_id, marker="[triage:other]")) is False


def test_after_a_lost_answer_the_note_is_found_and_only_the_repeatable_tag_call_is_sent_again(
    server: ZammadServer,
) -> None:
    ticket_id = server.seed("Outlook crashes")
    server.fail(Fault(method="PUT", path_prefix="/api/v1/tickets/", status=502, apply_first=True))
    zammad, write = make(server.url), note(ticket_id, priority="3 high", category="access")
    calls = zammad.calls(write)
    assert [(c.method, c.repeatable) for c in calls] == [("PUT", False), ("POST", True)]
    with zammad.client() as client:
        assert send(client, calls[0]).status_code == 502  # applied, but the answer is an error
        assert zammad.note_exists(client, write) is True
        assert [send(client, c).status_code for c in calls if c.repeatable] == [201]
        assert send(client, calls[1]).status_code == 201  # the tag again: still one tag
    stored = server.ticket(ticket_id)
    assert (stored["priority"], stored["tags"], len(server.notes(ticket_id))) == ("3 high", ["access"], 1)


# --- backfill -----------------------------------------------------------------------------------------------------

SINCE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def seed_history(server: ZammadServer) -> list[int]:
    """Two tickets before `since` (one the day before, one earlier on the same day), then seven from `since` on."""
    server.seed("Old: mailbox full", created_at="2026-03-01T10:00:00.000Z")
    server.seed("Same day, before since", created_at="2026-03-02T08:00:00.000Z")
    wanted = []
    for n in range(7):
        tags = ["network"] if n % 2 == 0 else ["vpn"]
        state = "closed" if n == 3 else "open"
        at = f"2026-03-0{2 + n // 3}T{12 + n:02d}:00:00.000Z"
        body = f"<div>Ticket {n} body<br>line two</div>"
        wanted.append(server.seed(f"Ticket {n}", body, group="Network", state=state, created_at=at, tags=tags))
    return wanted


def walk(
    zammad: ZammadConnector, client: httpx.Client, cursor: str | None = None
) -> list[tuple[list[str], str | None]]:
    pages = []
    while True:
        page = zammad.backfill_page(client, SINCE, cursor)
        pages.append(([e.external_id for e in page.events], page.cursor))
        if page.cursor is None:
            return pages
        cursor = page.cursor


@pytest.mark.parametrize("expand", [True, False], ids=["expanded-list", "tickets-and-assets"])
def test_backfill_walks_every_page_since_the_date_and_ends_with_no_cursor(expand: bool) -> None:
    server = ZammadServer(token=TOKEN, expand=expand)
    with running(server):
        wanted = seed_history(server)
        zammad = make(server.url)
        zammad.page_size = 3
        with zammad.client() as client:
            send(client, zammad.calls(note(wanted[0]))[0])  # a later note must not replace the first article
            server.clear()
            pages = walk(zammad, client)
            first = zammad.backfill_page(client, SINCE, None).events
    ids = [str(i) for i in wanted]
    assert pages == [(ids[0:2], "2"), (ids[2:5], "3"), (ids[5:7], None)]  # page 1 also held the early ticket
    searches = server.received("GET", "/api/v1/tickets/search")[:3]
    assert [r.query["page"] for r in searches] == ["1", "2", "3"]
    assert searches[0].query == {
        "query": "created_at:>=2026-03-02",
        "sort_by": "created_at",
        "order_by": "asc",
        "page": "1",
        "per_page": "3",
        "expand": "true",
    }
    event = first[0]
    assert (event.kind, event.event_id, event.title, event.body) == (
        "created",
        f"backfill:{wanted[0]}",
        "Ticket 0",
        "Ticket 0 body\nline two",
    )
    assert event.values == {"team": "Network", "priority": "2 normal", "category": "network"}
    assert [e.values.get("category") for e in first] == ["network", None]  # "vpn" maps to no category
    assert event.created_at == datetime(2026, 3, 2, 12, tzinfo=UTC) and event.requester == "emily@example.com"


def test_backfill_resumes_from_a_returned_cursor_and_marks_closed_tickets_resolved(server: ZammadServer) -> None:
    wanted = seed_history(server)
    zammad = make(server.url)
    zammad.page_size = 3
    with zammad.client() as client:
        second = zammad.backfill_page(client, SINCE, zammad.backfill_page(client, SINCE, None).cursor)
        again = zammad.backfill_page(client, SINCE, "2")
        with pytest.raises(BackfillCursorInvalid):
            zammad.backfill_page(client, SINCE, "page-two")
    assert (
        [e.external_id for e in second.events] == [e.external_id for e in again.events] == [str(i) for i in wanted[2:5]]
    )
    assert [e.resolved for e in second.events] == [False, True, False] and second.cursor == "3"


# --- vendor errors ------------------------------------------------------------------------------------------------


def test_a_wrong_or_missing_token_is_a_401_the_caller_sees(server: ZammadServer) -> None:
    ticket_id = server.seed("Wi-Fi slow")
    wrong = make(server.url, token="revoked-token")
    with wrong.client() as client:
        answers = [send(client, call) for call in wrong.calls(note(ticket_id, category="network"))]
        assert [(a.status_code, a.json()) for a in answers] == [(401, {"error": "Invalid token!"})] * 2
        with pytest.raises(httpx.HTTPStatusError) as failed:
            wrong.note_exists(client, note(ticket_id))
        assert failed.value.response.status_code == 401
        with pytest.raises(httpx.HTTPStatusError):
            wrong.backfill_page(client, SINCE, None)
    with httpx.Client(base_url=server.url) as anonymous:
        answer = anonymous.get(f"/api/v1/ticket_articles/by_ticket/{ticket_id}")
    assert (answer.status_code, answer.json()) == (401, {"error": "authentication failed"})
    assert server.notes(ticket_id) == [] and server.ticket(ticket_id)["tags"] == []


def test_an_unknown_ticket_is_a_404_with_zammads_error_body(server: ZammadServer) -> None:
    zammad, missing = make(server.url), note(99999, team="Network", category="network")
    with zammad.client() as client:
        answers = [send(client, call) for call in zammad.calls(missing)]
        assert [a.status_code for a in answers] == [404, 404]
        assert answers[0].json() == {"error": "Couldn't find Ticket with 'id'=99999"}
        with pytest.raises(httpx.HTTPStatusError) as failed:
            zammad.note_exists(client, missing)
        assert failed.value.response.status_code == 404
        assert client.get("/api/v1/no_such_thing").json() == {"error": "No route matches [GET] /api/v1/no_such_thing"}
