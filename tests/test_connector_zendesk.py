"""The Zendesk connector against a loopback Zendesk: signatures, both webhook shapes, write-back, notes, backfill."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.connectors.base import (
    ConnectorConfig,
    ConnectorError,
    FieldMapping,
    InboundEvent,
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
)
from agents.connectors.signatures import zendesk_signature
from agents.connectors.zendesk import MappingValueInvalid, ZendeskConnector
from tests.vendors.kit import Fault, running
from tests.vendors.zendesk import ZendeskServer

FIXTURES = Path(__file__).parent / "fixtures" / "vendors" / "zendesk"
SECRET = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0"
EMAIL, TOKEN = "triage@acme.example", "zd-api-token"
NETWORK_GROUP, IDENTITY_GROUP = "360001234567", "360007654321"
MAPPING = FieldMapping(
    team={"network": NETWORK_GROUP, "identity": IDENTITY_GROUP},
    priority={"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"},
    category={"network": "network_issue", "access": "access_request"},
)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def connector(url: str = "https://acme.zendesk.com", token: str = TOKEN) -> ZendeskConnector:
    config = ConnectorConfig(system="zendesk", url=url, user=EMAIL, token=token, webhook_secret=SECRET)
    return ZendeskConnector(config, MAPPING)


def send(client: httpx.Client, call: VendorCall) -> httpx.Response:
    """What the core's outbox does with one call."""
    return client.request(call.method, call.path, json=call.json_body, params=call.params)


@pytest.fixture
def server() -> Iterator[ZendeskServer]:
    loopback = ZendeskServer(email=EMAIL, token=TOKEN)
    with running(loopback):
        yield loopback


# --- 1. verify ----------------------------------------------------------------------------------------------------


def signed(body: bytes, timestamp: str = "2026-03-02T09:15:28Z", secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Zendesk-Webhook-Signature": zendesk_signature(secret, timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "X-Zendesk-Webhook-Id": "01GK8E6BKWMJZD2T8Y5AXJQMG5",
    }


NOW = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC).timestamp()
BODY = (FIXTURES / "event_ticket_created.json").read_bytes()


def test_a_correct_signature_passes_whatever_the_case_of_the_header_names() -> None:
    connector().verify(signed(BODY), BODY, NOW)
    connector().verify({k.lower(): v for k, v in signed(BODY).items()}, BODY, NOW)


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        ({}, BODY, NOW, "not signed"),
        ({"X-Zendesk-Webhook-Signature-Timestamp": "2026-03-02T09:15:28Z"}, BODY, NOW, "not signed"),
        (signed(BODY, secret="another secret"), BODY, NOW, "does not match the body"),
        (signed(BODY), BODY.replace(b"NORMAL", b"URGENT"), NOW, "does not match the body"),
        (signed(BODY), BODY, NOW + 301, "outside the 300 s window"),
        (signed(BODY), BODY, NOW - 400, "outside the 300 s window"),
    ],
    ids=["no headers", "no signature", "wrong secret", "tampered body", "replayed later", "from the future"],
)
def test_a_bad_signature_is_refused_with_its_reason(
    headers: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(SignatureInvalid) as refused:
        connector().verify(headers, body, now)
    assert refused.value.system == "zendesk" and reason in refused.value.reason and refused.value.status == 401


def test_without_a_webhook_secret_nothing_passes() -> None:
    config = ConnectorConfig(system="zendesk", url="https://acme.zendesk.com", user=EMAIL, token=TOKEN)
    with pytest.raises(SignatureInvalid, match="TRIAGE_ZENDESK_WEBHOOK_SECRET"):
        ZendeskConnector(config, MAPPING).verify(signed(BODY), BODY, NOW)


# --- 2. parse -----------------------------------------------------------------------------------------------------


def parse(name: str) -> InboundEvent:
    return connector().parse(fixture(name), signed(b"{}"))


def test_a_ticket_created_event_gives_the_ticket_in_vendor_terms() -> None:
    event = parse("event_ticket_created")
    assert event == InboundEvent(
        system="zendesk",
        event_id="cbe4028c-7239-495d-b020-f22348516046",
        kind="created",
        external_id="35436",
        title="VPN keeps disconnecting",
        body="Since this morning the VPN client drops every few minutes.\n\n"
        "I work from home on the office laptop; Teams calls cut off too.",
        requester="20978392",
        created_at=datetime(2026, 3, 2, 9, 15, 27, tzinfo=UTC),
        values={"priority": "normal"},  # no group yet, no tag that a category maps to
        intake={"ticket_type": "INCIDENT"},  # the ticket type chosen on the form, for models that read it
        resolved=False,
        author="20978392",
    )


def test_two_updates_of_one_ticket_differ_and_a_redelivery_is_the_same_event() -> None:
    priority, group = parse("event_ticket_priority_changed"), parse("event_ticket_group_assignment_changed")
    assert (priority.kind, group.kind) == ("updated", "updated")
    assert priority.external_id == group.external_id == "35436"
    assert priority.event_id != group.event_id
    assert priority.values == {"priority": "urgent"}
    assert group.values == {"team": NETWORK_GROUP, "priority": "urgent", "category": "network_issue"}
    redelivered = connector().parse(fixture("event_ticket_priority_changed"), signed(b"{}", "2026-03-02T09:27:00Z"))
    assert redelivered.event_id == priority.event_id


def test_a_solved_ticket_is_resolved() -> None:
    event = parse("event_ticket_status_changed_solved")
    assert event.kind == "updated" and event.resolved
    assert MAPPING.from_vendor("team", event.values["team"]) == "network"
    assert MAPPING.from_vendor("priority", event.values["priority"]) == "P1"
    assert MAPPING.from_vendor("category", event.values["category"]) == "network"


def test_the_trigger_template_body_parses_with_ticket_id_and_updated_at_as_its_key() -> None:
    created, updated, closed = (parse(f"trigger_ticket_{name}") for name in ("created", "updated", "closed"))
    assert (created.kind, updated.kind, closed.kind) == ("created", "updated", "updated")
    assert created.event_id == "35437:2026-03-03T08:02Z"
    assert len({created.event_id, updated.event_id, closed.event_id}) == 3
    assert parse("trigger_ticket_updated").event_id == updated.event_id  # a retry of the same request
    assert created.values == {"priority": "normal"}  # "Normal" as the placeholder renders it; no group: ""
    assert updated.values == {"team": IDENTITY_GROUP, "priority": "high", "category": "access_request"}
    assert (created.resolved, updated.resolved, closed.resolved) == (False, False, True)
    assert created.title == "Cannot log in to the expense portal"
    assert (
        created.body
        == 'My account is locked after the password change on Friday.\nThe portal says "contact your administrator".'
    )
    assert created.requester == "lea.moreau@kestrel.example" and updated.author == "sam.okafor@kestrel.example"
    assert created.created_at == datetime(2026, 3, 3, 8, 2, tzinfo=UTC)


def test_extra_fields_are_ignored_and_absent_values_left_out() -> None:
    payload = fixture("event_ticket_created")
    payload["detail"].update(priority=None, tags=None, brand_new_field={"x": 1})
    payload["something_new"] = [1, 2]
    event = connector().parse(payload, {})
    assert event.values == {} and event.external_id == "35436"


JIRA = {"timestamp": 1772442927000, "webhookEvent": "jira:issue_created", "issue": {"id": "10002", "key": "IT-7"}}
ZAMMAD = {"ticket": {"id": 7, "number": "31007", "title": "VPN", "state": "new"}, "article": {"body": "VPN"}}


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (JIRA, "`type` and `detail`"),
        (ZAMMAD, "`trigger`"),
        ([], "JSON list"),
        ("ticket", "JSON str"),
        ({}, "`type` and `detail`"),
        ({"type": "zen:event-type:ticket.created", "id": "e1"}, "`detail`"),
        ({"type": "zen:event-type:ticket.created", "detail": {"id": "1"}}, "`id`"),
        ({"type": "zen:event-type:ticket.created", "id": "e1", "detail": {"subject": "x"}}, "`detail.id`"),
        ({"type": "zen:event-type:user.created", "id": "e1", "detail": {"id": "1"}}, "not a zen:event-type:ticket"),
        ({"id": "e1", "detail": {"id": "1"}}, "`type`"),
        ({"type": "zen:event-type:ticket.created", "id": "e1", "detail": {"id": "../users/1"}}, "ticket number"),
        ({"trigger": "deleted", "ticket": {"id": "1", "updated_at": "x"}}, "`trigger` is 'deleted'"),
        ({"trigger": "created", "ticket": {"id": "1"}}, "`ticket.updated_at`"),
        ({"trigger": "created", "ticket": {"id": "{{ticket.id}}", "updated_at": "x"}}, "ticket number"),
    ],
    ids=[
        "jira",
        "zammad",
        "list",
        "string",
        "empty",
        "no detail",
        "no event id",
        "no ticket id",
        "user event",
        "no type",
        "id not a number",
        "unknown trigger",
        "no updated_at",
        "placeholder left raw",
    ],
)
def test_other_vendors_and_garbage_are_refused_naming_what_is_missing(payload: Any, named: str) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        connector().parse(payload, {})
    assert named in refused.value.reason and refused.value.status == 422


# --- 3. calls -----------------------------------------------------------------------------------------------------


def write(ticket_id: int, **set_fields: str) -> WriteBack:
    note = f"Kestrel triage proposes team network (0.91), P2.\nRef: kt-{ticket_id}-7f3a"
    return WriteBack(external_id=str(ticket_id), set_fields=set_fields, note=note, marker=f"kt-{ticket_id}-7f3a")


def test_one_put_sets_the_fields_and_adds_the_private_note(server: ZendeskServer) -> None:
    ticket_id = server.seed("VPN keeps disconnecting", "It drops.", created_at=T0, priority="normal", tags=("vpn",))
    zendesk = connector(server.url)
    wanted = write(ticket_id, team=NETWORK_GROUP, priority="high", category="network_issue")
    with zendesk.client() as client:
        responses = [send(client, call) for call in zendesk.calls(wanted)]
    assert [r.status_code for r in responses] == [200]
    [put] = server.received()
    assert (put.method, put.path) == ("PUT", f"/api/v2/tickets/{ticket_id}.json")
    assert put.headers["authorization"] == "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert put.json == {
        "ticket": {
            "comment": {"body": wanted.note, "public": False},
            "group_id": int(NETWORK_GROUP),
            "priority": "high",
            "additional_tags": ["network_issue"],
        }
    }
    stored = server.ticket(ticket_id)
    assert (stored["group_id"], stored["priority"], stored["tags"]) == (
        int(NETWORK_GROUP),
        "high",
        ["vpn", "network_issue"],
    )
    note = server.comments(ticket_id)[-1]
    assert note["public"] is False and wanted.marker in note["body"]


def test_with_no_fields_to_set_only_the_note_is_written(server: ZendeskServer) -> None:
    ticket_id = server.seed("Printer jams", "Tray 2.", created_at=T0, priority="low", group_id=42, tags=("printer",))
    before = server.ticket(ticket_id)
    zendesk = connector(server.url)
    [call] = zendesk.calls(write(ticket_id))
    assert call.json_body == {"ticket": {"comment": {"body": write(ticket_id).note, "public": False}}}
    with zendesk.client() as client:
        assert send(client, call).status_code == 200
    after = server.ticket(ticket_id)
    assert {k: after[k] for k in ("group_id", "priority", "tags", "status")} == {
        k: before[k] for k in ("group_id", "priority", "tags", "status")
    }
    assert [c["public"] for c in server.comments(ticket_id)] == [True, False]


@pytest.mark.parametrize(
    ("set_fields", "reason"),
    [
        ({"team": "network"}, "not a group id"),
        ({"priority": "P1"}, "not urgent, high"),
        ({"owner": "a"}, "cannot set 'owner'"),
    ],
)
def test_a_write_that_zendesk_cannot_express_is_refused_before_sending(set_fields: dict[str, str], reason: str) -> None:
    with pytest.raises(ConnectorError, match=reason):
        connector().calls(write(35436, **set_fields))


@pytest.mark.parametrize(
    ("field", "value"), [("team", "Network team"), ("priority", "P1"), ("category", "network issue"), ("category", "")]
)
def test_a_mapping_value_in_the_wrong_format_stops_the_connector_at_start(field: str, value: str) -> None:
    mapping = MAPPING.model_copy(update={field: {"network": value}})
    with pytest.raises(MappingValueInvalid) as refused:
        ZendeskConnector(connector().config, mapping)
    assert (refused.value.field, refused.value.label, refused.value.value) == (field, "network", value)


def test_without_an_api_user_there_are_no_credentials() -> None:
    config = ConnectorConfig(system="zendesk", url="https://acme.zendesk.com", token=TOKEN)
    with pytest.raises(ConnectorError, match="TRIAGE_ZENDESK_EMAIL"):
        ZendeskConnector(config, MAPPING).auth_headers()


# --- 4. note_exists -----------------------------------------------------------------------------------------------


def test_the_note_is_found_only_once_it_landed_across_comment_pages(server: ZendeskServer) -> None:
    server.comments_page_size = 2
    ticket_id = server.seed("Slow Wi-Fi", "Floor 3.", created_at=T0, comments=("Any news?", "Still slow", "Hello?"))
    zendesk, wanted = connector(server.url), write(ticket_id, priority="normal")
    with zendesk.client() as client:
        assert zendesk.note_exists(client, wanted) is False
        assert len(server.received("GET", f"/api/v2/tickets/{ticket_id}/comments.json")) == 2  # 4 comments, 2 pages
        assert send(client, zendesk.calls(wanted)[0]).status_code == 200
        assert zendesk.note_exists(client, wanted) is True


def test_a_write_applied_but_its_answer_lost_is_found_by_note_exists(server: ZendeskServer) -> None:
    ticket_id = server.seed("Laptop will not boot", "Black screen.", created_at=T0)
    server.fail(Fault(method="PUT", status=502, apply_first=True))
    zendesk, wanted = connector(server.url), write(ticket_id, team=IDENTITY_GROUP)
    with zendesk.client() as client:
        assert send(client, zendesk.calls(wanted)[0]).status_code == 502
        assert zendesk.note_exists(client, wanted) is True
    assert server.ticket(ticket_id)["group_id"] == int(IDENTITY_GROUP)


# --- 5. backfill --------------------------------------------------------------------------------------------------


def seed_history(server: ZendeskServer, since: datetime) -> set[int]:
    """Nine tickets created since `since`, two older ones updated since (not wanted), one deleted (not wanted)."""
    wanted = set()
    for n in range(9):
        created = since + timedelta(hours=n)
        status = "solved" if n % 3 == 0 else "open"
        tags = ("network_issue",) if n % 2 else ("hardware",)
        wanted.add(
            server.seed(
                f"Ticket {n}",
                f"Body {n}",
                created_at=created,
                updated_at=created + timedelta(minutes=n),
                status=status,
                priority="high",
                group_id=int(NETWORK_GROUP),
                tags=tags,
            )
        )
    for n in range(2):
        server.seed(f"Old {n}", created_at=since - timedelta(days=3), updated_at=since + timedelta(hours=n, minutes=30))
    server.seed("Spam", created_at=since + timedelta(hours=2), status="deleted")
    return wanted


def test_the_backfill_walks_every_page_with_the_cursor_and_keeps_only_new_tickets(server: ZendeskServer) -> None:
    server.page_size = 3
    since = T0 - timedelta(days=7)
    wanted = seed_history(server, since)
    zendesk, events, pages, cursor = connector(server.url), [], 0, None
    with zendesk.client() as client:
        while True:
            page = zendesk.backfill_page(client, since, cursor)
            events += page.events
            pages, cursor = pages + 1, page.cursor
            if cursor is None:
                break
    assert pages == 4  # 12 tickets, 3 a page
    assert sorted(e.event_id for e in events) == sorted(f"backfill:{i}" for i in wanted)
    assert {e.kind for e in events} == {"created"}
    first = next(e for e in events if e.title == "Ticket 0")
    assert first.values == {"team": NETWORK_GROUP, "priority": "high"} and first.resolved
    assert next(e for e in events if e.title == "Ticket 1").values["category"] == "network_issue"
    exports = server.received("GET", "/api/v2/incremental/tickets/cursor.json")
    assert exports[0].query == {"start_time": str(int(since.timestamp()))}
    assert all(set(r.query) == {"cursor"} for r in exports[1:])


def test_the_backfill_resumes_from_a_returned_cursor(server: ZendeskServer) -> None:
    server.page_size = 3
    since = T0 - timedelta(days=7)
    seed_history(server, since)
    zendesk = connector(server.url)
    with zendesk.client() as client:
        first = zendesk.backfill_page(client, since, None)
        second = zendesk.backfill_page(client, since, first.cursor)
        again = zendesk.backfill_page(client, since, first.cursor)
        third = zendesk.backfill_page(client, since, second.cursor)
    assert first.cursor and second.cursor and third.cursor
    assert again == second
    seen = [e.event_id for page in (first, second, third) for e in page.events]
    # by update time: [Ticket 0, Old 0, Ticket 1], [Old 1, Spam, Ticket 2], [Ticket 3, 4, 5]: the old and deleted drop
    assert [len(page.events) for page in (first, second, third)] == [2, 1, 3]
    assert len(set(seen)) == 6


def test_the_loopback_export_speaks_the_documented_shape(server: ZendeskServer) -> None:
    documented = fixture("incremental_tickets_cursor_page")
    for row in documented["tickets"]:
        server.seed(
            row["subject"],
            row["description"],
            ticket_id=row["id"],
            priority=row["priority"],
            status=row["status"],
            group_id=row["group_id"],
            tags=tuple(row["tags"]),
            requester_id=row["requester_id"],
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
        )
    zendesk = connector(server.url)
    with zendesk.client() as client:
        answer = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": "0"}).json()
        page = zendesk.backfill_page(client, T0, None)
    assert set(answer) == set(documented)
    assert set(answer["tickets"][0]) <= set(documented["tickets"][0])
    assert answer["after_cursor"] == documented["after_cursor"] and answer["end_of_stream"] is True
    assert page.cursor is None
    assert [(e.external_id, e.values, e.resolved) for e in page.events] == [
        ("35436", {"team": NETWORK_GROUP, "priority": "urgent", "category": "network_issue"}, True),
        ("35437", {"team": IDENTITY_GROUP, "priority": "high", "category": "access_request"}, False),
    ]


# --- 6. the vendor's 401 and 404 ----------------------------------------------------------------------------------


def test_wrong_or_missing_credentials_get_zendesks_401(server: ZendeskServer) -> None:
    ticket_id = server.seed("VPN", "x", created_at=T0)
    stranger = connector(server.url, token="revoked-token")
    with stranger.client() as client:
        answer = send(client, stranger.calls(write(ticket_id))[0])
        assert (answer.status_code, answer.json()) == (401, {"error": "Couldn't authenticate you"})
        for attempt in (
            lambda: stranger.note_exists(client, write(ticket_id)),
            lambda: stranger.backfill_page(client, T0, None),
        ):
            with pytest.raises(httpx.HTTPStatusError) as refused:
                attempt()
            assert refused.value.response.status_code == 401
    assert httpx.get(f"{server.url}/api/v2/tickets/{ticket_id}.json").status_code == 401
    assert server.comments(ticket_id)[-1]["body"] == "x"  # nothing was written


def test_an_unknown_ticket_gets_zendesks_404(server: ZendeskServer) -> None:
    zendesk = connector(server.url)
    with zendesk.client() as client:
        answer = send(client, zendesk.calls(write(99999))[0])
        assert (answer.status_code, answer.json()) == (404, {"error": "RecordNotFound", "description": "Not found"})
        with pytest.raises(httpx.HTTPStatusError) as missing:
            zendesk.note_exists(client, write(99999))
    assert missing.value.response.status_code == 404
