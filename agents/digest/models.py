"""Typed shapes of the daily digest: what goes in (tickets, feedback, reopen events) and what comes out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.novelty.models import NewCategory
from agents.types import ticket_text

DIGEST_VERSION = "digest.v3"  # v2: each ticket once, lists complete in JSON, review counts; v3: new categories
NO_TEAM = "unrouted"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: the store keeps UTC, so naive means UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- input -----------------------------------------------------------------------------------------------------------


class DigestTicket(_Model):
    """The part of a stored ticket the digest reads; every timestamp may be missing (bad rows are skipped)."""

    id: str
    title: str = ""
    body: str = ""
    status: str
    team: str | None = None
    priority: str | None = None
    category: str | None = None
    assignee: str | None = None
    created_at: datetime | None = None
    triaged_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    has_result: bool = False
    result_needs_human: bool | None = None
    backends: dict[str, str] = {}

    @field_validator("created_at", "triaged_at", "first_response_at", "resolved_at", "updated_at")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @property
    def text(self) -> str:
        return ticket_text(self.title, self.body)


class Verdict(_Model):
    """A human's verdict on one predicted field (from the feedback table)."""

    ticket_id: str
    field: str
    action: Literal["accept", "correct"]
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime | None:
        return _utc(value)


class Reopened(_Model):
    """A resolved or closed ticket moved back to work (from the audit trail)."""

    ticket_id: str
    at: datetime

    @field_validator("at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime | None:
        return _utc(value)


class FinalValue(_Model):
    """An agent's final value of one triaged field, and whether triage's decision matched it (outcomes table)."""

    ticket_id: str
    field: str
    agreed: bool
    at: datetime

    @field_validator("at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime | None:
        return _utc(value)


class DigestInput(_Model):
    tickets: list[DigestTicket] = []
    verdicts: list[Verdict] = []
    final_values: list[FinalValue] = []
    reopened: list[Reopened] = []
    new_categories: list[NewCategory] = Field(default=[], description="clusters of abstained tickets (agents/novelty)")


# --- output ----------------------------------------------------------------------------------------------------------


class TicketLine(_Model):
    """One ticket worth a look; `delay_minutes` is how late (breached), how idle (stuck) or how old (unassigned),
    and for about-to-breach how many minutes are left."""

    id: str
    title: str
    team: str
    priority: str | None
    status: str
    assignee: str | None
    created_at: datetime
    sla: list[Literal["response", "resolution"]] = []
    deadline: datetime | None = None
    delay_minutes: int


class TicketList(_Model):
    """`count` tickets, all of them in `items` (sorted by urgency); renderers show the first few."""

    count: int = 0
    items: list[TicketLine] = []


class TeamDigest(_Model):
    team: str
    name: str
    new: int = 0
    resolved: int = 0
    reopened: int = 0
    open: int = 0
    open_by_priority: dict[str, int] = {}
    breached: TicketList = TicketList()
    about_to_breach: TicketList = TicketList()
    unassigned: TicketList = TicketList()
    stuck: TicketList = TicketList()
    quiet: bool = Field(description="nothing new, resolved or reopened, and nothing needs attention")


class Theme(_Model):
    name: str
    terms: list[str]
    size: int
    teams: dict[str, int]
    ticket_ids: list[str]
    named_by: str


class FieldHealth(_Model):
    accepted: int = 0
    corrected: int = 0
    precision: float | None = None


class AiHealth(_Model):
    """Triage results of tickets triaged in the window, and human verdicts given in the window."""

    triaged: int = 0
    auto_triaged: int = 0
    auto_share: float | None = None
    fallbacks: int = 0
    fallback_rate: float | None = None
    fields: dict[str, FieldHealth] = {}
    reviewed: int = Field(0, description="distinct tickets with a human verdict in the window")
    accepted: int = 0
    corrected: int = 0
    precision: float | None = Field(None, description="agreement: accepted / (accepted + corrected); None unreviewed")
    # shadow agreement: per field, final values set by agents in the window and the share equal to the decision
    final_values: dict[str, int] = {}
    final_agreement: dict[str, float] = {}


class TrendPoint(_Model):
    at: datetime
    open: dict[str, int]


class Skipped(_Model):
    total: int = 0
    by_reason: dict[str, int] = {}
    examples: dict[str, list[str]] = {}


class DigestParams(_Model):
    window_hours: float
    breach_margin: float
    unassigned_hours: float
    stuck_days: float
    theme_distance: float
    min_theme_size: int
    list_items: int = Field(3, description="tickets per list shown in Markdown and HTML (the JSON has all)")


class Digest(_Model):
    """The daily digest. Times are UTC; `timezone` is how people want to read them."""

    version: str = DIGEST_VERSION
    scope: str
    timezone: str = "UTC"
    generated_at: datetime
    window_start: datetime
    window_end: datetime
    new: int
    resolved: int
    reopened: int
    open: int
    breached: int
    about_to_breach: int
    nothing_happened: bool
    teams: list[TeamDigest]
    themes: list[Theme]
    ai_health: AiHealth
    new_categories: list[NewCategory] = Field(default=[], description="growing clusters of tickets no known label fits")
    open_trend: list[TrendPoint]
    narrative: str
    narrative_by: str
    skipped: Skipped
    params: DigestParams

    def facts(self) -> dict[str, Any]:
        """The numbers without the prose (what tests and LLM writers compare and read); a new category keeps its
        size, growth and words, not its examples' titles or its every ticket id."""
        exclude: Any = {
            "narrative": True,
            "narrative_by": True,
            "generated_at": True,
            "new_categories": {"__all__": {"examples", "ticket_ids"}},
        }
        return self.model_dump(mode="json", exclude=exclude)
