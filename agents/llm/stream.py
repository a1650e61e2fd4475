"""Reading a chat completion from an HTTP response, streamed (server-sent events) or whole, until a deadline."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.chat import MAX_REPLY_CHARS

MAX_BODY_BYTES = 1_000_000  # a response (streamed or whole) is not read past this: our answers are a few KB


@dataclass
class StreamedAnswer:
    """What a response carried: the text (or the forced tool call's arguments), how it ended, and its usage."""

    content: str = ""
    arguments: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    pieces: int = 0  # chunks that carried text: the completion tokens when the server sends no usage
    model: str = ""
    done: bool = False  # the whole answer came (a finish_reason, or a non-streamed body)

    def text(self, mode: str) -> str:
        return self.arguments if mode == "tools" and self.arguments else self.content

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)

    def add_chunk(self, chunk: dict[str, Any], backend: str) -> None:
        """One streamed chunk (choice 0's delta, the usage of the last chunk), or an error event."""
        if "error" in chunk:
            error = chunk["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise BackendUnavailable(backend, f"the stream reported an error: {str(detail)[:200]}")
        self.model = chunk.get("model") or self.model
        self.add_usage(chunk.get("usage"))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            calls = [c.get("function") or {} for c in delta.get("tool_calls") or [] if c.get("index", 0) == 0]
            content, arguments = delta.get("content") or "", "".join(f.get("arguments") or "" for f in calls)
            self.content, self.arguments = self.content + content, self.arguments + arguments
            self.pieces += bool(content or arguments)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        self.done = self.done or self.finish_reason is not None

    def add_completion(self, body: dict[str, Any]) -> None:
        """A whole chat completion: what a server that ignores `stream` sends."""
        self.model = body.get("model") or ""
        self.add_usage(body.get("usage"))
        self.done = True
        choices = body.get("choices")
        if not choices:
            raise InvalidModelOutput("the response has no choices", raw=json.dumps(body)[:2000])
        message = choices[0].get("message") or {}
        self.content = message.get("content") or ""
        calls = message.get("tool_calls") or []
        self.arguments = ((calls[0].get("function") or {}).get("arguments") or "") if calls else ""
        self.finish_reason = choices[0].get("finish_reason")


def read_answer(response: Any, backend: str, until: float, stop: threading.Event) -> StreamedAnswer:
    """Read a chat completion from an HTTP response, streamed (server-sent events) or whole, in the calling thread;
    between two reads, stop with BackendUnavailable once `until` (time.monotonic) has passed or `stop` is set.

    The caller closes the response, which is what tells the server to stop generating."""
    answer, received, pending, data, body = StreamedAnswer(), 0, b"", [], []
    streamed = "event-stream" in response.headers.get("content-type", "")
    for chunk in response.iter_bytes():
        if stop.is_set() or time.monotonic() >= until:
            got = f"{len(answer.content) + len(answer.arguments)} characters" if streamed else f"{received} bytes"
            raise BackendUnavailable(backend, f"no complete answer by the deadline: closed the response after {got}")
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise BackendUnavailable(backend, f"unusable response: more than {MAX_BODY_BYTES} bytes")
        if not streamed:
            body.append(chunk)
            continue
        *lines, pending = (pending + chunk).split(b"\n")
        for line in (raw.rstrip(b"\r") for raw in lines):
            if line.startswith(b"data:"):
                data.append(line[5:].strip().decode("utf-8", "replace"))
                continue
            if line or not data:
                continue
            event, data = "\n".join(data), []
            if event == "[DONE]":
                return answer
            try:
                answer.add_chunk(json.loads(event), backend)
            except json.JSONDecodeError:
                reason = f"unusable response: a stream event is not JSON: {event[:100]!r}"
                raise BackendUnavailable(backend, reason) from None
            if len(answer.content) + len(answer.arguments) > MAX_REPLY_CHARS:
                answer.done = True  # enough to refuse it: finish() cuts it, the rest is not read
                return answer
    if not streamed:
        try:
            answer.add_completion(json.loads(b"".join(body)))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            raise BackendUnavailable(backend, f"unusable response: {type(exc).__name__}: {exc}"[:300]) from None
    return answer
