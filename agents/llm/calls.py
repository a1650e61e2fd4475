"""One LlmCall per request to the model, failed ones too, with what went in and what came back (the audit trail).

An LLM task (classify, summarise, reply, answer) sends each request through `ask`, which reads the reply and records
the call, ok or failed. A guard around the task opens a `recording()`, so the calls of a task that fails are not lost
with its exception: they go to the result's llm_calls and from there to the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from agents.llm.chat import AUDIT_OUTPUT_CHARS, ChatModel, ChatReply, Message, audit_input, check_time, record_call
from agents.types import Deadline, LlmCall

T = TypeVar("T")
ERROR_CHARS = 300

_recording: ContextVar[list[LlmCall] | None] = ContextVar("llm_calls", default=None)


@contextmanager
def recording() -> Iterator[list[LlmCall]]:
    """Collects every call noted (by `ask`) while it is open, in this thread or task; an enclosing recording gets
    them too when this one closes."""
    calls: list[LlmCall] = []
    token = _recording.set(calls)
    try:
        yield calls
    finally:
        _recording.reset(token)
        outer = _recording.get()
        if outer is not None:
            outer.extend(calls)


def note(call: LlmCall) -> LlmCall:
    """Add the call to the open recording, if any."""
    calls = _recording.get()
    if calls is not None:
        calls.append(call)
    return call


def error_text(exc: BaseException) -> str:
    """An error as an LlmCall, a reason and the breaker show it: its type and message, cut."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def failed_call(
    task: str,
    backend: str,
    messages: list[Message],
    exc: BaseException,
    *,
    prompt: str | None,
    reply: ChatReply | None,
    started: float,
) -> LlmCall:
    """The LlmCall of a request whose answer was not used: the redacted input, the raw output when one came back
    (the reply, or what an InvalidModelOutput carries), the prompt's id and the error."""
    raw = reply.text if reply is not None else str(getattr(exc, "raw", "") or "")
    return LlmCall(
        task=task,
        backend=backend,
        ok=False,
        latency_ms=reply.latency_ms if reply is not None else round((time.perf_counter() - started) * 1000, 1),
        prompt_tokens=reply.prompt_tokens if reply is not None else None,
        completion_tokens=reply.completion_tokens if reply is not None else None,
        mode=reply.mode if reply is not None else None,
        error=error_text(exc),
        input=audit_input(messages),
        output=raw[:AUDIT_OUTPUT_CHARS] or None,
        prompt=prompt,
    )


def ask(
    chat: ChatModel,
    task: str,
    prompt: str,
    messages: list[Message],
    schema: dict[str, Any] | None,
    read: Callable[[ChatReply], T],
    *,
    schema_name: str,
    max_tokens: int,
    deadline: Deadline | None,
) -> tuple[T, LlmCall]:
    """One request: the reply as `read` makes it (raising InvalidModelOutput when it is unusable) and its LlmCall.

    Whatever fails (no time left, the transport, the parse, `read`, or anything else the client raises), the
    failed LlmCall is noted before the error goes on to the caller.
    """
    started = time.perf_counter()
    reply: ChatReply | None = None
    try:
        check_time(deadline, chat.name, task)
        reply = chat.complete(messages, schema, schema_name=schema_name, max_tokens=max_tokens, deadline=deadline)
        value = read(reply)
    except Exception as exc:
        note(failed_call(task, chat.name, messages, exc, prompt=prompt, reply=reply, started=started))
        raise
    return value, note(record_call(task, chat.name, reply, messages, prompt=prompt))
