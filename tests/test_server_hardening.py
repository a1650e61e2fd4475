"""Problems found by probing the running service: deep and huge metadata, floods of bad credentials, what
/readyz tells strangers, and API keys in the access log. TestClient on a real app, or `triage serve` itself."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from serverkit import ServerProcess, fresh_data_dir
from sqlalchemy import event
from test_server_api import Api, make_api

from agents.store.records import OpenTicket
from agents.types import MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from agents.web.access_log import RedactKeys, redact_url
from agents.web.auth import FAILED_AUTH_BURST, FAILED_AUTH_PER_SECOND
from agents.web.limits import RateLimiter

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def api(trained_service, served_answerer, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(trained_service, served_answerer, tmp_path)


@pytest.fixture(scope="module")
def server(served_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """`triage serve` in its own process (its output, access log included, goes to a file) and its admin key."""
    root = tmp_path_factory.mktemp("hardening")
    process = ServerProcess(fresh_data_dir(served_data_dir, root / "data"), root / "server.log").start()
    try:
        yield process, process.printed_keys()[0]
    finally:
        process.stop()


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of objects nested `depth` levels deep."""
    return '{"a":' * depth + leaf + "}" * depth


def problems(response: Any) -> str:
    """The validation messages of a 422 in the house error shape."""
    body = response.json()
    assert response.status_code == 422 and body["code"] == "invalid_request" and body["message"], response.text[:300]
    return " ".join(d["msg"] for d in body["detail"])


# ---- 1. deep JSON: a 422, and the keep-alive connection goes on ---------------------------------------------


def test_deeply_nested_metadata_is_a_422_on_a_connection_that_stays_open(server: tuple[ServerProcess, str]) -> None:
    process, key = server
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", **JSON}
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        sock = conn.sock
        for depth in (MAX_METADATA_DEPTH + 1, 256, 300, 600, 900):
            conn.request(
                "POST", "/v1/tickets", body=f'{{"title": "deep", "metadata": {nested(depth)}}}', headers=headers
            )
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 422, (depth, body)
            assert body["code"] == "invalid_request" and body["message"] and "MAX_METADATA_DEPTH" in str(body["detail"])
            assert response.getheader("connection") != "close"
        conn.request("GET", "/v1/tickets?limit=1", headers=headers)
        listed = conn.getresponse()
        assert listed.status == 200 and json.loads(listed.read())["total"] == 0
        assert conn.sock is sock  # the same socket all along: never closed or reset by the server
    finally:
        conn.close()


# ---- 2. metadata caps, and ask reads no metadata ------------------------------------------------------------


def test_metadata_over_the_caps_is_refused_naming_the_limit(api: Api) -> None:
    post = api.client.post
    big = {"title": "big", "metadata": {"blob": "x" * MAX_METADATA_BYTES}}
    assert f"{MAX_METADATA_BYTES}-byte limit (MAX_METADATA_BYTES)" in problems(
        post("/v1/tickets", json=big, headers=api.triage)
    )
    deep = f'{{"title": "deep", "metadata": {nested(MAX_METADATA_DEPTH + 1)}}}'
    message = problems(post("/v1/tickets", content=deep, headers={**api.triage, **JSON}))
    assert f"deeper than {MAX_METADATA_DEPTH} levels (MAX_METADATA_DEPTH)" in message
    deep_in_list = {"title": "deep", "metadata": {"a": [[[[[[[[1]]]]]]]]}}  # arrays count as levels too
    assert "MAX_METADATA_DEPTH" in problems(post("/v1/triage", json=deep_in_list, headers=api.triage))
    batch = {"tickets": [{"title": "fine"}, big]}
    assert "MAX_METADATA_BYTES" in problems(post("/v1/tickets/batch", json=batch, headers=api.triage))
    assert api.count() == 0

    at_the_limits = f'{{"title": "ok", "metadata": {nested(MAX_METADATA_DEPTH)}}}'
    assert post("/v1/tickets", content=at_the_limits, headers={**api.triage, **JSON}).status_code == 201
    blob = "x" * (MAX_METADATA_BYTES - len('{"blob":""}'))
    full = post("/v1/tickets", json={"title": "ok", "metadata": {"blob": blob}}, headers=api.triage)
    assert full.status_code == 201 and full.json()["metadata"] == {"blob": blob}
    assert api.count() == 2


def test_ask_reads_open_tickets_without_their_metadata(api: Api) -> None:
    store = api.client.app.state.core.store  # type: ignore[attr-defined]
    padding = {"log": "y" * (MAX_METADATA_BYTES - 100)}
    outage = api.client.post(
        "/v1/tickets",
        json={"title": "Outlook e-mail outage", "body": "nobody on floor 3 receives e-mail", "metadata": padding},
        headers=api.triage,
    ).json()
    api.client.patch(f"/v1/tickets/{outage['id']}", json={"assignee": "li.wei"}, headers=api.triage)
    for i in range(3):
        api.client.post("/v1/tickets", json={"title": f"printer {i} jams", "metadata": padding}, headers=api.triage)

    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        asked = api.client.post("/v1/ask", json={"question": "who is handling the e-mail outage?"}, headers=api.read)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert asked.status_code == 200
    assert [(t["id"], t["assignee"]) for t in asked.json()["handling"]] == [(outage["id"], "li.wei")]
    reads = [s for s in statements if "FROM tickets" in s]
    assert len(reads) == 1 and "metadata" not in reads[0] and "result" not in reads[0] and ".body" not in reads[0]

    listed = store.open_tickets(10)
    assert len(listed) == 4 and all(isinstance(t, OpenTicket) for t in listed)
    assert listed[-1].id == outage["id"] and listed[-1].assignee == "li.wei"


# ---- 3. Slack: the signature before the shared bucket ---------------------------------------------------------


def slack_post(api: Api, form: dict[str, str], secret: str | None) -> Any:
    body = urlencode(form).encode()
    stamp = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded"}
    if secret is not None:
        digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        headers["X-Slack-Signature"] = f"v0={digest}"
    return api.client.post("/v1/chat/slack", content=body, headers=headers)


def test_unsigned_slack_posts_do_not_spend_the_slack_bucket(trained_service, served_answerer, tmp_path: Path) -> None:
    form = {"command": "/ask", "text": "who owns the VPN?", "user_id": "U1"}
    burst = 3
    for api in make_api(
        trained_service,
        served_answerer,
        tmp_path,
        slack_signing_secret="s3cret",
        rate_limit_burst=burst,
        rate_limit_per_second=0.001,  # no refill within the test
    ):
        flood = [slack_post(api, form, None), *(slack_post(api, form, "not-the-secret") for _ in range(burst * 2))]
        assert [r.status_code for r in flood] == [401] * len(flood)
        assert {r.json()["code"] for r in flood} == {"invalid_signature"}
        signed = [slack_post(api, form, "s3cret") for _ in range(burst + 1)]
        assert [r.status_code for r in signed] == [200] * burst + [429]  # the bucket itself still works
        assert signed[0].json()["blocks"] and int(signed[-1].headers["retry-after"]) >= 1


# ---- 4. refused credentials are rate-limited per client address -----------------------------------------------


def test_refused_credentials_get_429_per_address_while_valid_keys_go_on(api: Api) -> None:
    gate = api.client.app.state.core.gate  # type: ignore[attr-defined]
    gate.failures = RateLimiter(FAILED_AUTH_PER_SECOND, FAILED_AUTH_BURST, clock=lambda: 0.0)  # time stands still
    wrong = {"Authorization": "Bearer tri_000000000000_wrong"}
    codes = [api.client.get("/v1/tickets", headers=wrong).status_code for _ in range(FAILED_AUTH_BURST + 3)]
    assert codes == [401] * FAILED_AUTH_BURST + [429] * 3
    limited = api.client.post("/v1/tickets", json={"title": "x"}, headers=wrong)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert "refused credentials" in limited.json()["message"] and int(limited.headers["retry-after"]) >= 1
    assert api.client.get("/v1/tickets").status_code == 429  # no key at all is a refused credential too
    # a valid key spends from its own bucket (per key id), not from the address's bucket of refusals
    assert api.client.get("/v1/tickets", headers=api.read).status_code == 200
    assert api.post_ticket("VPN will not connect")["status"] == "triaged"
    assert api.client.get("/v1/tickets", headers=api.triage).status_code == 403  # still a 403, not a 429


# ---- 5. /readyz: details only for a read key --------------------------------------------------------------------


def test_readyz_shows_details_only_to_a_key_with_the_read_scope(api: Api) -> None:
    api.post_ticket("printer jams on floor 2")
    strangers = [{}, {"Authorization": "Bearer tri_000000000000_wrong"}, {"X-API-Key": "nonsense"}, api.triage]
    for headers in strangers:
        response = api.client.get("/readyz", headers=headers)
        assert response.status_code == 200 and response.json() == {"status": "ready"}
    for headers in (api.read, api.admin):
        details = api.client.get("/readyz", headers=headers).json()
        assert details["status"] == "ready" and details["tickets"] == {"triaged": 1}
        assert details["models"] and details["auth_dev_mode"] is False and details["embedder"].startswith("hashing")


# ---- 6. keys in the query string stay out of the access log -----------------------------------------------------


def test_keys_in_the_query_string_are_masked_in_the_access_log(server: tuple[ServerProcess, str]) -> None:
    process, key = server
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=30)
    try:
        for path in (f"/v1/tickets?api_key={key}&limit=1", f"/healthz?key={key}", f"/readyz?token=abc123&x={key}"):
            conn.request("GET", path)
            conn.getresponse().read()
    finally:
        conn.close()
    log = process.output()
    assert log.count(key.split("_", 2)[2]) == 1  # printed once, on the first start; never in the access log
    access = [line for line in log.splitlines() if '"GET /' in line]
    assert any("/v1/tickets?api_key=***&limit=1" in line for line in access), access
    assert any("/healthz?key=*** " in line for line in access) and "abc123" not in log


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/tickets?limit=5&status=triaged", "/v1/tickets?limit=5&status=triaged"),
        ("/v1/tickets?API_KEY=s3cr3t&limit=5", "/v1/tickets?API_KEY=***&limit=5"),
        ("/x?monkey=1&key=abc&keys=2", "/x?monkey=1&key=***&keys=2"),
        ("/x?q=tri_0123456789ab_Zz-9_x&p=1", "/x?q=***&p=1"),
        ("/x?q=tri%5F0123456789ab%5FZz-9", "/x?q=***"),
    ],
)
def test_the_filter_masks_a_record_shaped_like_uvicorns(path: str, logged: str) -> None:
    assert redact_url(path) == logged
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", path, "1.1", 200),
        None,
    )
    assert RedactKeys().filter(record) and record.getMessage() == f'1.2.3.4:5 - "GET {logged} HTTP/1.1" 200'
