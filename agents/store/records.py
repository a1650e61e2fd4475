"""Typed records of the ticket store as callers see them: tickets, changes, feedback, audit entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.types import Ticket, TriageResult

# dead: a queued triage that failed on every retry (agents/workers/), with its last error; `triage worker replay`
Status = Literal["received", "triaged", "failed", "dead", "in_progress", "waiting", "resolved", "closed"]
WorkStatus = Literal["triaged", "in_progress", "waiting", "resolved", "closed"]
FieldName = Literal["category", "priority", "team"]
FIELDS: tuple[FieldName, ...] = ("category", "priority", "team")
DONE: frozenset[str] = frozenset({"resolved", "closed"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketRecord(_Model):
    """A stored ticket with its current fields (predicted, then as people changed them) and its triage result."""

    id: str
    external_id: str | None = None
    status: Status
    title: str
    body: str
    requester: str | None = None
    channel: str
    metadata: dict[str, Any] = {}
    intake: dict[str, str] = {}
    assignee: str | None = None
    team: str | None = None
    priority: str | None = None
    category: str | None = None
    needs_human: bool = False
    reviewed: bool = False
    resolution: str | None = None
    result: TriageResult | None = None
    error: str | None = None
    created_at: datetime
    triaged_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime


class TicketPatch(_Model):
    """What a person may change on a ticket; fields left out stay as they are (null clears assignee)."""

    status: WorkStatus | None = None
    assignee: str | None = Field(default=None, max_length=256)
    team: str | None = Field(default=None, min_length=1, max_length=64)
    category: str | None = Field(default=None, min_length=1, max_length=64)
    priority: str | None = Field(default=None, min_length=1, max_length=8)
    resolution: str | None = Field(default=None, max_length=20_000)


class OpenTicket(_Model):
    """An open ticket as "who is handling ...?" answers need it: no body, metadata or result."""

    id: str
    status: Status
    title: str
    assignee: str | None = None
    team: str | None = None


class Claim(_Model):
    """What a queued task may triage now (Store.claim_ids): the tickets it claimed, and those another claimer
    holds, with the seconds until the first of those leases ends."""

    claimed: list[TicketRecord] = []
    busy: list[str] = []
    wait: float = 0.0


class TicketPage(_Model):
    items: list[TicketRecord]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


class TicketBatch(_Model):
    tickets: list[Ticket]


class FeedbackIn(_Model):
    """A human's verdict: accept the prediction (one field, or all when field is left out) or correct one field."""

    ticket_id: str = Field(max_length=40)
    action: Literal["accept", "correct"]
    field: FieldName | None = None
    value: str | None = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _complete(self) -> FeedbackIn:
        if self.action == "correct" and (self.field is None or not self.value):
            raise ValueError("a correction needs both `field` and `value`")
        if self.action == "accept" and self.value is not None:
            raise ValueError("an acceptance takes no `value`: it accepts the predicted label")
        return self


class FeedbackRecord(_Model):
    id: int
    ticket_id: str
    field: FieldName
    action: Literal["accept", "correct"]
    predicted: str | None
    label: str
    author: str
    comment: str | None = None
    created_at: datetime


class AuditEntry(_Model):
    """One audit record; LLM calls fill model, latency and tokens, human changes fill detail."""

    kind: str
    actor: str
    ticket_id: str | None = None
    model: str | None = None
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    input: str | None = None
    output: str | None = None
    detail: dict[str, Any] = {}
