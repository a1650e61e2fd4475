"""Streamed answers on a real loopback server that sends server-sent events slowly, cuts them, or sends garbage; it
records when the client closed the connection (the signal that stops a llama.cpp server generating)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fake_openai_server import LABEL_MESSAGES, LABEL_SCHEMA, serving

from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.client import OpenAICompatibleChat
from agents.types import Deadline

SCHEMA, MESSAGES = LABEL_SCHEMA, LABEL_MESSAGES
ANSWER = '{"category": "network", "confidence": 0.7}'


class SlowStream(ThreadingHTTPServer):
    """Answers every chat completion as server-sent events (chunked, as uvicorn sends them), one piece of the answer
    every `gap` seconds, per `scenario`; notes when it saw the client's connection close."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scenario = "ok"
        self.gap = 0.01
        self.pieces: list[str] = [ANSWER[i : i + 4] for i in range(0, len(ANSWER), 4)]
        self.usage = True
        self.finish: str | None = "stop"  # the finish_reason of the last chunk (None: the answer was cut short)
        self.requests: list[dict[str, Any]] = []
        self.closed_at: float | None = None  # time.monotonic() when the client's close was seen
        self.sent = 0  # pieces written before the close was seen
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    event = {"id": "c1", "object": "chat.completion.chunk", "model": "slow-model", "choices": [choice], **extra}
    return f"data: {json.dumps(event)}\r\n\r\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: SlowStream
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def gone(self) -> bool:
        """Has the client closed its side? (readable with nothing to read: EOF, as uvicorn sees a disconnect)"""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def write(self, data: bytes) -> bool:
        """Write one HTTP chunk; False when the client has gone."""
        if self.gone():
            return False
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except OSError:
            return False
        return True

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        srv.requests.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        tools = srv.scenario == "tools"
        events = [_chunk({"role": "assistant", "content": ""})]
        for piece in srv.pieces:
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "labels", "arguments": piece}}
            events.append(_chunk({"tool_calls": [call]} if tools else {"content": piece}))
        if srv.scenario == "slow":
            events = events[:1] + [_chunk({"content": " "})] * 10_000  # the model rambles on for minutes
        if srv.scenario == "huge":
            events = events[:1] + [_chunk({"content": "lorem ipsum " * 100})] * 10_000
        if srv.scenario == "invalid_json":
            events.insert(2, b'data: {"choices": [{"delta": {"content": "net\r\n\r\n')
        if srv.scenario == "error_event":
            events.insert(2, b'data: {"error": {"message": "llama_decode failed"}}\r\n\r\n')
        events.append(_chunk({}, srv.finish))
        if srv.usage:
            events.append(_chunk({}, None, usage={"prompt_tokens": 321, "completion_tokens": 17}))
        events.append(b"data: [DONE]\r\n\r\n")
        if srv.scenario == "cut_mid_token":  # half of one event, then the connection closes without the last chunk
            events = [*events[:3], events[3][: len(events[3]) // 2]]
        for event in events:
            if srv.stopping.wait(srv.gap) or not self.write(event):
                srv.closed_at = srv.closed_at or time.monotonic()
                return
            srv.sent += 1
        if srv.scenario == "cut_mid_token":
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")


@contextmanager
def slow_stream() -> Iterator[SlowStream]:
    with serving(SlowStream(), poll_interval=0.02) as server:
        yield server


@pytest.fixture
def server() -> Iterator[SlowStream]:
    with slow_stream() as srv:
        yield srv


def chat_for(server: SlowStream, timeout: float = 2.0, **kw: Any) -> OpenAICompatibleChat:
    chat = OpenAICompatibleChat("slow-model", base_url=server.url, llm_timeout=timeout, **kw)
    chat.mode_ = "json_object"  # a known endpoint: one request per call
    return chat


def test_a_normal_stream_is_parsed_with_the_usage_of_its_last_chunk(server: SlowStream) -> None:
    reply = chat_for(server).complete(MESSAGES, SCHEMA)
    assert reply.parsed == {"category": "network", "confidence": 0.7} and reply.text == ANSWER
    assert (reply.prompt_tokens, reply.completion_tokens) == (321, 17) and reply.model == "slow-model"
    sent = server.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["response_format"]["schema"] == SCHEMA


def test_without_usage_the_completion_tokens_are_the_pieces_counted(server: SlowStream) -> None:
    server.usage = False
    reply = chat_for(server).complete(MESSAGES, SCHEMA)
    assert reply.parsed is not None and reply.prompt_tokens is None
    assert reply.completion_tokens == len(server.pieces)


def test_a_streamed_tool_call_is_put_together_from_its_argument_pieces(server: SlowStream) -> None:
    server.scenario = "tools"
    chat = chat_for(server, modes=["tools"])
    chat.mode_ = "tools"
    reply = chat.complete(MESSAGES, SCHEMA)
    assert reply.mode == "tools" and reply.parsed == {"category": "network", "confidence": 0.7}
    assert server.requests[0]["tool_choice"]["function"]["name"] == "answer"


def test_at_the_deadline_the_client_falls_back_and_the_server_sees_the_connection_closed(server: SlowStream) -> None:
    server.scenario, server.gap = "slow", 0.05
    chat = chat_for(server, timeout=5.0)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="no complete answer"):
        chat.complete(MESSAGES, SCHEMA, deadline=Deadline.after(0.5))
    gave_up = time.monotonic()
    assert 0.45 <= gave_up - started <= 0.5 * 1.1 + 0.05
    while server.closed_at is None and time.monotonic() - gave_up < 3.0:
        time.sleep(0.01)
    assert server.closed_at is not None, "the server still streams to a client that gave up"
    assert server.closed_at - gave_up < 0.3  # the reader closed the response at its next read
    assert 5 <= server.sent < 20  # it stopped after about 0.5 s of pieces, not 10,000 of them


def test_a_stream_cut_mid_token_is_a_named_fallback(server: SlowStream) -> None:
    server.scenario = "cut_mid_token"
    with pytest.raises(BackendUnavailable, match=r"unusable response: .*(RemoteProtocolError|incomplete)") as info:
        chat_for(server).complete(MESSAGES, SCHEMA)
    assert "slow-model" in str(info.value)


def test_a_stream_that_ends_without_a_finish_reason_is_not_taken_for_an_answer(server: SlowStream) -> None:
    server.pieces, server.finish = server.pieces[:3], None  # cut short: llama.cpp's interrupt ends a stream so
    with pytest.raises(BackendUnavailable, match=r"ended before the answer did \(no finish_reason\) after 12 char"):
        chat_for(server).complete(MESSAGES, SCHEMA)


@pytest.mark.parametrize(
    ("scenario", "words"),
    [("invalid_json", "a stream event is not JSON"), ("error_event", "the stream reported an error: llama_decode")],
)
def test_a_stream_that_sends_garbage_or_an_error_is_a_named_fallback(
    server: SlowStream, scenario: str, words: str
) -> None:
    server.scenario = scenario
    with pytest.raises(BackendUnavailable, match=words):
        chat_for(server).complete(MESSAGES, SCHEMA)


def test_a_huge_stream_is_cut_at_the_reply_bound_and_closed(server: SlowStream) -> None:
    server.scenario, server.gap = "huge", 0.0
    with pytest.raises(InvalidModelOutput, match="no JSON object") as info:
        chat_for(server).complete(MESSAGES, SCHEMA)
    assert len(info.value.raw) <= 2000
    deadline = time.monotonic() + 3.0
    while server.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.closed_at is not None and server.sent < 10_000  # closed once it was too long, not read to its end
