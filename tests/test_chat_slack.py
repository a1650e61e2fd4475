"""Slack slash commands: form parsing, v0 signatures with a replay window, and blocks rendered from real answers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from agents.answers.answer import Answerer, AskResult, Citation, StaleSource
from agents.answers.owners import OwnerResolver
from agents.types import Owner
from agents.web.slack import (
    MAX_BODY_BYTES,
    SlackRequestError,
    handle_slash_command,
    parse_slash_command,
    render_message,
    sign,
    verify_signature,
)
from kb.loader import load_kb
from retrieval.corpus import load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import HybridSearcher
from retrieval.index import SopIndex

REPO = Path(__file__).resolve().parent.parent
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_790_000_000.0


def form(text: str = "who owns the VPN?", **extra: str) -> bytes:
    fields = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": "T0001",
        "team_domain": "kestrel",
        "channel_id": "C2147483705",
        "channel_name": "it-help",
        "user_id": "U2147483697",
        "user_name": "sam.taylor",
        "command": "/ask",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/1234/5678",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        **extra,
    }
    return urlencode(fields).encode()


def headers(body: bytes, *, secret: str = SECRET, at: float = NOW) -> dict[str, str]:
    timestamp = str(int(at))
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": sign(secret, timestamp, body)}


@pytest.fixture(scope="module")
def answerer() -> Answerer:
    embedder = HashingEmbedder()
    now = datetime(2026, 11, 22, tzinfo=UTC)
    searcher = HybridSearcher(SopIndex.build(load_chunks(REPO / "kb" / "sops"), embedder))
    return Answerer(searcher, OwnerResolver(load_kb(REPO / "kb"), embedder, clock=lambda: now), clock=lambda: now)


# ---- parsing ----------------------------------------------------------------------------------------------


def test_parse_keeps_known_fields_and_the_rest_apart() -> None:
    cmd = parse_slash_command(form("how do I reset my password?", api_app_id="A1", new_field="x"))
    assert cmd.command == "/ask" and cmd.text == "how do I reset my password?" and cmd.user_name == "sam.taylor"
    assert cmd.api_app_id == "A1" and cmd.other == {"new_field": "x"}
    assert "gIku" not in repr(cmd)  # the verification token is not printed


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"text=hello", 400, "no `command`"),
        (b"", 400, "no `command`"),
        (b"\xff\xfe\x00", 400, "not a form-encoded"),
        (b"command=%2Fask&text=" + b"a" * MAX_BODY_BYTES, 413, "more than"),
        (urlencode({"command": "/ask", "text": "x" * 4001}).encode(), 400, "longer than 4000"),
    ],
)
def test_parse_refuses_bad_bodies(body: bytes, status: int, words: str) -> None:
    with pytest.raises(SlackRequestError) as err:
        parse_slash_command(body)
    assert err.value.status == status and words in err.value.reason


# ---- signatures --------------------------------------------------------------------------------------------


def test_signature_is_slacks_v0_hmac() -> None:
    body = form()
    expected = "v0=" + hmac.new(SECRET.encode(), b"v0:1790000000:" + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1790000000", body) == expected
    verify_signature(SECRET, headers(body), body, now=lambda: NOW)
    lower = {k.lower(): v for k, v in headers(body).items()}  # header names are case-insensitive
    verify_signature(SECRET, lower, body, now=lambda: NOW + 299)


@pytest.mark.parametrize(
    ("make_headers", "words"),
    [
        (lambda b: headers(b, secret="another-secret"), "does not match"),
        (lambda b: headers(b, at=NOW - 301), "replay"),
        (lambda b: headers(b, at=NOW + 400), "replay"),
        (lambda b: {"X-Slack-Signature": sign(SECRET, str(int(NOW)), b)}, "missing"),
        (lambda b: {**headers(b), "X-Slack-Request-Timestamp": "soon"}, "not a number"),
    ],
)
def test_bad_signatures_are_refused(make_headers, words: str) -> None:  # type: ignore[no-untyped-def]
    body = form()
    with pytest.raises(SlackRequestError) as err:
        verify_signature(SECRET, make_headers(body), body, now=lambda: NOW)
    assert err.value.status == 401 and words in err.value.reason


def test_a_changed_body_breaks_the_signature() -> None:
    body = form()
    with pytest.raises(SlackRequestError):
        verify_signature(SECRET, headers(body), form("who owns payroll?"), now=lambda: NOW)


# ---- rendering -----------------------------------------------------------------------------------------------


def test_render_has_answer_owner_sources_and_stale_warning() -> None:
    result = AskResult(
        question="q",
        answer="Use **Connect** <now> & wait",
        citations=[Citation(doc_id="sop-a", title="Guide <A>", section="Steps", path="sop-a.md")],
        owner=Owner(
            team="network",
            team_name="Network Operations",
            people=["diego.ramos"],
            on_call="oliver.grant",
            channel="#netops",
        ),
        confidence=0.61,
        backend="classical:extractive",
        abstained=False,
        stale_sources=[StaleSource(doc_id="sop-a", last_reviewed=date(2024, 1, 2), age_days=700)],
    )
    message = render_message(result)
    assert message["response_type"] == "ephemeral" and message["text"].startswith("Use **Connect**")
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "Use *Connect* &lt;now&gt; &amp; wait"
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*Owner*\nNetwork Operations",
        "*People*\n@diego.ramos",
        "*On call*\n@oliver.grant",
        "*Channel*\n#netops",
    ]
    assert "Guide &lt;A&gt; `[sop-a#Steps]`" in blocks[2]["elements"][0]["text"]
    assert "sop-a (reviewed 2024-01-02)" in blocks[3]["elements"][0]["text"]
    assert "confidence 0.61" in blocks[-1]["elements"][0]["text"]
    assert render_message(result, in_channel=True)["response_type"] == "in_channel"


def test_long_answers_are_clipped_to_slack_limits() -> None:
    result = AskResult(question="q", answer="word " * 2000, backend="b", abstained=False)
    message = render_message(result)
    assert len(message["blocks"][0]["text"]["text"]) <= 3000 and len(message["text"]) <= 500


# ---- end to end ---------------------------------------------------------------------------------------------


def test_handle_verifies_asks_and_renders(answerer: Answerer) -> None:
    body = form("How do I connect to the VPN from home?")
    message = handle_slash_command(body, headers(body), answerer.ask, signing_secret=SECRET, now=lambda: NOW)
    owner_fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert owner_fields[0] == "*Owner*\nNetwork Operations" and owner_fields[3] == "*Channel*\n#netops"
    assert "[sop-vpn" in message["blocks"][2]["elements"][0]["text"]


def test_handle_refuses_unsigned_requests_when_a_secret_is_set(answerer: Answerer) -> None:
    body = form()
    with pytest.raises(SlackRequestError) as err:
        handle_slash_command(body, {}, answerer.ask, signing_secret=SECRET, now=lambda: NOW)
    assert err.value.status == 401
    assert handle_slash_command(body, {}, answerer.ask)["blocks"]  # no secret configured: not checked


def test_handle_empty_text_shows_usage_and_off_topic_abstains(answerer: Answerer) -> None:
    usage = handle_slash_command(form("   "), {}, answerer.ask)
    assert "/ask who owns the VPN?" in usage["text"]
    message = handle_slash_command(form("hi"), {}, answerer.ask)
    assert "I could not find an answer" in message["blocks"][0]["text"]["text"]
    assert "no answer found" in message["blocks"][-1]["elements"][0]["text"]
