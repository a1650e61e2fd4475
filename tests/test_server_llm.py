"""The service with the LLM path (a scripted chat model, a real circuit breaker): every LLM call is audited and
counted, fallbacks and the breaker's state show in /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_server_api import Api, make_api

from agents.errors import BackendUnavailable
from agents.llm.chat import ScriptedChat
from agents.llm.classify import ExampleBank, LlmClassifier
from agents.llm.write import ReplyWriter, SummaryWriter
from agents.policy import CircuitBreaker, FallbackClassifier, LlmGuard
from agents.route import Router
from agents.service import TriageService


def fill(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A valid answer for any of the LLM's schemas: the first allowed label, some text, a confidence."""
    out: dict[str, Any] = {}
    for name, spec in (schema or {}).get("properties", {}).items():
        if "enum" in spec:
            out[name] = spec["enum"][0]
        elif spec.get("type") == "number":
            out[name] = 0.9
        elif spec.get("type") == "array":
            out[name] = []
        else:
            out[name] = "GlobalConnect drops when working from home."
    return out


def llm_service(trained, chat: ScriptedChat, breaker: CircuitBreaker, demo_rows) -> TriageService:
    guard = LlmGuard(chat.name, breaker)
    llm = LlmClassifier(chat, trained.kb.taxonomy, examples=ExampleBank.from_rows(demo_rows))
    return TriageService(
        trained.kb, trained.models, trained.embedder, FallbackClassifier(llm, trained.classifier, breaker=breaker),
        Router(trained.kb), trained.searcher, summary_writer=SummaryWriter(chat=chat, guard=guard),
        reply_writer=ReplyWriter(trained.kb, chat, guard=guard), llm_timeout=5.0,
    )  # fmt: skip


@pytest.fixture
def working(trained_service, served_answerer, demo_rows, tmp_path: Path) -> Iterator[Api]:
    chat = ScriptedChat(fn=lambda messages, schema: fill(schema))
    breaker = CircuitBreaker(3, 60.0)
    service = llm_service(trained_service, chat, breaker, demo_rows)
    yield from make_api(service, served_answerer, tmp_path, breaker)


@pytest.fixture
def dead(trained_service, served_answerer, demo_rows, tmp_path: Path) -> Iterator[Api]:
    def down(messages: object, schema: object) -> BackendUnavailable:
        return BackendUnavailable("llm:scripted", "connection refused")

    breaker = CircuitBreaker(2, 60.0)
    service = llm_service(trained_service, ScriptedChat(fn=down), breaker, demo_rows)
    yield from make_api(service, served_answerer, tmp_path, breaker)


def test_llm_calls_are_audited_and_counted(working: Api) -> None:
    ticket = working.post_ticket("VPN drops", "GlobalConnect disconnects every ten minutes when I work from home")
    calls = ticket["result"]["llm_calls"]
    assert calls and all(c["backend"] == "llm:scripted" for c in calls)
    audit = working.client.get("/v1/audit", headers=working.admin, params={"ticket_id": ticket["id"]}).json()
    logged = [a for a in audit if a["kind"] == "llm_call"]
    assert len(logged) == len(calls) and {a["detail"]["task"] for a in logged} == {c["task"] for c in calls}
    assert all(a["model"] == "llm:scripted" for a in logged) and any(c["ok"] and c["prompt_tokens"] for c in calls)
    shape = sorted((c["task"], c["ok"], c["prompt_tokens"], c["completion_tokens"]) for c in calls)
    assert sorted((a["detail"]["task"], a["detail"]["ok"], a["tokens_in"], a["tokens_out"]) for a in logged) == shape
    stateless = working.client.post("/v1/triage", json={"title": "printer jams"}, headers=working.triage).json()
    after = working.client.get("/v1/audit", headers=working.admin, params={"kind": "llm_call"}).json()
    assert len(after) == len(calls) + len(stateless["llm_calls"])  # stateless calls are audited too
    text = working.client.get("/metrics", headers=working.read).text
    prompt = sum(c["prompt_tokens"] or 0 for c in calls + stateless["llm_calls"])
    assert f'triage_llm_tokens_total{{kind="prompt",model="llm:scripted"}} {float(prompt)}' in text
    assert 'triage_llm_breaker_state{state="closed"} 1.0' in text


def test_a_dead_llm_shows_as_fallbacks_and_an_open_breaker(dead: Api) -> None:
    for title in ("VPN drops", "printer jams", "payslip missing"):
        result = dead.client.post("/v1/triage", json={"title": title}, headers=dead.triage).json()
        assert "(fallback)" in result["backend"]["category"]
    text = dead.client.get("/metrics", headers=dead.read).text
    assert "triage_fallback_rate 1.0" in text
    assert 'triage_llm_breaker_state{state="open"} 1.0' in text
    assert 'triage_llm_breaker_state{state="closed"} 0.0' in text
