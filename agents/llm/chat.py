"""The chat-model seam: one small protocol, an OpenAI-compatible client, and a scripted model for tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from agents.errors import InvalidModelOutput, NoTimeLeft
from agents.types import Deadline, LlmCall

Message = dict[str, str]
MODES: tuple[str, ...] = ("json_schema", "json_object", "tools", "text")
MAX_REPLY_CHARS = 20_000  # longer replies are cut before parsing: a 100 KB answer is not worth reading
MAX_REPLY_DEPTH = 32  # our answers nest 2 levels; a reply nested deeper is refused before it is parsed
AUDIT_INPUT_CHARS, AUDIT_OUTPUT_CHARS = 4000, 2000
# a JSON string (possibly unterminated) or one bracket: what the nesting scan looks at
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class ChatReply(BaseModel):
    """What came back: the text, the JSON object in it (when a schema was asked for), and what it cost."""

    model_config = ConfigDict(extra="forbid")

    text: str
    parsed: dict[str, Any] | None = None
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    mode: str = "text"
    model: str = ""


class ChatModel(Protocol):
    """A chat model: messages in, one reply out, before `deadline` (or its own default time) or BackendUnavailable."""

    name: str

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        deadline: Deadline | None = None,
    ) -> ChatReply: ...


def nesting_depth(text: str, limit: int = MAX_REPLY_DEPTH) -> int:
    """How deeply brackets nest in `text` outside JSON strings, counted no further than `limit` + 1.

    A scan, not a parse: cheap on any input, so a reply can be refused before the recursive JSON parser sees it.
    """
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif token in "]}":
            depth = max(depth - 1, 0)
    return deepest


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (bare, fenced in ``` or after some words), or None.

    The text is cut to MAX_REPLY_CHARS, and one that nests deeper than MAX_REPLY_DEPTH raises InvalidModelOutput
    before any parsing; raw control characters inside strings (a newline in a long answer) are accepted.
    """
    text = text[:MAX_REPLY_CHARS].strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    start = text.find("{")
    if start != -1 and nesting_depth(text[start:]) > MAX_REPLY_DEPTH:
        raise InvalidModelOutput(f"the reply nests deeper than {MAX_REPLY_DEPTH} levels", raw=text)
    decoder = json.JSONDecoder(strict=False)
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        except RecursionError:  # deep nesting the scan could not see (after a stray quote): refused all the same
            raise InvalidModelOutput(f"the reply nests deeper than {MAX_REPLY_DEPTH} levels", raw=text) from None
        return value if isinstance(value, dict) else None
    return None


def finish(text: str, schema: dict[str, Any] | None, **fields: Any) -> ChatReply:
    """A reply from raw text; with a schema the text must hold a JSON object (its validation is the caller's)."""
    text = text[:MAX_REPLY_CHARS]
    parsed = extract_json(text) if schema is not None else None
    if schema is not None and parsed is None:
        raise InvalidModelOutput("the reply holds no JSON object", raw=text)
    return ChatReply(text=text, parsed=parsed, **fields)


def audit_input(messages: list[Message]) -> str | None:
    """What of a prompt goes to the audit trail: its user turns (the ticket part, already redacted; a re-ask's
    instruction after it). The system part is the versioned prompt, named by its id instead."""
    turns = [m["content"] for m in messages if m.get("role") == "user"]
    return "\n\n".join(turns)[:AUDIT_INPUT_CHARS] if turns else None


def record_call(
    task: str, backend: str, reply: ChatReply, messages: list[Message], *, prompt: str | None = None
) -> LlmCall:
    """The LlmCall for a reply that was used: the redacted input and the answer go to the audit trail."""
    return LlmCall(
        task=task,
        backend=backend,
        ok=True,
        latency_ms=reply.latency_ms,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        mode=reply.mode,
        input=audit_input(messages),
        output=reply.text[:AUDIT_OUTPUT_CHARS],
        prompt=prompt,
    )


MIN_CALL_SECONDS = 0.05  # a call with less time than this left is not worth starting


def check_time(deadline: Deadline | None, backend: str, task: str) -> None:
    """NoTimeLeft when the ticket's deadline has (nearly) passed; without a deadline the client's default holds."""
    if deadline is not None and deadline.seconds_left() < MIN_CALL_SECONDS:
        raise NoTimeLeft(backend, task)


Script = str | dict[str, Any] | ChatReply | BaseException
ScriptFn = Callable[[list[Message], dict[str, Any] | None], Script]


class ScriptedChat:
    """A real ChatModel whose answers come from a queue or a function; it records every request it got.

    A queued exception is raised (BackendUnavailable, InvalidModelOutput...); a dict is sent back as JSON.
    """

    def __init__(self, replies: Iterable[Script] = (), *, fn: ScriptFn | None = None, name: str = "llm:scripted"):
        self.replies = list(replies)
        self.fn = fn
        self.name = name
        self.calls: list[dict[str, Any]] = []

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        deadline: Deadline | None = None,
    ) -> ChatReply:
        self.calls.append({"messages": [dict(m) for m in messages], "schema": schema, "deadline": deadline})
        if self.fn is not None:
            item = self.fn(messages, schema)
        elif self.replies:
            item = self.replies.pop(0)
        else:
            raise RuntimeError(f"{self.name} has no scripted reply left (call {len(self.calls)})")
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ChatReply):
            return item
        text = json.dumps(item) if isinstance(item, dict) else item
        words = sum(len(m["content"].split()) for m in messages)
        return finish(text, schema, prompt_tokens=words, completion_tokens=len(text.split()), model=self.name)
