"""Shared pydantic models: the ticket that comes in and the triage result that goes out."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_TITLE_CHARS = 500
MAX_BODY_CHARS = 20_000
MAX_METADATA_BYTES = 16_384  # a ticket's metadata as compact UTF-8 JSON
MAX_METADATA_DEPTH = 8  # nested objects and arrays, counting `metadata` itself
MAX_INTAKE_FIELDS = 16  # a form's chosen values (ticket type, ...) a ticket may carry
MAX_INTAKE_VALUE_CHARS = 128
INTAKE_NAME = r"^[a-z][a-z0-9_]{0,63}$"  # lower-case words joined by _, as TRIAGE_INTAKE_FIELDS names them


@dataclass(frozen=True)
class Deadline:
    """The instant (time.monotonic) by which every LLM call for one ticket or question must be done.

    Built once per ticket from TRIAGE_LLM_TIMEOUT (`Deadline.after(llm_timeout)`) and handed down to the HTTP call,
    which waits at most `seconds_left()`.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def seconds_left(self) -> float:
        return self.at - time.monotonic()


def json_depth(value: Any, limit: int) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0), counted no further than `limit` + 1."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list | tuple) else None
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        if deepest > limit:
            break
        todo.extend((child, level + 1) for child in children)
    return deepest


def ticket_text(title: str | None, body: str | None) -> str:
    """A ticket's text as every model sees it: the title, a newline, the body. The one definition."""
    return f"{title or ''}\n{body or ''}".strip()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ticket(_Model):
    """An incoming ticket. Text is untrusted; its size is bounded here, once."""

    id: str | None = Field(default=None, max_length=128)
    title: str = Field(default="", max_length=MAX_TITLE_CHARS)
    body: str = Field(default="", max_length=MAX_BODY_CHARS)
    requester: str | None = Field(default=None, max_length=256)
    created_at: datetime | None = None
    channel: str = Field(default="api", max_length=32)
    metadata: dict[str, Any] = {}
    # values the requester chose on the intake form (e.g. {"ticket_type": "incident"}); the classical models read
    # the ones named in TRIAGE_INTAKE_FIELDS when they were trained with them, and every one is stored
    intake: dict[
        Annotated[str, StringConstraints(pattern=INTAKE_NAME)],
        Annotated[str, StringConstraints(max_length=MAX_INTAKE_VALUE_CHARS)],
    ] = Field(
        default={},
        max_length=MAX_INTAKE_FIELDS,
        description='values chosen on the intake form, e.g. {"ticket_type": "request"}; models trained with '
        "TRIAGE_INTAKE_FIELDS read the ones it names",
    )

    @field_validator("id", "title", "body", "requester", "channel")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        """NUL characters carry nothing and PostgreSQL refuses them in text: dropped, everything else kept."""
        return None if value is None else value.replace("\x00", "")

    @field_validator("intake")
    @classmethod
    def _no_nul_intake(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: v.replace("\x00", "") for k, v in value.items()}

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels (MAX_METADATA_DEPTH)")
        dumped = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        if "\\u0000" in dumped:
            raise ValueError("metadata holds a NUL character (\\u0000), which the ticket store cannot keep")
        size = len(dumped.encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"metadata is {size} bytes as JSON, over the {MAX_METADATA_BYTES}-byte limit (MAX_METADATA_BYTES)"
            )
        return value

    @property
    def text(self) -> str:
        return ticket_text(self.title, self.body)


class FieldDecision(_Model):
    """One predicted field: the label, how sure, and which backend decided."""

    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    backend: str
    alternatives: dict[str, float] = {}
    reasons: list[str] = []


class KbRef(_Model):
    doc_id: str
    title: str
    section: str
    path: str
    score: float


class SimilarTicket(_Model):
    id: str
    score: float
    team: str | None = None
    category: str | None = None
    resolution: str | None = None


class Owner(_Model):
    team: str
    team_name: str
    service: str | None = None
    people: list[str] = []
    on_call: str | None = None
    escalation: str | None = None
    channel: str | None = None
    evidence: list[str] = []


class LlmCall(_Model):
    """One use of the LLM for a ticket: which task, how long, what it cost, and whether its answer was used."""

    task: str  # classify, summarise, reply, answer
    backend: str
    ok: bool
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    mode: str | None = None  # the structured-output mode the endpoint accepted
    error: str | None = None
    prompt: str | None = None  # the versioned prompt that was rendered, e.g. classify.v1
    # for the audit trail, not for API responses: the (redacted) text that left, and what came back
    input: str | None = Field(default=None, exclude=True, repr=False)
    output: str | None = Field(default=None, exclude=True, repr=False)


# What the service may do with a field's decision on the ticket of record (agents/modes.py decides per ticket):
# off: nothing, not even recorded; shadow: recorded for agreement, never shown or applied; suggest: offered to
# the agent; auto: applied when confident (under the threshold, or when a human must look, it is suggested)
Mode = Literal["off", "shadow", "suggest", "auto"]
Action = Literal["applied", "suggested", "shadow", "none"]


class FieldAction(_Model):
    """What was done with one field's decision, under which mode, and why."""

    mode: Mode
    action: Action
    reason: str
    threshold: float | None = None  # the field's threshold in force (above 1: never reached); None without models


class TriageResult(_Model):
    ticket_id: str | None
    category: str
    priority: str
    team: str
    owner: Owner
    summary: str
    kb_refs: list[KbRef] = []
    similar_tickets: list[SimilarTicket] = []
    possible_duplicate_of: str | None = None
    confidence: dict[str, float]
    backend: dict[str, str]
    needs_human: bool
    reasons: list[str] = []
    suggested_reply: str | None = None
    latency_ms: float = 0.0
    llm_calls: list[LlmCall] = []
    actions: dict[str, FieldAction] = {}  # per field (category, priority, team); empty in results stored before modes
