"""Replies that used to crash or be refused, Retry-After on 429, and failed LLM calls in the audit trail: on real
sockets (the fake endpoint), through the real service and the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_openai_server import DEEP_NESTING, FakeOpenAI, fake_openai
from test_server_api import Api, make_api

from agents.answers.answer import Answerer
from agents.answers.llm_writer import LlmAnswerWriter
from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.chat import MAX_REPLY_DEPTH, ChatModel, ScriptedChat, extract_json, nesting_depth
from agents.llm.classify import ExampleBank, LlmClassifier
from agents.llm.client import OpenAICompatibleChat, retry_after
from agents.llm.write import ReplyWriter, SummaryWriter
from agents.policy import CircuitBreaker, FallbackClassifier, LlmGuard
from agents.route import Router
from agents.service import TriageService
from agents.types import Deadline, Ticket

BUDGET = 1.0
TICKET = Ticket(id="T-1", title="VPN drops", body="GlobalConnect disconnects every ten minutes when I work from home")
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["network", "email"]}, "summary": {"type": "string"}},
    "required": ["category", "summary"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "label it"}, {"role": "user", "content": "<ticket>\nvpn down\n</ticket>"}]
BROKEN = ["deep_nesting", "truncated", "cut_body"]  # each gave a crash (deep_nesting) or must give a fallback


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        yield srv


def service_with(trained, chat: ChatModel, demo_rows, llm_timeout: float = BUDGET) -> TriageService:  # type: ignore[no-untyped-def]
    """An llm_first service (as the composition root builds it) over the session's models and this chat model."""
    guard = LlmGuard(chat.name)
    llm = LlmClassifier(chat, trained.kb.taxonomy, examples=ExampleBank.from_rows(demo_rows))
    return TriageService(
        trained.kb, trained.models, trained.embedder, FallbackClassifier(llm, trained.classifier),
        Router(trained.kb), trained.searcher, summary_writer=SummaryWriter(chat=chat, guard=guard),
        reply_writer=ReplyWriter(trained.kb, chat, guard=guard), llm_timeout=llm_timeout,
    )  # fmt: skip


def fake_chat(server: FakeOpenAI, timeout: float = BUDGET) -> OpenAICompatibleChat:
    return OpenAICompatibleChat("fake-model", base_url=server.url, llm_timeout=timeout)


def assert_fallback(result, kb, words: str) -> None:  # type: ignore[no-untyped-def]
    """A valid result whose every LLM part fell back to the classical path, with `words` in a reason."""
    assert result.category in kb.taxonomy.category_ids and result.priority in kb.taxonomy.priority_ids
    assert result.team in kb.teams and result.summary and result.suggested_reply
    assert result.backend["category"] == result.backend["priority"] == "classical:ensemble (fallback)"
    assert result.backend["summary"].endswith("(fallback)") and result.backend["reply"].endswith("(fallback)")
    assert any(words in r for r in result.reasons), result.reasons


# ---- the parse: bounded before it starts, lenient about raw newlines ----------------------------------------------


def test_deep_nesting_is_refused_by_a_scan_before_parsing() -> None:
    with pytest.raises(InvalidModelOutput, match=f"nests deeper than {MAX_REPLY_DEPTH} levels"):
        extract_json(DEEP_NESTING)  # was RecursionError
    hidden = '{ " {"a":' + "[" * 5000 + "]" * 5000 + "}"  # a stray quote hides the depth from the scan
    with pytest.raises(InvalidModelOutput, match="nests deeper"):
        extract_json(hidden)
    assert nesting_depth('{"a": "[[[[{{{{", "b": [[1]]}') == 3  # brackets inside strings do not count
    assert extract_json('{"a": {"b": {"c": [1]}}}') == {"a": {"b": {"c": [1]}}}


def test_raw_newlines_inside_a_string_are_accepted() -> None:
    assert extract_json('{"summary": "VPN drops\nevery ten minutes\ttoday"}') == {
        "summary": "VPN drops\nevery ten minutes\ttoday"
    }
    assert extract_json('```json\n{"category": "network",\n "note": "two\nlines"}\n```')["category"] == "network"


@pytest.mark.parametrize(
    ("scenario", "error", "words"),
    [
        ("deep_nesting", InvalidModelOutput, "nests deeper"),
        ("truncated", InvalidModelOutput, "no JSON object"),
        ("cut_body", BackendUnavailable, "RemoteProtocolError"),
    ],
)
def test_broken_replies_become_named_errors(server: FakeOpenAI, scenario: str, error: type, words: str) -> None:
    server.scenario = scenario
    with pytest.raises(error, match=words):
        fake_chat(server, timeout=2.0).complete(MESSAGES, SCHEMA)


def test_a_reply_with_raw_newlines_in_its_strings_is_used(server: FakeOpenAI) -> None:
    server.scenario, server.answers = "raw_newlines", {"category": "email"}
    reply = fake_chat(server, timeout=2.0).complete(MESSAGES, SCHEMA)
    assert reply.parsed is not None and reply.parsed["category"] == "email" and "\nby " in reply.parsed["summary"]


# ---- through the service and the API: a valid result, never a crash ------------------------------------------------


@pytest.mark.parametrize("scenario", BROKEN)
def test_the_service_falls_back_with_the_reason(trained_service, server, demo_rows, scenario: str) -> None:
    server.scenario = scenario
    result = service_with(trained_service, fake_chat(server), demo_rows).triage(TICKET)
    assert_fallback(result, trained_service.kb, "llm:fake-model failed for classify")
    assert result.llm_calls and not any(c.ok for c in result.llm_calls)


def test_the_service_uses_a_reply_with_raw_newlines(trained_service, server, demo_rows) -> None:
    server.scenario, server.answers = "raw_newlines", {"category": "hardware", "priority": "P4"}
    result = service_with(trained_service, fake_chat(server), demo_rows).triage(TICKET)
    assert (result.category, result.priority) == ("hardware", "P4")  # the LLM's labels, not the classical ones
    assert {result.backend[f] for f in ("category", "priority", "summary", "reply")} == {"llm:fake-model"}
    assert all(c.ok for c in result.llm_calls) and not any("failed" in r for r in result.reasons)


@pytest.mark.parametrize("error", [ZeroDivisionError("boom"), RecursionError("deep"), KeyError("choices")])
def test_any_exception_from_the_model_client_is_a_fallback_with_its_type(
    trained_service, demo_rows, error: Exception
) -> None:
    chat = ScriptedChat(fn=lambda messages, schema: error)
    result = service_with(trained_service, chat, demo_rows).triage(TICKET)
    assert_fallback(result, trained_service.kb, f"unexpected {type(error).__name__}")
    assert len(chat.calls) == 3  # classify (no re-ask: not an answer), summary, reply


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_interrupts_still_propagate(stop: type[BaseException]) -> None:
    def interrupted() -> None:
        raise stop()

    with pytest.raises(stop):
        LlmGuard("llm:test", CircuitBreaker()).run("classify", interrupted)


@pytest.fixture
def api(trained_service, served_answerer, demo_rows, server, tmp_path: Path) -> Iterator[Api]:
    service = service_with(trained_service, fake_chat(server), demo_rows)
    yield from make_api(service, served_answerer, tmp_path, CircuitBreaker(1000, 60.0))


def test_the_api_answers_200_for_every_broken_reply(api: Api, server: FakeOpenAI, trained_service) -> None:
    for scenario in [*BROKEN, "raw_newlines"]:
        server.scenario = scenario
        one = api.client.post(
            "/v1/triage", json={"title": "VPN drops", "body": "every ten minutes"}, headers=api.triage
        )
        assert one.status_code == 200, (scenario, one.text)
        assert one.json()["category"] in trained_service.kb.taxonomy.category_ids
        tickets = [{"title": "VPN drops"}, {"title": "printer jams on floor 2"}, {"title": "payslip missing"}]
        batch = api.client.post("/v1/triage/batch", json={"tickets": tickets}, headers=api.triage)
        assert batch.status_code == 200, (scenario, batch.text)
        assert len(batch.json()["results"]) == 3
        stored = api.post_ticket("VPN drops", "GlobalConnect disconnects")
        assert stored["status"] == "triaged", scenario
        fell_back = stored["result"]["backend"]["category"].endswith("(fallback)")
        assert fell_back == (scenario != "raw_newlines"), scenario


# ---- Retry-After on HTTP 429 ---------------------------------------------------------------------------------------


def test_a_429_whose_retry_after_fits_is_waited_for_once(server: FakeOpenAI) -> None:
    server.scenario, server.answers = "429_wait_1_once", {"category": "email"}
    started = time.perf_counter()
    reply = fake_chat(server, timeout=3.0).complete(MESSAGES, SCHEMA)
    assert reply.parsed is not None and reply.parsed["category"] == "email"
    assert 1.0 <= time.perf_counter() - started < 2.0 and len(server.requests) == 2


def test_a_429_that_comes_again_after_the_wait_falls_back(server: FakeOpenAI) -> None:
    server.scenario = "429_wait_1"
    with pytest.raises(BackendUnavailable, match=r"HTTP 429 \(rate limited\) again after waiting 1s") as info:
        fake_chat(server, timeout=3.0).complete(MESSAGES, SCHEMA)
    assert info.value.status == 429 and len(server.requests) == 2  # one wait, one retry, no more


@pytest.mark.parametrize(("scenario", "left"), [("429_wait_60", 3.0), ("429_wait_1", 0.8)])
def test_a_429_whose_retry_after_does_not_fit_falls_back_at_once(
    server: FakeOpenAI, scenario: str, left: float
) -> None:
    server.scenario = scenario
    wait = scenario.removeprefix("429_wait_")
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match=rf"HTTP 429 \(rate limited\) with Retry-After {wait}s, more than"):
        fake_chat(server, timeout=3.0).complete(MESSAGES, SCHEMA, deadline=Deadline.after(left))
    assert time.perf_counter() - started < 0.5 and len(server.requests) == 1


def test_the_service_waits_for_a_short_retry_after_and_uses_the_answer(trained_service, server, demo_rows) -> None:
    server.scenario, server.answers = "429_wait_1_once", {"category": "network", "priority": "P3"}
    started = time.perf_counter()
    result = service_with(trained_service, fake_chat(server, 3.0), demo_rows, llm_timeout=3.0).triage(TICKET)
    assert time.perf_counter() - started >= 1.0
    assert result.backend["category"] == "llm:fake-model" and result.category == "network"
    assert [c.task for c in result.llm_calls] == ["classify", "summarise", "reply"] and len(server.requests) == 4


def test_the_service_falls_back_at_once_on_a_long_retry_after(trained_service, server, demo_rows) -> None:
    server.scenario = "429_wait_60"
    started = time.perf_counter()
    result = service_with(trained_service, fake_chat(server, 3.0), demo_rows, llm_timeout=3.0).triage(TICKET)
    assert time.perf_counter() - started < 1.0
    assert_fallback(result, trained_service.kb, "HTTP 429 (rate limited) with Retry-After 60s")


def test_retry_after_reads_seconds_dates_and_milliseconds() -> None:
    now = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
    assert retry_after({"retry-after": "2"}) == 2.0 and retry_after({"retry-after": "0.5"}) == 0.5
    assert retry_after({"retry-after": "Mon, 05 Jan 2026 09:00:30 GMT"}, now) == 30.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "-3"}) == 0.0
    for odd in ({}, {"retry-after": ""}, {"retry-after": "soon"}, {"retry-after": "nan"}):
        assert retry_after(odd) is None


# ---- the audit trail: failed calls with their input, raw output and prompt version -------------------------------


def test_a_failed_calls_audit_entry_holds_its_input_raw_output_and_prompt(api: Api, server: FakeOpenAI) -> None:
    server.scenario = "unknown_label"
    ticket = api.post_ticket("VPN drops", "GlobalConnect disconnects every ten minutes when I work from home")
    audit = api.client.get("/v1/audit", headers=api.admin, params={"ticket_id": ticket["id"]}).json()
    calls = [a for a in audit if a["kind"] == "llm_call"]
    classify = [a for a in calls if a["detail"]["task"] == "classify"]
    assert len(classify) == 2 and not any(a["detail"]["ok"] for a in classify)  # the answer and the re-ask
    for entry in classify:
        assert "<ticket>\nVPN drops" in entry["input"] and "ceo-office" in entry["output"]
        assert entry["detail"]["prompt"] == "classify.v1" and "UnknownLabel" in entry["detail"]["error"]
    assert "That answer is invalid" in max(classify, key=lambda a: a["id"])["input"]  # the re-ask's own turn
    prompts = {a["detail"]["task"]: a["detail"]["prompt"] for a in calls}
    assert prompts == {"classify": "classify.v1", "summarise": "summarise.v2", "reply": "reply.v2"}
    assert all(a["input"] and a["output"] for a in calls)
    server.scenario = "cut_body"  # no output came back: the input is still on record
    cut = api.post_ticket("printer jams", "floor 2")
    entries = api.client.get("/v1/audit", headers=api.admin, params={"ticket_id": cut["id"]}).json()
    failed = [a for a in entries if a["kind"] == "llm_call"]
    assert failed and all(a["input"] and a["output"] is None and a["detail"]["prompt"] for a in failed)


def test_a_call_the_deadline_stopped_is_on_record_with_its_input(trained_service, demo_rows) -> None:
    chat = ScriptedChat(fn=lambda messages, schema: BackendUnavailable("llm:scripted", "unused"))
    result = service_with(trained_service, chat, demo_rows, llm_timeout=0.01).triage(TICKET)
    assert chat.calls == [] and "no time left" in " ".join(result.reasons)
    assert [c.prompt for c in result.llm_calls] == ["classify.v1", "summarise.v2", "reply.v2"]
    assert all("<ticket>" in (c.input or "") and not c.ok for c in result.llm_calls)


def test_answer_calls_carry_their_prompt_and_a_rejected_answer_keeps_its_text(served_answerer) -> None:
    def answerer(chat: ScriptedChat) -> Answerer:
        return Answerer(served_answerer.searcher, served_answerer.resolver, writer=LlmAnswerWriter(chat))

    question = "How do I connect to the VPN from home?"
    good = ScriptedChat(fn=lambda m, s: {"answer": f"Open GlobalConnect and click Connect [{ref(m)}]."})
    result = answerer(good).ask(question)
    assert result.backend == "llm:scripted" and [c.prompt for c in result.llm_calls] == ["answer.v1"]
    uncited = ScriptedChat([{"answer": "Reinstall Windows [sop-invented#Steps]."}])
    rejected = answerer(uncited).ask(question)  # the call worked, the citation check after it did not
    (call,) = rejected.llm_calls
    assert rejected.backend == "classical:extractive (fallback)" and not call.ok and "cites none" in (call.error or "")
    assert call.prompt == "answer.v1" and "<question>" in (call.input or "") and "sop-invented" in (call.output or "")


def ref(messages: list[dict[str, str]]) -> str:
    """The first SOP reference shown in the prompt."""
    return messages[-1]["content"].split('<sop id="', 1)[1].split('"', 1)[0]
