"""OpenAICompatibleChat: any OpenAI-compatible endpoint, output modes tried in order, every answer streamed and
closed at the call's deadline."""

# The OpenAI client (not langchain-openai) on purpose: we need the raw request and response to try output modes
# in order (json_schema, llama.cpp's json_object + schema extension, tools, plain text), to read token usage, and
# to map every failure onto our own errors; langchain-openai hides those behind with_structured_output and can
# reach the network for tiktoken's vocabulary.
#
# Why stream: a server such as llama-cpp-python's runs one request at a time and generates a non-streamed answer to
# its end even when its client has gone, so a call abandoned at the deadline held the server 20-44 s and stalled
# the next ticket's call (evals/reports/llm/local-server.md). A streamed answer stops at the next token once the
# connection is closed, so the thread that reads the stream closes it itself, between two reads, at the deadline.
# Token usage comes from the stream's last chunk (stream_options.include_usage); a server that does not send it
# leaves prompt_tokens None and completion_tokens counted as the chunks that carried text.

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

from agents.errors import BackendUnavailable, InvalidModelOutput
from agents.llm.chat import MIN_CALL_SECONDS, MODES, ChatReply, Message, finish
from agents.llm.stream import StreamedAnswer, read_answer
from agents.types import Deadline

REFUSED_STATUS = {400, 415, 422, 500, 501}  # how servers say "not this request shape"


class _Refused(Exception):
    """The endpoint refused this output mode (an error status while we were still probing modes)."""


class _RateLimited(Exception):
    """HTTP 429, and how long the endpoint asked us to wait (None when it did not say)."""

    def __init__(self, wait: float | None, detail: str) -> None:
        self.wait, self.detail = wait, detail
        super().__init__(f"HTTP 429 (rate limited): {detail}")


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`; None when absent or odd."""
    try:
        if headers.get("retry-after-ms"):
            seconds = float(headers["retry-after-ms"]) / 1000
        else:
            value = (headers.get("retry-after") or "").strip()
            if not value:
                return None
            try:
                seconds = float(value)
            except ValueError:
                when = parsedate_to_datetime(value)
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError, IndexError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _run_with_deadline(fn: Callable[[threading.Event], Any], seconds: float, backend: str) -> Any:
    """Run `fn(stop)` in a worker thread and give up after `seconds`, whatever the socket does (a trickling server);
    `stop` is set then, so that the worker closes its response at its next read."""
    box: dict[str, Any] = {}
    stop = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn(stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=run, name="llm-call", daemon=True)
    worker.start()
    worker.join(max(seconds, 0.0))
    if worker.is_alive():
        stop.set()
        raise BackendUnavailable(backend, f"no complete answer within {seconds:.1f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


class OpenAICompatibleChat:
    """Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp). No retries, callers fall back; but
    one: after HTTP 429 whose Retry-After fits in the time left, it waits and asks once more."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        llm_timeout: float = 20.0,
        max_tokens: int = 300,
        temperature: float = 0.0,
        modes: Iterable[str] = MODES,
        http_client: Any = None,
    ) -> None:
        from openai import OpenAI

        self.model = model
        self.name = f"llm:{model}"
        self.base_url = base_url
        self.llm_timeout = llm_timeout  # the time of a call that comes without a deadline
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.modes = tuple(modes)
        unknown = set(self.modes) - set(MODES)
        if unknown or not self.modes:
            raise ValueError(f"unknown output modes {sorted(unknown)}: choose from {MODES}")
        self.mode_: str | None = None  # the structured mode this endpoint accepted, once known
        self._client = OpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=llm_timeout,
            max_retries=0,
            http_client=http_client,
        )

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        deadline: Deadline | None = None,
    ) -> ChatReply:
        deadline = deadline or Deadline.after(self.llm_timeout)
        started = time.perf_counter()
        if schema is None:
            modes: tuple[str, ...] = ("text",)
        else:
            modes = (self.mode_,) if self.mode_ else self.modes
        refusals: list[str] = []
        waited: float | None = None  # the Retry-After already waited for (one wait per call)
        todo = list(modes)
        while todo:
            mode = todo[0]
            left = deadline.seconds_left()
            if left < MIN_CALL_SECONDS:
                break
            request = self._request(messages, schema, schema_name, mode, max_tokens or self.max_tokens)
            probing = schema is not None and self.mode_ is None and mode != modes[-1]
            try:
                answer = _run_with_deadline(partial(self._send, request, left, probing), left, self.name)
            except _Refused as exc:
                refusals.append(f"{mode}: {exc}")
                todo.pop(0)
                continue
            except _RateLimited as limited:
                waited = self._wait(limited, deadline, waited)  # or BackendUnavailable: fall back now
                continue
            if schema is not None and self.mode_ is None:
                self.mode_ = mode
            return self._reply(answer, schema, mode, started)
        raise BackendUnavailable(
            self.name,
            f"no answer within {time.perf_counter() - started:.1f}s" + (f" ({refusals[-1]})" if refusals else ""),
        )

    def _wait(self, limited: _RateLimited, deadline: Deadline, waited: float | None) -> float:
        """Sleep for the 429's Retry-After when it fits in the time left and we have not waited yet; else raise."""
        if limited.wait is None:
            raise BackendUnavailable(self.name, str(limited), status=429)
        if waited is not None:
            reason = f"HTTP 429 (rate limited) again after waiting {waited:g}s (Retry-After): {limited.detail}"
            raise BackendUnavailable(self.name, reason, status=429)
        left = deadline.seconds_left()
        if limited.wait + MIN_CALL_SECONDS > left:
            reason = (
                f"HTTP 429 (rate limited) with Retry-After {limited.wait:g}s, more than the {max(left, 0):.1f}s "
                f"left of this ticket's LLM time: {limited.detail}"
            )
            raise BackendUnavailable(self.name, reason, status=429)
        time.sleep(limited.wait)
        return limited.wait

    def _request(
        self, messages: list[Message], schema: dict[str, Any] | None, name: str, mode: str, max_tokens: int
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        if schema is None or mode == "text":
            return request
        if mode == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        elif mode == "json_object":  # llama-cpp-python turns the schema into a grammar
            request["response_format"] = {"type": "json_object", "schema": schema}
        else:
            function = {"name": name, "description": "Record the answer.", "parameters": schema}
            request["tools"] = [{"type": "function", "function": function}]
            request["tool_choice"] = {"type": "function", "function": {"name": name}}
        return request

    def _send(self, request: dict[str, Any], seconds: float, probing: bool, stop: threading.Event) -> StreamedAnswer:
        """Send the request streamed, read the answer in this thread and close the response here, at the end or
        at the deadline (`seconds` from now, or `stop`)."""
        import openai

        until = time.monotonic() + seconds
        stream_options: Any = {"include_usage": True}  # the usage comes in a last chunk
        try:
            stream = self._client.chat.completions.create(
                **request, stream=True, stream_options=stream_options, timeout=seconds
            )
        except openai.APITimeoutError:
            raise BackendUnavailable(self.name, f"timed out after {seconds:.1f}s") from None
        except openai.APIStatusError as exc:
            detail = " ".join(str(exc.message).split())[:200]
            if exc.status_code == 429:
                raise _RateLimited(retry_after(exc.response.headers), detail) from None
            if probing and exc.status_code in REFUSED_STATUS:
                raise _Refused(f"HTTP {exc.status_code} {detail}") from None
            hint = {401: "wrong API key", 403: "key not allowed", 404: "wrong URL or model name"}
            reason = f"HTTP {exc.status_code} ({hint.get(exc.status_code, 'error')}): {detail}"
            raise BackendUnavailable(self.name, reason, status=exc.status_code) from None
        except openai.APIConnectionError as exc:
            cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            reason = f"cannot connect to {self.base_url or 'the API'}: {exc}{cause}"[:300]
            raise BackendUnavailable(self.name, reason) from None
        except Exception as exc:  # noqa: BLE001 - anything else the client raises
            raise BackendUnavailable(self.name, f"unusable response: {type(exc).__name__}: {exc}"[:300]) from None
        response = stream.response
        try:
            return read_answer(response, self.name, until, stop)
        except (BackendUnavailable, InvalidModelOutput):
            raise
        except Exception as exc:  # noqa: BLE001 - the connection broke, a read timed out, a chunk of odd shape
            raise BackendUnavailable(self.name, f"unusable response: {type(exc).__name__}: {exc}"[:300]) from None
        finally:
            response.close()  # in this thread: the server sees the connection go and stops generating

    def _reply(self, answer: StreamedAnswer, schema: dict[str, Any] | None, mode: str, started: float) -> ChatReply:
        text = answer.text(mode)
        if not answer.done:
            reason = f"the stream ended before the answer did (no finish_reason) after {len(text)} characters"
            raise BackendUnavailable(self.name, reason)
        counted = answer.completion_tokens is None and answer.prompt_tokens is None
        return finish(
            text,
            schema,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.pieces if counted else answer.completion_tokens,
            mode=mode,
            model=str(answer.model or self.model),
        )
