"""The Jira connector against a loopback Jira Service Management: signatures, payloads, write-back, backfill."""

from __future__ import annotations

import base64
import json
import time
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
    PayloadInvalid,
    SignatureInvalid,
    VendorCall,
    WriteBack,
)
from agents.connectors.jira import JiraConnector
from agents.connectors.signatures import hmac_hex
from tests.vendors.jira import JiraServer
from tests.vendors.kit import Fault, running

FIXTURES = Path(__file__).parent / "fixtures" / "vendors" / "jira"
EMAIL, TOKEN, SECRET = "triage@acme.example", "atl-api-token", "whsec-jira-1"
MAPPING = FieldMapping(
    category={"network": "network-outage", "access": "access-request"},
    priority={"P1": "1", "P2": "2", "P3": "3", "P4": "4"},
    team={"network": "Network", "identity": "Identity and Access", "service-desk": "Service Desk"},
)
MARKER = "[kestrel-triage:7f3a9c]"
NOTE = f"Kestrel triage: category network (0.91), priority P2, team network. SOP: VPN drops. {MARKER}"


def make_connector(url: str = "https://acme.atlassian.net", token: str = TOKEN, **options: Any) -> JiraConnector:
    config = ConnectorConfig(system="jira", url=url, user=EMAIL, token=token, webhook_secret=SECRET)
    return JiraConnector(config, MAPPING, **options)


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def payload(name: str) -> dict[str, Any]:
    return json.loads(raw(name))


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={hmac_hex(secret, body, 'sha256')}"}


def send(client: httpx.Client, call: VendorCall) -> httpx.Response:
    return client.request(call.method, call.path, json=call.json_body, params=call.params or None)


@pytest.fixture
def server() -> Iterator[JiraServer]:
    vendor = JiraServer(EMAIL, TOKEN)
    with running(vendor):
        yield vendor


# --- 1. verify ----------------------------------------------------------------------------------------------------


def test_verify_accepts_the_hub_signature_of_the_raw_body_whatever_the_header_case() -> None:
    body = raw("issue_created.json")
    make_connector().verify(signed(body), body, time.time())
    make_connector().verify({"x-hub-signature": signed(body)["X-Hub-Signature"].upper()}, body, time.time())


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, b'{"webhookEvent": "jira:issue_created"}', "no X-Hub-Signature header"),
        (signed(b"{}", "another-secret"), b"{}", "does not match the body"),
        (signed(b'{"issue": {"key": "HELP-1"}}'), b'{"issue": {"key": "HELP-2"}}', "does not match the body"),
        ({"X-Hub-Signature": "sha1=" + hmac_hex(SECRET, b"{}", "sha1")}, b"{}", "must be `sha256=<hex digest>`"),
        ({"X-Hub-Signature": hmac_hex(SECRET, b"{}", "sha256")}, b"{}", "must be `sha256=<hex digest>`"),
    ],
    ids=["missing", "wrong-secret", "tampered-body", "sha1-prefix", "no-prefix"],
)
def test_verify_refuses_a_caller_that_is_not_jira(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(SignatureInvalid) as refused:
        make_connector().verify(headers, body, time.time())
    assert refused.value.system == "jira" and reason in refused.value.reason and refused.value.status == 401


def test_verify_refuses_everything_when_no_webhook_secret_is_set() -> None:
    config = ConnectorConfig(system="jira", url="https://acme.atlassian.net", user=EMAIL, token=TOKEN)
    body = raw("issue_created.json")
    with pytest.raises(SignatureInvalid, match="TRIAGE_JIRA_WEBHOOK_SECRET is not set"):
        JiraConnector(config, MAPPING).verify(signed(body), body, time.time())


def test_verify_has_no_replay_window_because_jira_signs_no_timestamp() -> None:
    # Jira retries a delivery for up to half an hour with the same body and signature; a replay is caught by the
    # delivery id (X-Atlassian-Webhook-Identifier) in the de-duplication, not by a clock.
    body = raw("issue_created.json")
    make_connector().verify(signed(body), body, time.time() + 86_400)


# --- 2. parse -----------------------------------------------------------------------------------------------------


def test_parse_created_gives_the_issue_in_jira_terms_with_its_description_as_plain_text() -> None:
    event = make_connector().parse(payload("issue_created.json"), {"X-Atlassian-Webhook-Identifier": "wh-51"})
    assert (event.system, event.kind, event.external_id, event.event_id) == ("jira", "created", "HELP-12", "wh-51")
    assert event.title == "VPN drops every few minutes"
    assert event.body == (
        "What happens\nSince this morning the VPN disconnects every 5 minutes.\n\n"
        "Error 809: the network connection was terminated\n\n- Windows 11 laptop\n- Office Wi-Fi and home"
    )
    assert event.values == {"priority": "3"}  # no component, and `vpn` is no mapped category label
    assert event.intake == {"ticket_type": "IT help"}  # the issue type, for models trained to read it
    assert event.resolved is False
    assert event.requester == event.author == "ana.lopez@acme.example"
    assert event.created_at == datetime(2026, 12, 5, 9, 0, 0, 120_000, tzinfo=UTC)


def test_parse_update_reads_the_new_values_and_flattens_an_adf_description() -> None:
    event = make_connector().parse(payload("issue_updated.json"), {})
    assert (event.kind, event.external_id, event.event_id) == ("updated", "HELP-12", "10012:changelog:10401")
    assert event.values == {"priority": "2", "team": "Network", "category": "network-outage"}
    assert {field: MAPPING.from_vendor(field, value) for field, value in event.values.items()} == {
        "priority": "P2",
        "team": "network",
        "category": "network",
    }
    assert event.body == (
        "What happens\nSince this morning the VPN disconnects every 5 minutes.\n"
        "@Tom Bright can you look?\n- Windows 11 laptop\n- Office Wi-Fi and home"
    )
    assert event.resolved is False
    assert event.author == "712020:3c1b2f4e-8a8e-4f7e-9c55-1f2a3b4c5d6e"  # no email shared: the account id


def test_parse_resolved_says_so_and_two_updates_of_one_issue_have_different_event_ids() -> None:
    connector = make_connector()
    updated, resolved = (
        connector.parse(payload("issue_updated.json"), {}),
        connector.parse(payload("issue_resolved.json"), {}),
    )
    assert resolved.resolved is True and resolved.kind == "updated" and resolved.external_id == "HELP-12"
    assert updated.event_id != resolved.event_id
    assert connector.parse(payload("issue_updated.json"), {}).event_id == updated.event_id  # a redelivery
    first = connector.parse(payload("issue_resolved.json"), {"X-Atlassian-Webhook-Identifier": "wh-77"})
    retry = connector.parse(
        payload("issue_resolved.json"), {"x-atlassian-webhook-identifier": "wh-77", "X-Atlassian-Webhook-Retry": "2"}
    )
    assert first.event_id == retry.event_id == "wh-77"


def test_parse_an_update_without_changelog_is_keyed_by_its_comment() -> None:
    commented = payload("issue_updated.json")
    commented.pop("changelog")
    commented.update(issue_event_type_name="issue_commented", comment={"id": "10530", "body": "Any news?"})
    assert make_connector().parse(commented, {}).event_id == "10012:comment:10530"
    commented.pop("comment"), commented.pop("timestamp")
    with pytest.raises(PayloadInvalid, match=r"`changelog\.id`"):
        make_connector().parse(commented, {})


ZENDESK_SHAPED = {"type": "zen:event-type:ticket.created", "detail": {"id": "35436", "subject": "VPN"}}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (ZENDESK_SHAPED, "`webhookEvent`"),
        ({"ticket": {"id": 35436, "subject": "VPN"}}, "`webhookEvent`"),
        ({"webhookEvent": "comment_created", "comment": {"id": "1"}}, "`comment_created`"),
        ({"webhookEvent": "jira:issue_created"}, "`issue`"),
        ({"webhookEvent": "jira:issue_created", "issue": {"key": "HELP-1", "fields": {}}}, "`issue.id`"),
        ({"webhookEvent": "jira:issue_created", "issue": {"id": "1", "fields": {}}}, "`issue.key`"),
        ({"webhookEvent": "jira:issue_created", "issue": {"id": "1", "key": "HELP-1"}}, "`issue.fields`"),
        ({"webhookEvent": "jira:issue_created", "issue": {"id": "1", "key": "HELP-1", "fields": "x"}}, "`fields`"),
        ([{"webhookEvent": "jira:issue_created"}], "`webhookEvent`"),
        ("jira:issue_created", "`webhookEvent`"),
        (None, "`webhookEvent`"),
    ],
    ids=[
        "zendesk-webhook",
        "zendesk-ticket",
        "other-event",
        "no-issue",
        "no-id",
        "no-key",
        "no-fields",
        "fields-not-object",
        "list",
        "string",
        "null",
    ],
)
def test_parse_refuses_what_is_not_a_jira_issue_event_and_names_what_is_missing(body: Any, named: str) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        make_connector().parse(body, {})
    assert named in refused.value.reason and refused.value.status == 422


def test_parse_keeps_tolerating_fields_it_does_not_know() -> None:
    busy = payload("issue_updated.json")
    busy["issue"]["fields"].update(customfield_10050={"value": "Laptop"}, components=[{"name": "Printers"}])
    busy["matchedWebhookIds"] = [3]
    assert make_connector().parse(busy, {}).values["team"] == "Printers"  # unmapped: still the issue's team value


# --- 3. calls ------------------------------------------------------------------------------------------------------


def auth() -> str:
    return "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()


def test_calls_set_the_fields_then_add_one_internal_comment(server: JiraServer) -> None:
    created = datetime(2026, 12, 5, 9, tzinfo=UTC)
    server.seed("HELP-12", "VPN drops", created, labels=("vpn", "access-request"), components=("Service Desk",))
    connector = make_connector(server.url)
    write = WriteBack(
        external_id="HELP-12",
        set_fields={"priority": "2", "team": "Network", "category": "network-outage"},
        note=NOTE,
        marker=MARKER,
    )
    with connector.client() as client:
        statuses = [send(client, call).status_code for call in connector.calls(write)]
    assert statuses == [204, 201]
    put, post = server.received()
    assert (put.method, put.path, put.headers["authorization"]) == ("PUT", "/rest/api/3/issue/HELP-12", auth())
    assert put.json == {
        "fields": {"priority": {"id": "2"}, "components": [{"name": "Network"}]},
        "update": {"labels": [{"remove": "access-request"}, {"add": "network-outage"}]},
    }
    assert (post.method, post.path, post.headers["authorization"]) == (
        "POST",
        "/rest/servicedeskapi/request/HELP-12/comment",
        auth(),
    )
    assert post.json == {"body": NOTE, "public": False}
    fields = server.fields_of("HELP-12")
    assert fields["priority"]["id"] == "2" and [c["name"] for c in fields["components"]] == ["Network"]
    assert fields["labels"] == ["vpn", "network-outage"]
    [comment] = server.comments_of("HELP-12")
    assert comment["public"] is False and MARKER in comment["body"]


def test_calls_with_no_fields_only_add_the_internal_comment(server: JiraServer) -> None:
    server.seed("HELP-13", "Outlook is slow", datetime(2026, 12, 5, 9, tzinfo=UTC), labels=("email",))
    before = server.fields_of("HELP-13")
    connector = make_connector(server.url)
    calls = connector.calls(WriteBack(external_id="HELP-13", note=NOTE, marker=MARKER))
    assert [(c.method, c.path, c.repeatable) for c in calls] == [
        ("POST", "/rest/servicedeskapi/request/HELP-13/comment", False)
    ]
    with connector.client() as client:
        assert send(client, calls[0]).status_code == 201
    [post] = server.received()
    assert post.json == {"body": NOTE, "public": False}
    assert server.fields_of("HELP-13") == before
    assert [c["public"] for c in server.comments_of("HELP-13")] == [False]


def test_after_a_lost_comment_answer_the_note_is_found_and_only_the_field_edit_is_sent_again(
    server: JiraServer,
) -> None:
    server.seed("HELP-16", "Cannot print", datetime(2026, 12, 5, 9, tzinfo=UTC), labels=("access-request",))
    path = "/rest/servicedeskapi/request/HELP-16/comment"
    server.fail(
        Fault(method="POST", path_prefix=path, status=502, apply_first=True)
    )  # the comment lands, the answer not
    connector = make_connector(server.url)
    write = WriteBack(external_id="HELP-16", set_fields={"category": "network-outage"}, note=NOTE, marker=MARKER)
    calls = connector.calls(write)
    assert [(c.method, c.repeatable) for c in calls] == [("PUT", True), ("POST", False)]
    with connector.client() as client:
        assert [send(client, call).status_code for call in calls] == [204, 502]
        assert connector.note_exists(client, write) is True
        assert [send(client, call).status_code for call in calls if call.repeatable] == [204]
    assert len(server.comments_of("HELP-16")) == 1
    assert server.fields_of("HELP-16")["labels"] == ["network-outage"]


def test_calls_refuse_a_field_we_do_not_write() -> None:
    with pytest.raises(ConnectorError, match="'status'"):
        make_connector().calls(WriteBack(external_id="HELP-1", set_fields={"status": "done"}, note=NOTE, marker=MARKER))


def test_auth_headers_are_basic_email_and_api_token_and_need_the_email() -> None:
    assert make_connector().auth_headers() == {"Authorization": auth()}
    config = ConnectorConfig(system="jira", url="https://acme.atlassian.net", token=TOKEN, webhook_secret=SECRET)
    with pytest.raises(ConnectorError, match="TRIAGE_JIRA_EMAIL"):
        JiraConnector(config, MAPPING).auth_headers()


# --- 4. note_exists ------------------------------------------------------------------------------------------------


def comment(key: str, text: str, public: bool) -> VendorCall:
    """A comment someone else adds to the issue."""
    path = f"/rest/servicedeskapi/request/{key}/comment"
    return VendorCall(method="POST", path=path, json_body={"body": text, "public": public})


def test_note_exists_is_false_before_and_true_after_the_note_landed_reading_every_page(server: JiraServer) -> None:
    server.seed("HELP-14", "Wi-Fi on floor 3", datetime(2026, 12, 5, 9, tzinfo=UTC))
    connector = make_connector(server.url, page_size=2)
    write = WriteBack(external_id="HELP-14", note=NOTE, marker=MARKER)
    with connector.client() as client:
        for n in range(5):  # other agents' internal notes fill the first pages
            send(client, comment("HELP-14", f"internal note {n}", public=False))
        send(client, comment("HELP-14", f"public reply quoting {MARKER}", public=True))
        assert connector.note_exists(client, write) is False
        server.clear()
        [call] = connector.calls(write)
        send(client, call)
        assert connector.note_exists(client, write) is True
    pages = server.received("GET")
    assert [r.query["start"] for r in pages] == ["0", "2", "4"]
    assert all(r.query["public"] == "false" and r.query["internal"] == "true" for r in pages)


# --- 5. backfill_page ----------------------------------------------------------------------------------------------

SINCE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def seed_history(server: JiraServer) -> list[str]:
    """Two issues before SINCE (one inside the 12 h time-zone margin) and eight after; the keys after, oldest first."""
    server.seed("HELP-1", "Old: a day before", SINCE - timedelta(days=1))
    server.seed("HELP-2", "Old: within the zone margin", SINCE - timedelta(hours=3))
    keys = []
    for n in range(8):
        key = f"HELP-{n + 3}"
        created = SINCE + timedelta(hours=n)
        server.seed(
            key, f"Ticket {n}", created, priority="2", components=("Network",), labels=("network-outage",), done=n == 0
        )
        keys.append(key)
    return keys


def test_backfill_walks_every_page_from_since_and_ends_with_no_cursor(server: JiraServer) -> None:
    keys = seed_history(server)
    connector = make_connector(server.url, page_size=3)
    pages, cursor = [], None
    with connector.client() as client:
        while True:
            page = connector.backfill_page(client, SINCE, cursor)
            pages.append(page)
            if page.cursor is None:
                break
            cursor = page.cursor
    assert len(pages) == 3  # 9 issues from 12 h before SINCE, 3 a page; HELP-2 (before SINCE) is dropped
    events = [event for page in pages for event in page.events]
    assert [e.external_id for e in events] == keys
    assert all(e.event_id == f"backfill:{e.external_id}" and e.kind == "created" for e in events)
    assert events[0].resolved is True and not any(e.resolved for e in events[1:])
    assert events[1].values == {"priority": "2", "team": "Network", "category": "network-outage"}
    assert all(e.created_at is not None and e.created_at >= SINCE for e in events)
    first, *rest = server.received("POST", "/rest/api/3/search/jql")
    assert first.json == {
        "jql": 'created >= "2026-11-01 00:00" ORDER BY created ASC',
        "fields": ["summary", "description", "priority", "labels", "components", "status", "created", "reporter"],
        "maxResults": 3,
    }
    assert [r.json["nextPageToken"] for r in rest] == [p.cursor for p in pages[:-1]]
    assert {r.json["jql"] for r in rest} == {first.json["jql"]}


def test_backfill_resumes_from_a_returned_cursor(server: JiraServer) -> None:
    keys = seed_history(server)
    connector = make_connector(server.url, page_size=3)
    with connector.client() as client:
        first = connector.backfill_page(client, SINCE, None)
        second = connector.backfill_page(client, SINCE, first.cursor)
        again = connector.backfill_page(client, SINCE, first.cursor)
        with pytest.raises(httpx.HTTPStatusError) as refused:
            connector.backfill_page(client, SINCE, "not-a-token")
    assert [e.external_id for e in first.events] == keys[:2]  # HELP-2, inside the margin, is not since SINCE
    assert [e.external_id for e in second.events] == [e.external_id for e in again.events] == keys[2:5]
    assert refused.value.response.status_code == 400


def test_backfill_reads_a_documented_search_page(server: JiraServer) -> None:
    for issue in payload("search_page.json")["issues"]:
        server.seed_issue(issue)
    connector = make_connector(server.url)
    with connector.client() as client:
        page = connector.backfill_page(client, datetime(2026, 11, 1, tzinfo=UTC), None)
    assert page.cursor is None
    locked, printer = page.events
    assert locked.body == "I changed my password and now I am locked out.\nAADSTS50053: account is locked"
    assert locked.values == {"priority": "2", "team": "Identity and Access", "category": "access-request"}
    assert locked.created_at == datetime(2026, 11, 20, 7, 15, 42, 7000, tzinfo=UTC)
    assert locked.requester == "5c2e9f1a4b7d3e0012ab34cd" and locked.resolved is False
    assert (printer.body, printer.values, printer.resolved) == ("", {"priority": "4"}, True)
    assert printer.requester == "lucia.ferrante@acme.example"


# --- 6. the vendor's 401 and 404 ------------------------------------------------------------------------------------


def test_wrong_or_missing_credentials_reach_the_caller_as_401(server: JiraServer) -> None:
    server.seed("HELP-15", "Laptop will not boot", datetime(2026, 12, 5, 9, tzinfo=UTC))
    connector = make_connector(server.url, token="revoked-token")
    write = WriteBack(external_id="HELP-15", set_fields={"priority": "1"}, note=NOTE, marker=MARKER)
    with connector.client() as client:
        responses = [send(client, call) for call in connector.calls(write)]
        with pytest.raises(httpx.HTTPStatusError) as listing:
            connector.note_exists(client, write)
        with pytest.raises(httpx.HTTPStatusError) as search:
            connector.backfill_page(client, SINCE, None)
    assert [r.status_code for r in responses] == [401, 401]
    assert responses[0].json()["errorMessages"] and listing.value.response.status_code == 401
    assert search.value.response.status_code == 401
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/rest/servicedeskapi/request/HELP-15/comment").status_code == 401
    assert server.fields_of("HELP-15")["priority"]["id"] == "3" and server.comments_of("HELP-15") == []


def test_an_unknown_issue_reaches_the_caller_as_404(server: JiraServer) -> None:
    connector = make_connector(server.url)
    write = WriteBack(external_id="HELP-999", set_fields={"priority": "1"}, note=NOTE, marker=MARKER)
    with connector.client() as client:
        put, post = (send(client, call) for call in connector.calls(write))
        with pytest.raises(httpx.HTTPStatusError) as listing:
            connector.note_exists(client, write)
    assert put.status_code == 404
    assert put.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }
    assert post.status_code == 404 and "could not be found" in post.json()["errorMessage"]
    assert listing.value.response.status_code == 404
