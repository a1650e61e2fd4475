"""The chat seam on real sockets: output modes tried in order and remembered, misbehaviour mapped to our errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fake_openai_server import LABEL_MESSAGES, LABEL_SCHEMA, FakeOpenAI, fake_openai

from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.chat import ChatReply, ScriptedChat, extract_json
from agents.llm.client import OpenAICompatibleChat
from agents.types import Deadline

SCHEMA, MESSAGES = LABEL_SCHEMA, LABEL_MESSAGES


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        yield srv


def chat_for(server: FakeOpenAI, timeout: float = 2.0, **kw) -> OpenAICompatibleChat:
    return OpenAICompatibleChat("fake-model", base_url=server.url, api_key="k", llm_timeout=timeout, **kw)


def modes_sent(server: FakeOpenAI) -> list[str]:
    out = []
    for r in server.requests:
        body = r["body"]
        out.append("tools" if body.get("tools") else (body.get("response_format") or {}).get("type", "text"))
    return out


def test_strongest_mode_is_used_when_the_endpoint_accepts_it(server: FakeOpenAI) -> None:
    server.answers = {"category": "email"}
    reply = chat_for(server).complete(MESSAGES, SCHEMA)
    assert reply.parsed == {"category": "email", "confidence": 0.8}
    assert reply.mode == "json_schema" and reply.prompt_tokens == 100 and reply.completion_tokens == 12
    sent = server.requests[0]["body"]
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA and sent["temperature"] == 0.0


def test_a_refused_mode_falls_through_to_the_next_and_the_accepted_one_is_remembered(server: FakeOpenAI) -> None:
    server.refuse_modes = {"json_schema"}  # what llama.cpp's server does (HTTP 500)
    chat = chat_for(server)
    first = chat.complete(MESSAGES, SCHEMA)
    second = chat.complete(MESSAGES, SCHEMA)
    assert first.mode == second.mode == "json_object" and chat.mode_ == "json_object"
    assert modes_sent(server) == ["json_schema", "json_object", "json_object"]
    assert server.requests[1]["body"]["response_format"]["schema"] == SCHEMA


def test_tools_then_plain_text_are_the_last_resorts(server: FakeOpenAI) -> None:
    server.refuse_modes = {"json_schema", "json_object"}
    chat = chat_for(server)
    assert chat.complete(MESSAGES, SCHEMA).mode == "tools"
    server.refuse_modes = {"json_schema", "json_object", "tools"}
    server.answers = {"category": "network", "confidence": 0.7}  # what the prompt asked for, as text
    text_only = chat_for(server)
    reply = text_only.complete(MESSAGES, SCHEMA)
    assert reply.mode == "text" and reply.parsed and reply.parsed["category"] == "network"


def test_without_a_schema_the_reply_is_plain_text(server: FakeOpenAI) -> None:
    reply = chat_for(server).complete(MESSAGES)
    assert reply.parsed is None and reply.text.startswith("A plain answer")
    assert "response_format" not in server.requests[0]["body"]


@pytest.mark.parametrize(
    ("scenario", "error", "words"),
    [
        ("500", BackendUnavailable, "HTTP 500"),
        ("429", BackendUnavailable, "rate limited"),
        ("401", BackendUnavailable, "wrong API key"),
        ("garbage_body", BackendUnavailable, "unusable response"),
        ("invalid_json", InvalidModelOutput, "no JSON object"),
        ("huge", InvalidModelOutput, "no JSON object"),
    ],
)
def test_failures_become_named_errors_quickly(server: FakeOpenAI, scenario: str, error: type, words: str) -> None:
    server.scenario = scenario
    chat = chat_for(server)
    chat.mode_ = "json_object"  # an endpoint already known: one request, no mode probing
    started = time.perf_counter()
    with pytest.raises(error, match=words) as info:
        chat.complete(MESSAGES, SCHEMA)
    assert time.perf_counter() - started < 1.0
    if isinstance(info.value, InvalidModelOutput):
        assert len(info.value.raw) <= 2000  # a 100 KB reply is not carried around
    assert len(server.requests) == 1  # max_retries=0: we fall back instead of retrying


@pytest.mark.parametrize("scenario", ["hang", "trickle"])
def test_a_hanging_or_trickling_endpoint_is_cut_at_the_timeout_plus_10_percent(
    server: FakeOpenAI, scenario: str
) -> None:
    server.scenario, server.hang_seconds = scenario, 5.0
    chat = chat_for(server, timeout=0.6)
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable):
        chat.complete(MESSAGES, SCHEMA)
    elapsed = time.perf_counter() - started
    assert 0.5 <= elapsed <= 0.6 * 1.1


def test_the_tickets_deadline_decides_when_the_call_is_cut(server: FakeOpenAI) -> None:
    server.scenario, server.hang_seconds = "hang", 5.0
    chat = chat_for(server, timeout=0.8)
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable):
        chat.complete(MESSAGES, SCHEMA, deadline=Deadline.after(0.3))
    assert time.perf_counter() - started <= 0.3 * 1.1


def test_an_endpoint_that_is_not_there_is_unavailable_not_a_crash() -> None:
    with fake_openai() as srv:
        url = srv.url
    chat = OpenAICompatibleChat("m", base_url=url, llm_timeout=1.0)  # the port is closed now
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        chat.complete(MESSAGES, SCHEMA)


def test_wrong_model_name_and_unknown_modes() -> None:
    with pytest.raises(ValueError, match="unknown output modes"):
        OpenAICompatibleChat("m", modes=["yaml"])


def test_extract_json_finds_the_object_in_common_wrappings() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Sure! Here it is: {"a": {"b": 2}} hope that helps') == {"a": {"b": 2}}
    assert extract_json("[1, 2]") is None
    assert extract_json('{"a": 1') is None
    assert extract_json("no json {here} at all") is None


def test_scripted_chat_answers_from_its_queue_and_records_what_it_was_sent() -> None:
    chat = ScriptedChat([{"category": "email", "confidence": 0.5}, BackendUnavailable("s", "down"), "not json"])
    assert chat.complete(MESSAGES, SCHEMA).parsed == {"category": "email", "confidence": 0.5}
    with pytest.raises(BackendUnavailable):
        chat.complete(MESSAGES, SCHEMA)
    with pytest.raises(InvalidModelOutput):
        chat.complete(MESSAGES, SCHEMA, deadline=Deadline.after(1.5))
    assert [c["deadline"] is None for c in chat.calls] == [True, True, False]
    assert chat.calls[0]["messages"][1]["content"].endswith("</ticket>")
    with pytest.raises(RuntimeError, match="no scripted reply left"):
        chat.complete(MESSAGES)


def test_scripted_chat_can_be_a_function_of_the_prompt() -> None:
    def fn(messages, schema):
        return {"category": "network" if "vpn" in messages[-1]["content"] else "email", "confidence": 1.0}

    chat = ScriptedChat(fn=fn)
    assert chat.complete(MESSAGES, SCHEMA).parsed["category"] == "network"
    reply = ChatReply(text="x", parsed={"category": "email"}, latency_ms=5.0)
    assert ScriptedChat([reply]).complete(MESSAGES, SCHEMA) is reply
