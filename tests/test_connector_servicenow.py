"""The ServiceNow connector against a loopback ServiceNow: caller check, events, write-back, note lookup, backfill."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
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
from agents.connectors.servicenow import (
    BackfillCursorInvalid,
    MappingValueInvalid,
    ServiceNowConnector,
    SettingMissing,
)
from tests.conftest import REPO
from tests.vendors.kit import Fault, running
from tests.vendors.servicenow import NO_RECORD, NOT_AUTHENTICATED, ServiceNowServer

FIXTURES = REPO / "tests" / "fixtures" / "vendors" / "servicenow"
NETWORK, DESK = "287ebd7da9fe198100f92cc8d1d2154e", "8a4dde73c6112278017a6a4baf547aa7"
INCIDENT = "9d385017c611228701d22104cc95c371"
MAPPING = FieldMapping(
    team={"network": NETWORK, "service-desk": DESK},
    priority={"P1": "1/1", "P2": "1/2", "P3": "2/2", "P4": "3/3"},
    category={"network": "network", "hardware": "hardware", "software": "software"},
)
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
LAPTOP = {"category": "hardware", "priority": "3/3"}  # no assignment group: no team


def connect(url: str = "https://acme.service-now.com", **settings: Any) -> ServiceNowConnector:
    page_size = settings.pop("page_size", 100)
    config = {"user": "triage.api", "token": "s3cret-pass", "webhook_secret": "inbound-token-1", **settings}
    return ServiceNowConnector(ConnectorConfig(system="servicenow", url=url, **config), MAPPING, page_size=page_size)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def send(client: httpx.Client, call: VendorCall) -> httpx.Response:
    return client.request(call.method, call.path, json=call.json_body, params=call.params)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture
def server() -> Iterator[ServiceNowServer]:
    with running(ServiceNowServer()) as started:
        assert isinstance(started, ServiceNowServer)
        yield started


# --- verify ---------------------------------------------------------------------------------------------------------


def test_verify_accepts_the_bearer_token_or_basic_auth_with_the_inbound_user() -> None:
    connect().verify({"authorization": "Bearer inbound-token-1"}, b"{}", 0.0)
    connect(webhook_user="sn.outbound").verify({"AUTHORIZATION": basic("sn.outbound", "inbound-token-1")}, b"{}", 0.0)


@pytest.mark.parametrize(
    ("webhook_user", "authorization", "reason"),
    [
        (None, None, "no Authorization header"),
        (None, "Bearer inbound-token-2", "the bearer token is wrong"),
        (None, basic("sn.outbound", "inbound-token-1"), "the bearer token is wrong"),
        ("sn.outbound", basic("sn.outbound", "wrong"), "the basic-auth user or password is wrong"),
        ("sn.outbound", basic("someone.else", "inbound-token-1"), "the basic-auth user or password is wrong"),
        ("sn.outbound", "Bearer inbound-token-1", "the basic-auth user or password is wrong"),
    ],
)
def test_verify_refuses_a_missing_or_wrong_caller(
    webhook_user: str | None, authorization: str | None, reason: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with pytest.raises(SignatureInvalid) as refused:
        connect(webhook_user=webhook_user).verify(headers, b"{}", 0.0)
    assert (refused.value.status, refused.value.system, refused.value.reason) == (401, "servicenow", reason)


def test_verify_without_an_inbound_token_refuses_everyone() -> None:
    with pytest.raises(SignatureInvalid, match="TRIAGE_SERVICENOW_INBOUND_TOKEN is not set"):
        connect(webhook_secret=None).verify({"Authorization": "Bearer "}, b"{}", 0.0)


def test_verify_checks_the_caller_only_as_servicenow_signs_neither_body_nor_time() -> None:
    # The Outbound REST Message sends credentials, no body signature and no timestamp: a changed body or an old
    # delivery cannot be told apart here (TLS protects the body in transit; sys_mod_count dedupes replays).
    connect().verify({"Authorization": "Bearer inbound-token-1"}, b'{"tampered": true}', 4_000_000_000.0)


# --- parse ----------------------------------------------------------------------------------------------------------


def test_parse_created_gives_the_incident_in_vendor_terms_as_plain_text() -> None:
    event = connect().parse(fixture("incident_created"), {})
    assert (event.system, event.kind, event.external_id) == ("servicenow", "created", INCIDENT)
    assert event.event_id == f"{INCIDENT}:0"
    assert event.title == "VPN drops every 10 minutes"
    assert event.body == (
        "Since this morning the VPN client disconnects every ten minutes.\n"
        "I work from home and cannot reach the finance file share."
    )
    assert event.values == {"category": "network", "priority": "2/2"}  # no assignment group yet: no team
    assert (event.resolved, event.requester, event.author) == (False, "5137153cc611227c000bbd1bd8cd2005", "fred.luddy")
    assert event.created_at == datetime(2026, 3, 2, 8, 15, 4, tzinfo=UTC)


def test_parse_updated_gives_the_new_values_that_the_mapping_reads_back() -> None:
    event = connect().parse(fixture("incident_updated"), {})
    assert (event.kind, event.event_id, event.resolved) == ("updated", f"{INCIDENT}:1", False)
    assert event.values == {"category": "network", "priority": "1/1", "team": NETWORK}
    labels = {field: MAPPING.from_vendor(field, value) for field, value in event.values.items()}
    assert labels == {"category": "network", "priority": "P1", "team": "network"}


@pytest.mark.parametrize(("state", "resolved"), [("6", True), ("7", True), ("8", False), ("2", False)])
def test_parse_resolved_means_state_resolved_or_closed(state: str, resolved: bool) -> None:
    payload = fixture("incident_resolved") | {"state": state}
    assert connect().parse(payload, {}).resolved is resolved


def test_event_ids_differ_per_change_and_repeat_for_a_redelivery() -> None:
    connector = connect()
    ids = [connector.parse(fixture(name), {}).event_id for name in ("incident_created", "incident_updated")]
    ids.append(connector.parse(fixture("incident_resolved"), {}).event_id)
    assert len(set(ids)) == 3
    redelivered = json.loads(json.dumps(fixture("incident_updated")))
    assert connector.parse(redelivered, {"X-Request-Id": "another"}).event_id == ids[1]


def test_parse_tolerates_extra_fields_missing_event_and_reference_objects() -> None:
    payload = {k: v for k, v in fixture("incident_updated").items() if k != "event"} | {"u_extra": [1, 2]}
    payload["assignment_group"] = {"link": "https://acme.service-now.com/api/now/table/x", "value": DESK}
    payload["description"] = "[code]<p>Disk &amp; fan <b>failing</b></p>[/code]"
    event = connect().parse(payload, {})
    assert (event.kind, event.values["team"], event.body) == ("updated", DESK, "Disk & fan failing")
    assert connect().parse(payload | {"sys_mod_count": 0}, {}).kind == "created"


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"type": "zendesk:ticket.created", "detail": {"id": "35436"}, "event": {}}, "`sys_id`"),
        ({"webhookEvent": "jira:issue_updated", "issue": {"id": "10002", "key": "IT-7"}}, "`sys_id`"),
        ([{"sys_id": INCIDENT}], "`sys_id`"),
        ("sys_id", "`sys_id`"),
        ({"sys_id": INCIDENT, "sys_mod_count": None}, "`sys_mod_count`"),
        ({"sys_id": INCIDENT, "sys_mod_count": "two"}, "`sys_mod_count` a count"),
        ({"sys_id": "", "sys_mod_count": "1"}, "`sys_id` must be an id"),
        ({"sys_id": INCIDENT, "sys_mod_count": "1", "event": "deleted"}, "`event` is 'deleted'"),
    ],
)
def test_parse_refuses_other_vendors_and_garbage_naming_what_is_missing(payload: Any, names: str) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        connect().parse(payload, {})
    assert names in refused.value.reason and refused.value.status == 422


# --- write-back -----------------------------------------------------------------------------------------------------


def write(sys_id: str, **set_fields: str) -> WriteBack:
    note = "Kestrel triage: team network (0.91), priority P1 (0.84). See SOP net-007. [triage:ref-5f2c]"
    return WriteBack(external_id=sys_id, set_fields=set_fields, note=note, marker="[triage:ref-5f2c]")


def test_calls_is_one_patch_that_sets_the_fields_and_adds_an_internal_work_note(server: ServiceNowServer) -> None:
    sys_id = server.seed(category="inquiry", urgency="3", impact="3")
    connector = connect(server.url)
    wanted = write(sys_id, team=NETWORK, category="network", priority="1/1")
    calls = connector.calls(wanted)
    assert len(calls) == 1
    with connector.client() as client:
        assert send(client, calls[0]).status_code == 200
    [received] = server.received()
    assert (received.method, received.path) == ("PATCH", f"/api/now/table/incident/{sys_id}")
    assert received.headers["authorization"] == basic("triage.api", "s3cret-pass")
    assert received.query == {"sysparm_exclude_reference_link": "true"}
    fields = {"assignment_group": NETWORK, "category": "network", "urgency": "1", "impact": "1"}
    assert received.json == {"work_notes": wanted.note, **fields}
    assert {name: server.incident(sys_id)[name] for name in fields} == fields
    assert server.journal(sys_id) == [wanted.note] and "[triage:ref-5f2c]" in wanted.note
    assert server.journal(sys_id, "comments") == []  # nothing public


def test_empty_set_fields_adds_the_note_and_sets_nothing(server: ServiceNowServer) -> None:
    sys_id = server.seed(category="inquiry", urgency="3", impact="3", assignment_group=DESK)
    fields = ("category", "urgency", "impact", "assignment_group")
    before, connector = {name: server.incident(sys_id)[name] for name in fields}, connect(server.url)
    with connector.client() as client:
        [response] = [send(client, call) for call in connector.calls(write(sys_id))]
    assert response.status_code == 200
    assert [r.json for r in server.received()] == [{"work_notes": write(sys_id).note}]
    assert {name: server.incident(sys_id)[name] for name in fields} == before
    assert server.journal(sys_id) == [write(sys_id).note]


def test_mapping_values_in_another_format_and_a_missing_user_are_refused_with_their_data() -> None:
    config = ConnectorConfig(system="servicenow", url="https://acme.service-now.com", user="u", token="p")
    with pytest.raises(MappingValueInvalid) as refused:
        ServiceNowConnector(config, FieldMapping(team={"network": "Network Team"}))
    assert (refused.value.field, refused.value.label, refused.value.value) == ("team", "network", "Network Team")
    with pytest.raises(MappingValueInvalid, match="priority.P1"):
        ServiceNowConnector(config, FieldMapping(priority={"P1": "1"}))
    with pytest.raises(SettingMissing) as missing:
        connect(user=None).auth_headers()
    assert missing.value.setting == "TRIAGE_SERVICENOW_USER"


# --- note_exists ----------------------------------------------------------------------------------------------------


def test_note_exists_is_false_before_and_true_after_the_note_landed(server: ServiceNowServer) -> None:
    sys_id, connector = server.seed(), connect(server.url)
    with connector.client() as client:
        assert connector.note_exists(client, write(sys_id)) is False
        send(client, connector.calls(write(sys_id))[0])
        assert connector.note_exists(client, write(sys_id)) is True
        assert connector.note_exists(client, write(sys_id).model_copy(update={"marker": "[triage:ref-other]"})) is False
    lookup = server.received("GET")[-1]
    assert lookup.path == "/api/now/table/sys_journal_field"
    assert lookup.query["sysparm_query"] == f"element_id={sys_id}^element=work_notes^valueLIKE[triage:ref-other]"


def test_a_public_comment_with_the_marker_is_not_the_note(server: ServiceNowServer) -> None:
    sys_id, connector = server.seed(), connect(server.url)
    with connector.client() as client:
        client.patch(f"/api/now/table/incident/{sys_id}", json={"comments": "see [triage:ref-5f2c]"})
        assert connector.note_exists(client, write(sys_id)) is False


def test_a_write_whose_answer_was_lost_is_found_by_note_exists(server: ServiceNowServer) -> None:
    sys_id, connector = server.seed(), connect(server.url)
    server.fail(Fault(method="PATCH", status=502, apply_first=True))
    with connector.client() as client:
        assert send(client, connector.calls(write(sys_id))[0]).status_code == 502
        assert connector.note_exists(client, write(sys_id)) is True
    assert server.journal(sys_id) == [write(sys_id).note]


# --- backfill -------------------------------------------------------------------------------------------------------


def seed_history(server: ServiceNowServer, new: int) -> list[str]:
    """Three incidents before SINCE, then `new` ones after it, one hour apart; the new sys_ids in creation order."""
    for hours in (72, 48, 1):
        server.seed(sys_created_on=f"{SINCE - timedelta(hours=hours):%Y-%m-%d %H:%M:%S}")
    return [
        server.seed(f"Ticket {n}", sys_created_on=f"{SINCE + timedelta(hours=n):%Y-%m-%d %H:%M:%S}") for n in range(new)
    ]


@pytest.mark.parametrize(
    ("link_header", "new", "sizes"),
    [(True, 7, [3, 3, 1]), (False, 7, [3, 3, 1]), (True, 9, [3, 3, 3]), (False, 9, [3, 3, 3, 0])],
)
def test_backfill_walks_every_page_of_tickets_created_since(link_header: bool, new: int, sizes: list[int]) -> None:
    with running(ServiceNowServer(link_header=link_header)) as server:
        assert isinstance(server, ServiceNowServer)
        expected, connector = seed_history(server, new), connect(server.url, page_size=3)
        pages, cursor = [], None
        with connector.client() as client:
            while True:
                page = connector.backfill_page(client, SINCE, cursor)
                pages.append(page)
                if (cursor := page.cursor) is None:
                    break
    assert [len(page.events) for page in pages] == sizes
    events = [event for page in pages for event in page.events]
    assert [event.external_id for event in events] == expected
    assert {(event.kind, event.event_id) for event in events} == {("created", f"backfill:{i}") for i in expected}


def test_backfill_resumes_from_a_returned_cursor(server: ServiceNowServer) -> None:
    expected, connector = seed_history(server, 8), connect(server.url, page_size=3)
    with connector.client() as client:
        first = connector.backfill_page(client, SINCE, None)
        second = connector.backfill_page(client, SINCE, first.cursor)
        again = connector.backfill_page(client, SINCE, first.cursor)
        rest = connector.backfill_page(client, SINCE, second.cursor)
    assert again == second and rest.cursor is None
    assert [e.external_id for page in (first, second, rest) for e in page.events] == expected
    with pytest.raises(BackfillCursorInvalid), connector.client() as client:
        connector.backfill_page(client, SINCE, "page-two")


def test_backfill_reads_table_api_rows_into_current_values(server: ServiceNowServer) -> None:
    for row in fixture("table_incident_page")["result"]:
        server.seed(**row)
    connector = connect(server.url)
    since = datetime(2026, 2, 21, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 2026-02-20 23:00 UTC
    with connector.client() as client:
        page = connector.backfill_page(client, since, None)
    assert server.received()[-1].query["sysparm_query"].startswith("sys_created_on>=2026-02-20 23:00:00^")
    laptop, wifi = page.events
    assert (laptop.title, laptop.values, laptop.resolved) == ("New starter needs a laptop", LAPTOP, False)
    assert (wifi.values, wifi.resolved) == ({"category": "network", "priority": "1/1", "team": NETWORK}, True)
    assert wifi.created_at == datetime(2026, 2, 22, 7, 45, 19, tzinfo=UTC)
    assert page.cursor is None


# --- vendor errors reach the caller ---------------------------------------------------------------------------------


def test_wrong_credentials_come_back_as_the_vendors_401(server: ServiceNowServer) -> None:
    sys_id, connector = server.seed(), connect(server.url, token="wrong")
    with connector.client() as client:
        response = send(client, connector.calls(write(sys_id, category="network"))[0])
        assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
        with pytest.raises(httpx.HTTPStatusError) as lookup:
            connector.note_exists(client, write(sys_id))
        with pytest.raises(httpx.HTTPStatusError) as backfill:
            connector.backfill_page(client, SINCE, None)
    assert lookup.value.response.status_code == backfill.value.response.status_code == 401
    assert server.journal(sys_id) == [] and server.incident(sys_id)["category"] == "inquiry"


def test_an_unknown_incident_comes_back_as_the_vendors_404(server: ServiceNowServer) -> None:
    connector = connect(server.url)
    with connector.client() as client:
        response = send(client, connector.calls(write("0" * 32, team=NETWORK))[0])
        assert (response.status_code, response.json()) == (404, NO_RECORD)
        assert client.get(f"/api/now/table/incident/{'0' * 32}").status_code == 404
