"""The REST API through FastAPI's TestClient on a real app: a real SQLite file, the trained engine, real keys."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from agents.app import Engine
from agents.policy import CircuitBreaker
from agents.settings import Settings
from server import create_app


@dataclass
class Api:
    client: TestClient
    admin: dict[str, str]
    read: dict[str, str]
    triage: dict[str, str]

    def post_ticket(self, title: str, body: str = "", **headers: str) -> dict:
        response = self.client.post(
            "/v1/tickets", json={"title": title, "body": body}, headers={**self.triage, **headers}
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def count(self) -> int:
        return self.client.get("/v1/tickets", headers=self.read, params={"limit": 1}).json()["total"]


def make_api(trained_service, answerer, tmp_path: Path, breaker=None, **overrides) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path, embedder="hashing", policy="classical_only", **overrides)
    app = create_app(settings, engine=Engine(trained_service, answerer, breaker or CircuitBreaker()))
    with TestClient(app) as client:
        keys = app.state.core.keys
        headers = {s: {"Authorization": f"Bearer {keys.create(s, [s])[1]}"} for s in ("admin", "read", "triage")}
        yield Api(client, headers["admin"], headers["read"], headers["triage"])


@pytest.fixture
def api(trained_service, served_answerer, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(trained_service, served_answerer, tmp_path)


def test_health_and_readiness_need_no_key_and_details_need_a_read_key(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    ready = api.client.get("/readyz", headers=api.read).json()
    assert ready["status"] == "ready" and ready["index_chunks"] > 0 and ready["embedder"].startswith("hashing")
    assert api.client.get("/openapi.json").json()["paths"]["/v1/tickets"]["post"]


def test_a_ticket_is_stored_triaged_listed_and_worked(api: Api) -> None:
    record = api.post_ticket("VPN will not connect", "GlobalConnect says the gateway is unreachable from home")
    assert record["status"] == "triaged" and record["id"].startswith("tkt_")
    assert record["team"] == record["result"]["team"] == "network"
    assert record["result"]["ticket_id"] == record["id"]
    fetched = api.client.get(f"/v1/tickets/{record['id']}", headers=api.read).json()
    assert fetched == record
    page = api.client.get("/v1/tickets", headers=api.read, params={"team": "network", "status": "triaged"}).json()
    assert [t["id"] for t in page["items"]] == [record["id"]] and page["next_offset"] is None
    assert api.client.get("/v1/tickets", headers=api.read, params={"team": "security"}).json()["total"] == 0

    url = f"/v1/tickets/{record['id']}"
    worked = api.client.patch(url, json={"status": "in_progress", "assignee": "diego.ramos"}, headers=api.triage).json()
    assert worked["status"] == "in_progress" and worked["first_response_at"] and worked["resolved_at"] is None
    done = api.client.patch(url, json={"status": "resolved", "resolution": "restarted the gateway"}, headers=api.triage)
    assert done.json()["resolved_at"] and done.json()["first_response_at"] == worked["first_response_at"]
    reopened = api.client.patch(url, json={"status": "in_progress"}, headers=api.triage).json()
    assert reopened["resolved_at"] is None
    audit = api.client.get("/v1/audit", headers=api.admin, params={"ticket_id": record["id"]}).json()
    kinds = [a["kind"] for a in audit]
    assert kinds.count("triage") == 1 and kinds.count("update") == 3
    assert any(a["detail"].get("reopened") for a in audit)


def test_pagination(api: Api) -> None:
    ids = [api.post_ticket(f"printer {i} jams", "paper jam on floor 2")["id"] for i in range(5)]
    first = api.client.get("/v1/tickets", headers=api.read, params={"limit": 2}).json()
    second = api.client.get("/v1/tickets", headers=api.read, params={"limit": 2, "offset": 2}).json()
    assert first["total"] == 5 and first["next_offset"] == 2 and len(second["items"]) == 2
    seen = [t["id"] for t in first["items"] + second["items"]]
    assert len(set(seen)) == 4 and set(seen) <= set(ids)


def test_keys_scopes_and_revocation(api: Api, tmp_path: Path) -> None:
    no_key = api.client.get("/v1/tickets")
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthenticated"
    assert no_key.headers["www-authenticate"] == "Bearer"
    bad = api.client.get("/v1/tickets", headers={"X-API-Key": "tri_000000000000_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_api_key"
    wrong = api.client.post("/v1/tickets", json={"title": "x"}, headers=api.read)
    assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"
    assert api.client.get("/v1/audit", headers=api.read).status_code == 403
    assert api.client.get("/metrics", headers=api.triage).status_code == 403

    made = api.client.post("/v1/keys", json={"name": "bot", "scopes": ["read"]}, headers=api.admin)
    assert made.status_code == 201
    secret, key_id = made.json()["key"], made.json()["info"]["id"]
    assert api.client.get("/v1/tickets", headers={"X-API-Key": secret}).status_code == 200
    listed = api.client.get("/v1/keys", headers=api.admin).text
    assert key_id in listed and secret not in listed and "hash" not in listed
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.admin).status_code == 200
    assert api.client.get("/v1/tickets", headers={"X-API-Key": secret}).status_code == 401
    assert api.client.delete("/v1/keys/unknown", headers=api.admin).json()["code"] == "key_not_found"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("triage.db*"))
    assert secret.encode() not in stored and secret.split("_")[2].encode() not in stored


def test_rate_limit_per_key_answers_429_with_retry_after(trained_service, served_answerer, tmp_path: Path) -> None:
    for api in make_api(trained_service, served_answerer, tmp_path, rate_limit_per_second=0.5, rate_limit_burst=2):
        codes = [api.client.get("/v1/tickets", headers=api.read).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = api.client.get("/v1/tickets", headers=api.read)
        assert limited.json()["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert api.client.get("/v1/tickets", headers=api.admin).status_code == 200  # another key, its own bucket


def test_dev_mode_needs_no_key_and_says_so_loudly(trained_service, served_answerer, tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING"):
        for api in make_api(trained_service, served_answerer, tmp_path, auth_dev_mode=True):
            assert api.client.post("/v1/tickets", json={"title": "mouse broken"}).status_code == 201
            assert api.client.get("/v1/tickets").json()["total"] == 1
    assert "AUTH DEV MODE" in caplog.text


def test_idempotency_key_replays_and_conflicts(api: Api) -> None:
    first = api.post_ticket("Outlook will not sync", "stuck on updating inbox", **{"Idempotency-Key": "k-1"})
    again = api.client.post(
        "/v1/tickets",
        json={"title": "Outlook will not sync", "body": "stuck on updating inbox"},
        headers={**api.triage, "Idempotency-Key": "k-1"},
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    other = api.client.post(
        "/v1/tickets",
        json={"title": "Outlook will not sync", "body": "another body"},
        headers={**api.triage, "Idempotency-Key": "k-1"},
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert api.count() == 1
    batch = {"tickets": [{"title": "wifi drops"}, {"title": "payslip missing"}]}
    made = api.client.post("/v1/tickets/batch", json=batch, headers={**api.triage, "Idempotency-Key": "b-1"})
    replay = api.client.post("/v1/tickets/batch", json=batch, headers={**api.triage, "Idempotency-Key": "b-1"})
    assert made.status_code == 201 and replay.status_code == 200
    assert [t["id"] for t in made.json()["tickets"]] == [t["id"] for t in replay.json()["tickets"]]
    bigger = {"tickets": batch["tickets"] + [{"title": "one more"}]}
    assert (
        api.client.post("/v1/tickets/batch", json=bigger, headers={**api.triage, "Idempotency-Key": "b-1"}).status_code
        == 409
    )
    assert api.count() == 3


def test_stateless_triage_stores_nothing(api: Api) -> None:
    one = api.client.post(
        "/v1/triage", json={"title": "printer jam", "body": "floor 2 printer jams"}, headers=api.triage
    )
    assert one.status_code == 200 and one.json()["team"] == "workplace"
    tickets = [{"id": f"ext-{i}", "title": t} for i, t in enumerate(["vpn down", "payslip wrong", "phishing mail"])]
    many = api.client.post("/v1/triage/batch", json={"tickets": tickets}, headers=api.triage).json()["results"]
    assert [r["ticket_id"] for r in many] == ["ext-0", "ext-1", "ext-2"]
    assert api.count() == 0


def test_metrics_count_routes_decisions_and_abstentions(api: Api) -> None:
    made = [api.post_ticket("VPN will not connect", "GlobalConnect gateway unreachable"), api.post_ticket("xq zzv")]
    assert made[1]["needs_human"]  # no real words: sent to a human
    api.client.get("/v1/tickets/nope", headers=api.read)
    assert api.client.get("/metrics").status_code == 401
    text = api.client.get("/metrics", headers=api.read).text
    assert 'triage_http_requests_total{method="POST",route="/v1/tickets",status="201"} 2.0' in text
    assert 'triage_http_requests_total{method="GET",route="/v1/tickets/{ticket_id}",status="404"} 1.0' in text
    assert 'triage_decisions_total{backend="classical:ensemble",field="category"} 2.0' in text
    share = sum(r["needs_human"] for r in made) / 2
    assert f"triage_abstention_rate {share}" in text and "triage_fallback_rate 0.0" in text
    assert f"triage_abstentions_total {float(sum(r['needs_human'] for r in made))}" in text
    assert 'triage_tickets{status="triaged"} 2.0' in text
    assert "triage_http_request_duration_seconds_bucket" in text


def test_feedback_accept_and_correct(api: Api) -> None:
    unsure = api.post_ticket("xq zzv", "blorp")
    assert unsure["needs_human"] is True
    review = api.client.get("/console/review", headers=api.read).text
    assert unsure["id"] in review
    corrected = api.client.post(
        "/v1/feedback",
        headers=api.triage,
        json={"ticket_id": unsure["id"], "action": "correct", "field": "team", "value": "security", "comment": "phish"},
    )
    assert corrected.status_code == 201
    assert corrected.json()["feedback"][0] | {"created_at": None, "id": None} == {
        "id": None,
        "ticket_id": unsure["id"],
        "field": "team",
        "action": "correct",
        "predicted": unsure["result"]["team"],  # suggested, not applied: under the threshold
        "label": "security",
        "author": "triage",
        "comment": "phish",
        "created_at": None,
    }
    after = api.client.get(f"/v1/tickets/{unsure['id']}", headers=api.read).json()
    assert after["team"] == "security" and after["reviewed"] is True
    assert unsure["id"] not in api.client.get("/console/review", headers=api.read).text
    waiting = api.client.get("/v1/tickets", headers=api.read, params={"needs_human": True, "reviewed": False}).json()
    assert unsure["id"] not in [t["id"] for t in waiting["items"]]

    sure = api.post_ticket("VPN will not connect", "GlobalConnect gateway unreachable")
    accepted = api.client.post("/v1/feedback", json={"ticket_id": sure["id"], "action": "accept"}, headers=api.triage)
    assert {f["field"]: f["label"] for f in accepted.json()["feedback"]} == {
        "category": sure["result"]["category"],  # the predictions, applied or only suggested
        "priority": sure["result"]["priority"],
        "team": sure["result"]["team"],
    }
    listed = api.client.get("/v1/feedback", headers=api.read, params={"ticket_id": sure["id"]}).json()["feedback"]
    assert len(listed) == 3
    accepted_ticket = api.client.get(f"/v1/tickets/{sure['id']}", headers=api.read).json()
    assert {f: accepted_ticket[f] for f in ("category", "priority", "team")} == {  # accepted suggestions apply
        f: sure["result"][f] for f in ("category", "priority", "team")
    }

    bad_label = {"ticket_id": sure["id"], "action": "correct", "field": "team", "value": "the-ceo"}
    assert api.client.post("/v1/feedback", json=bad_label, headers=api.triage).json()["code"] == "invalid_change"
    no_value = {"ticket_id": sure["id"], "action": "correct", "field": "team"}
    assert api.client.post("/v1/feedback", json=no_value, headers=api.triage).status_code == 422
    unknown = {"ticket_id": "tkt_nope", "action": "accept"}
    assert api.client.post("/v1/feedback", json=unknown, headers=api.triage).status_code == 404


def test_ask_answers_from_sops_and_names_who_handles_open_tickets(api: Api) -> None:
    answer = api.client.post("/v1/ask", json={"question": "How do I reset my KeyGate password?"}, headers=api.read)
    assert answer.status_code == 200
    body = answer.json()
    assert not body["abstained"] and body["citations"] and body["owner"]["team"] == "identity"
    ticket = api.post_ticket("Outlook e-mail outage", "nobody on floor 3 receives e-mail")
    api.client.patch(f"/v1/tickets/{ticket['id']}", json={"assignee": "li.wei"}, headers=api.triage)
    handling = api.client.post("/v1/ask", json={"question": "who is handling the e-mail outage?"}, headers=api.read)
    assert [(t["id"], t["assignee"]) for t in handling.json()["handling"]] == [(ticket["id"], "li.wei")]
    assert api.client.post("/v1/ask", json={"question": ""}, headers=api.read).status_code == 422
    assert api.client.post("/v1/ask", json={"question": "x"}).status_code == 401


def test_slack_slash_command_needs_a_key_or_a_valid_signature(trained_service, served_answerer, tmp_path) -> None:
    form = {"command": "/ask", "text": "who owns the VPN?", "user_id": "U1"}
    for api in make_api(trained_service, served_answerer, tmp_path / "unsigned"):
        assert api.client.post("/v1/chat/slack", data=form).status_code == 401
        message = api.client.post("/v1/chat/slack", data=form, headers=api.read).json()
        assert message["blocks"] and "Network" in str(message)
    for api in make_api(trained_service, served_answerer, tmp_path / "signed", slack_signing_secret="s3cret"):
        body = urlencode(form).encode()
        stamp = str(int(time.time()))
        signature = "v0=" + hmac.new(b"s3cret", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        headers = {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded"}
        good = api.client.post("/v1/chat/slack", content=body, headers={**headers, "X-Slack-Signature": signature})
        assert good.status_code == 200 and good.json()["blocks"]
        forged = api.client.post("/v1/chat/slack", content=body, headers={**headers, "X-Slack-Signature": "v0=00"})
        assert forged.status_code == 401 and forged.json()["code"] == "invalid_signature"


def test_console_shows_the_latest_digest_only_once_one_exists(api: Api, tmp_path: Path, trained_service) -> None:
    from agents.digest.job import build_digest, save_digest

    assert api.client.get("/console/digest", headers=api.read).status_code == 204
    api.post_ticket("VPN will not connect", "GlobalConnect gateway unreachable")
    core = api.client.app.state.core
    digest = build_digest(core.settings, core.store, trained_service.kb, None, now=datetime.now(UTC))
    save_digest(digest, tmp_path)
    shown = api.client.get("/console/digest", headers=api.read)
    assert shown.status_code == 200 and "<html" in shown.text.lower()
    assert 'id="digest-section" hidden' in api.client.get("/").text  # the page unhides it when the fetch works


def test_rate_limiter_refills_and_forgets_idle_callers() -> None:
    from agents.web.limits import MAX_BUCKETS, RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    for i in range(MAX_BUCKETS + 1):
        limiter.take(f"idle-{i}")
    now[0] += 10
    limiter.take("b")
    assert len(limiter._buckets) <= 2
