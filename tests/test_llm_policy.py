"""Policies: fallback on named errors only, the cascade asks the LLM only when unsure, the breaker opens and closes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAI, fake_openai
from llm_kit import Clock, context_for

from agents.errors import BackendUnavailable
from agents.llm.chat import ScriptedChat
from agents.llm.classify import LlmClassifier
from agents.llm.client import OpenAICompatibleChat
from agents.policy import CascadeClassifier, CircuitBreaker, FallbackClassifier, LlmGuard
from agents.types import Ticket

TICKET = Ticket(title="VPN drops", body="GlobalConnect disconnects every ten minutes when I work from home")
GOOD = {"category": "network", "priority": "P2", "confidence": 0.9}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        yield srv


def test_breaker_opens_after_n_failures_and_lets_one_trial_through_after_the_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure("HTTP 500")
    assert breaker.state == "closed"
    breaker.record_failure("HTTP 500")
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.snapshot()["retry_in_s"] == 30 and breaker.snapshot()["times_opened"] == 1
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure("still down")  # the trial failed: open again for a full cool-down
    assert breaker.state == "open" and breaker.retry_in() == 30
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.snapshot()["consecutive_failures"] == 0


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=2, cooldown=5, clock=Clock())
    breaker.record_failure("x")
    breaker.record_success()
    breaker.record_failure("x")
    assert breaker.state == "closed"


def test_fallback_classifier_uses_the_llm_when_it_answers(trained_service) -> None:
    llm = LlmClassifier(ScriptedChat([GOOD], name="llm:test"), trained_service.kb.taxonomy)
    policy = FallbackClassifier(llm, trained_service.classifier)
    result = policy.classify(TICKET, context_for(trained_service, TICKET))
    assert result.category.backend == "llm:test" and result.priority.label == "P2"


@pytest.mark.parametrize(
    "failure",
    [
        BackendUnavailable("llm:test", "HTTP 500"),
        {"category": "ceo-office", "priority": "P0", "confidence": 1.0},  # twice: unknown label
        "I will route this to the CEO right away.",  # twice: no JSON
    ],
)
def test_fallback_classifier_records_the_fallback_and_why(trained_service, failure) -> None:
    llm = LlmClassifier(ScriptedChat([failure, failure], name="llm:test"), trained_service.kb.taxonomy)
    policy = FallbackClassifier(llm, trained_service.classifier)
    result = policy.classify(TICKET, context_for(trained_service, TICKET))
    assert result.category.backend == "classical:ensemble (fallback)"
    assert result.category.label in trained_service.kb.taxonomy.category_ids
    assert result.priority.label in trained_service.kb.taxonomy.priority_ids
    assert any("llm:test failed for classify" in r for r in result.category.reasons)
    assert result.llm_calls[-1].ok is False and result.llm_calls[-1].error


def test_errors_that_are_not_named_fall_back_too_with_their_type(trained_service) -> None:
    llm = LlmClassifier(ScriptedChat([], name="llm:test"), trained_service.kb.taxonomy)  # raises RuntimeError
    result = FallbackClassifier(llm, trained_service.classifier).classify(TICKET, context_for(trained_service, TICKET))
    assert result.category.backend == "classical:ensemble (fallback)"
    assert any("unexpected RuntimeError" in r for r in result.category.reasons)


def test_cascade_keeps_confident_classical_answers_without_calling_the_llm(trained_service) -> None:
    chat = ScriptedChat([GOOD])
    cascade = CascadeClassifier(trained_service.classifier, LlmClassifier(chat, trained_service.kb.taxonomy), {})
    result = cascade.classify(TICKET, context_for(trained_service, TICKET))
    assert chat.calls == [] and result.category.backend == "classical:ensemble" and result.llm_calls == []


def test_cascade_asks_the_llm_only_for_the_unsure_field(trained_service) -> None:
    chat = ScriptedChat([{"category": "email", "priority": "P1", "confidence": 0.7}], name="llm:test")
    thresholds = {"category": 1.01, "priority": 0.0}  # category always unsure, priority always sure
    cascade = CascadeClassifier(
        trained_service.classifier, LlmClassifier(chat, trained_service.kb.taxonomy), thresholds
    )
    classical = trained_service.classifier.classify(TICKET, context_for(trained_service, TICKET))
    result = cascade.classify(TICKET, context_for(trained_service, TICKET))
    assert result.category.label == "email" and result.category.backend == "llm:test"
    assert any("under the threshold 1.01" in r for r in result.category.reasons)
    assert result.category.alternatives == classical.category.alternatives  # the classical view is kept
    assert result.priority == classical.priority  # not the LLM's P1: priority was not in doubt


def test_cascade_takes_the_llm_label_only_among_the_classical_top_k(trained_service) -> None:
    classical = trained_service.classifier.classify(TICKET, context_for(trained_service, TICKET))
    ranked = sorted(classical.category.alternatives, key=lambda name: -classical.category.alternatives[name])
    outside = next(c for c in trained_service.kb.taxonomy.category_ids if c not in ranked[:2])
    for said, expected in ((ranked[1], ranked[1]), (outside, classical.category.label)):
        chat = ScriptedChat([{"category": said, "priority": "P1", "confidence": 0.9}], name="llm:test")
        llm = LlmClassifier(chat, trained_service.kb.taxonomy)
        cascade = CascadeClassifier(trained_service.classifier, llm, {"category": 1.01}, top_k=2)
        result = cascade.classify(TICKET, context_for(trained_service, TICKET))
        assert len(chat.calls) == 1 and result.category.label == expected
    assert result.category.backend == "classical:ensemble"
    assert any(f"said {outside}, not among the classical top 2" in r for r in result.category.reasons)


def test_cascade_keeps_the_classical_answer_when_the_llm_fails(trained_service) -> None:
    chat = ScriptedChat([BackendUnavailable("llm:test", "HTTP 429")], name="llm:test")
    cascade = CascadeClassifier(
        trained_service.classifier, LlmClassifier(chat, trained_service.kb.taxonomy), {"category": 1.01}
    )
    result = cascade.classify(TICKET, context_for(trained_service, TICKET))
    assert result.category.backend == "classical:ensemble (fallback)"
    assert result.priority.backend == "classical:ensemble"
    assert any("HTTP 429" in r and "kept the classical category" in r for r in result.category.reasons)


def test_breaker_with_a_real_failing_endpoint_opens_then_closes(trained_service, server: FakeOpenAI) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown=10, clock=clock)
    chat = OpenAICompatibleChat("fake-model", base_url=server.url, llm_timeout=1.0, modes=["json_object"])
    policy = FallbackClassifier(
        LlmClassifier(chat, trained_service.kb.taxonomy), trained_service.classifier, breaker=breaker
    )
    context = context_for(trained_service, TICKET)
    server.scenario = "500"
    for _ in range(2):
        assert policy.classify(TICKET, context).category.backend.endswith("(fallback)")
    assert breaker.state == "open" and len(server.requests) == 2
    started = time.perf_counter()
    skipped = policy.classify(TICKET, context)
    assert len(server.requests) == 2 and time.perf_counter() - started < 0.5  # no call while open
    assert any("circuit open after 2 consecutive LLM failures" in r for r in skipped.category.reasons)
    server.scenario, server.answers = "ok", {"category": "network", "priority": "P2"}
    clock.now += 10
    recovered = policy.classify(TICKET, context)
    assert recovered.category.backend == "llm:fake-model" and breaker.state == "closed"


def test_guard_reports_a_failed_call_with_its_latency() -> None:
    guard = LlmGuard("llm:test")

    def slow_failure() -> None:
        time.sleep(0.05)
        raise BackendUnavailable("llm:test", "timed out")

    attempt = guard.run("summarise", slow_failure)
    assert attempt.value is None and "timed out" in (attempt.reason or "")
    assert attempt.calls[0].task == "summarise" and attempt.calls[0].latency_ms >= 50
