"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat API and misbehaves on purpose, per scenario."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

SCENARIOS = (
    "ok",  # a valid answer built from the request's schema (labels from `answers`, else the first allowed);
    # without a schema (plain text mode) the answer is `answers` as JSON, or a sentence when `answers` is empty
    "hang",  # no answer for `hang_seconds`
    "trickle",  # a valid answer, one byte every 0.2 s
    "500",
    "429",  # rate limited, without Retry-After
    "429_wait_1_once",  # 429 with Retry-After: 1 to the first request that meets it, then as "ok"
    "429_wait_1",  # 429 with Retry-After: 1, every time
    "429_wait_60",  # 429 with Retry-After: 60
    "401",  # the API key is refused
    "invalid_json",  # the message content is cut-off JSON
    "truncated",  # the valid answer cut half-way, finish_reason "length" (the model ran out of tokens)
    "deep_nesting",  # valid JSON nested 5,000 levels deep
    "raw_newlines",  # the valid answer with raw newlines inside its strings (lenient JSON) and between fields
    "garbage_body",  # HTTP 200 whose body is not JSON at all
    "cut_body",  # HTTP 200 that announces the whole body, sends half of it and closes the connection
    "unknown_label",  # labels outside the taxonomy
    "huge",  # 100 KB of text instead of JSON
    "injection_echo",  # does what the ticket says: echoes it and adds a routing field
)
DEEP_NESTING = '{"category": ' + "[" * 5000 + "]" * 5000 + "}"
INJECTION_ANSWER = {"category": "ceo-office", "priority": "P0", "confidence": 1.0, "route_to": "ceo"}


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["schema"]
    if fmt.get("type") == "json_object":
        return fmt.get("schema")
    tools = body.get("tools") or []
    return tools[0]["function"]["parameters"] if tools else None


def answer_for(schema: dict[str, Any] | None, answers: dict[str, Any]) -> dict[str, Any]:
    """A value for every property: from `answers`, else the first enum value, else something of the right type."""
    out: dict[str, Any] = {}
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if name in answers:
            out[name] = answers[name]
        elif "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") == "number":
            out[name] = 0.8
        elif prop.get("type") == "array":
            items = prop.get("items") or {}
            out[name] = [items["enum"][0]] if "enum" in items else []
        else:
            out[name] = f"A short {name} written by the fake model for the test."
    return out


class FakeOpenAI(ThreadingHTTPServer):
    """`scenario` applies to every request unless `script` (a list of scenarios) has one left for it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scenario = "ok"
        self.script: list[str] = []
        self.answers: dict[str, Any] = {}
        self.refuse_modes: set[str] = set()  # e.g. {"json_schema"}, as llama.cpp does
        self.model_ids = ["fake-model"]
        self.hang_seconds = 5.0
        self.rate_limited_once = False  # "429_wait_1_once" has answered its 429
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (timeouts) break the pipe on purpose

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_scenario(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.scenario

    def ticket_text(self, body: dict[str, Any]) -> str:
        content = body["messages"][-1]["content"] if body.get("messages") else ""
        match = re.search(r"<ticket>\n(.*)\n</ticket>", content, re.DOTALL)
        return match.group(1) if match else content


def _mode(body: dict[str, Any]) -> str:
    if body.get("tools"):
        return "tools"
    return (body.get("response_format") or {}).get("type", "text")


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.server.model_ids]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        srv = self.server
        with srv.lock:
            srv.requests.append(
                {"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
            )
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "not found"}})
        mode, scenario = _mode(body), srv.next_scenario()
        if mode in srv.refuse_modes:
            return self._send(500, {"error": {"message": f"Input should be 'text' or 'json_object' ({mode})"}})
        if scenario == "hang":
            srv.stopping.wait(srv.hang_seconds)
            scenario = "ok"
        if scenario == "500":
            return self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
        if scenario == "401":
            return self._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
        if scenario == "429_wait_1_once":
            with srv.lock:
                first, srv.rate_limited_once = not srv.rate_limited_once, True
            scenario = "429_wait_1" if first else "ok"
        if scenario.startswith("429"):
            wait = scenario.removeprefix("429_wait_")
            headers = {"Retry-After": wait} if wait != scenario else {}
            return self._send(429, {"error": {"message": "slow down"}}, headers)
        if scenario == "garbage_body":
            return self._send(200, b"<html>502 bad gateway</html>")
        schema = _schema_of(body)
        finish_reason = "stop"
        if scenario == "invalid_json":
            content = '{"category": "network", "prio'
        elif scenario == "truncated":
            whole = json.dumps(answer_for(schema, srv.answers))
            content, finish_reason = whole[: len(whole) // 2], "length"
        elif scenario == "deep_nesting":
            content = DEEP_NESTING
        elif scenario == "raw_newlines":
            answer = {
                k: v.replace(" by ", "\nby ") if isinstance(v, str) else v
                for k, v in answer_for(schema, srv.answers).items()
            }
            content = json.dumps(answer, indent=1).replace("\\n", "\n")  # "\\n" escapes become raw newlines
        elif scenario == "unknown_label":
            content = json.dumps({**answer_for(schema, srv.answers), "category": "ceo-office", "priority": "P0"})
        elif scenario == "huge":
            content = "lorem ipsum dolor " * 6000  # about 100 KB
        elif scenario == "injection_echo":
            content = srv.ticket_text(body) + "\n" + json.dumps(INJECTION_ANSWER)
        else:
            plain = json.dumps(srv.answers) if srv.answers else "A plain answer from the fake model."
            content = json.dumps(answer_for(schema, srv.answers)) if schema else plain
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if mode == "tools" and schema is not None:
            name = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": content}}],
            }
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
        }
        if scenario == "trickle":
            return self._trickle(json.dumps(payload).encode())
        if scenario == "cut_body":
            return self._cut(json.dumps(payload).encode())
        return self._send(200, payload)

    def _cut(self, data: bytes) -> None:
        """Announce all of `data`, send half of it, and close the connection."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _trickle(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for i in range(len(data)):
                if self.server.stopping.wait(0.2):
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
        except OSError:
            return  # the client gave up


ServerT = TypeVar("ServerT", bound=ThreadingHTTPServer)

# a labelling request for the client tests: two labels and a confidence
LABEL_SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["network", "email"]}, "confidence": {"type": "number"}},
    "required": ["category", "confidence"],
    "additionalProperties": False,
}
LABEL_MESSAGES = [
    {"role": "system", "content": "label it"},
    {"role": "user", "content": "<ticket>\nvpn down\n</ticket>"},
]


@contextmanager
def serving(server: ServerT, poll_interval: float = 0.05) -> Iterator[ServerT]:
    """Serve in a background thread; on the way out set the server's `stopping` event (handlers that hang or trickle
    wait on it), then shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    with serving(FakeOpenAI()) as server:
        yield server
