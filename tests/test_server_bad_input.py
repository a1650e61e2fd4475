"""Bad input gets the right status and a stable error code, and leaves what is stored untouched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server_api import Api, make_api


@pytest.fixture
def api(trained_service, served_answerer, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(trained_service, served_answerer, tmp_path)


@pytest.fixture
def stored(api: Api) -> dict:
    """One ticket that every bad request must leave exactly as it is."""
    return api.post_ticket("Laptop dock flickers", "the monitor on my dock flickers every few minutes")


JSON = {"Content-Type": "application/json"}
BAD_BODIES = [
    ("malformed JSON", "/v1/tickets", b'{"title": "x",', 400, "invalid_json"),
    ("not an object", "/v1/tickets", b"[1, 2, 3]", 422, "invalid_request"),
    ("wrong type", "/v1/tickets", json.dumps({"title": 42, "body": ["a"]}).encode(), 422, "invalid_request"),
    ("unknown field", "/v1/tickets", json.dumps({"title": "x", "urgent": True}).encode(), 422, "invalid_request"),
    ("title too long", "/v1/tickets", json.dumps({"title": "x" * 501}).encode(), 422, "invalid_request"),
    ("invalid UTF-8", "/v1/tickets", b'{"title": "caf\xe9 \xff\xfe"}', 400, "invalid_body"),
    ("10 MB body", "/v1/tickets", b'{"title": "' + b"a" * 10_000_000 + b'"}', 413, "body_too_large"),
    ("10,000 tickets", "/v1/tickets/batch", json.dumps({"tickets": [{}] * 10_000}).encode(), 422, "batch_too_large"),
    ("10,000 stateless", "/v1/triage/batch", json.dumps({"tickets": [{}] * 10_000}).encode(), 422, "batch_too_large"),
    ("empty batch", "/v1/tickets/batch", b'{"tickets": []}', 422, "empty_batch"),
    (
        "bad patch status",
        "/v1/feedback",
        json.dumps({"ticket_id": "x", "action": "maybe"}).encode(),
        422,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies(api: Api, stored: dict, case: str, path: str, body: bytes, status: int, code: str) -> None:
    response = api.client.post(path, content=body, headers={**api.triage, **JSON})
    assert response.status_code == status, response.text[:300]
    assert response.json()["code"] == code and response.json()["message"]
    assert api.count() == 1
    assert api.client.get(f"/v1/tickets/{stored['id']}", headers=api.read).json() == stored


def test_bad_patches_and_unknown_ids(api: Api, stored: dict) -> None:
    url = f"/v1/tickets/{stored['id']}"
    cases = [
        ({"status": "received"}, 422, "invalid_request"),  # only the service sets received
        ({"status": None}, 422, "invalid_change"),
        ({"team": "the-ceo"}, 422, "invalid_change"),
        ({"priority": "P9"}, 422, "invalid_change"),  # not in the taxonomy
        ({"category": None}, 422, "invalid_change"),
    ]
    for patch, status, code in cases:
        response = api.client.patch(url, json=patch, headers=api.triage)
        assert (response.status_code, response.json()["code"]) == (status, code), patch
    for method, path in [
        ("GET", "/v1/tickets/tkt_missing"),
        ("PATCH", "/v1/tickets/tkt_missing"),
        ("GET", "/v1/tickets/..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/v1/tickets/%00"),
    ]:
        response = api.client.request(method, path, json={} if method == "PATCH" else None, headers=api.admin)
        assert response.status_code == 404 and response.json()["code"] in ("ticket_not_found", "not_found")
    assert api.client.get("/v1/nothing-here", headers=api.read).json()["code"] == "not_found"
    assert api.client.get(url, headers=api.read).json() == stored


def test_bad_query_parameters(api: Api) -> None:
    for params in ({"limit": 0}, {"limit": 10_000}, {"offset": -1}, {"status": "nonsense"}, {"needs_human": "perhaps"}):
        response = api.client.get("/v1/tickets", params=params, headers=api.read)
        assert response.status_code == 422 and response.json()["code"] == "invalid_request", params
    bad_key = api.client.post("/v1/tickets", json={"title": "x"}, headers={**api.triage, "Idempotency-Key": "a" * 201})
    assert bad_key.status_code == 422 and bad_key.json()["code"] == "invalid_idempotency_key"


def test_sql_looking_text_is_only_text(api: Api, stored: dict) -> None:
    title = "Robert'); DROP TABLE tickets;--"
    body = "' OR '1'='1' -- ; UPDATE api_keys SET scopes='[\"admin\"]'; SELECT * FROM audit"
    record = api.post_ticket(title, body)
    fetched = api.client.get(f"/v1/tickets/{record['id']}", headers=api.read).json()
    assert (fetched["title"], fetched["body"]) == (title, body)
    sneaky = api.client.get("/v1/tickets", headers=api.read, params={"team": "x' OR '1'='1"}).json()
    assert sneaky["total"] == 0
    assert api.count() == 2
    assert api.client.get(f"/v1/tickets/{stored['id']}", headers=api.read).json() == stored


def test_html_in_tickets_is_escaped_in_the_console(api: Api) -> None:
    title = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    api.post_ticket(title, "<b>bold</b> & <iframe src=//evil></iframe>")
    queue = api.client.get("/console/queue", headers=api.read).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in queue
    assert "<script" not in queue and "<img" not in queue
    page = api.client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/console.js"></script>' in page.text
