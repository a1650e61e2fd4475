"""Typed shapes and defaults of new-category detection: the abstained tickets in, the clusters out."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

TOPIC_FIELDS = ("category", "team")  # what a ticket is about; priority is how urgent it is, not a topic
# cosine distance under which average-linkage clusters merge, for MiniLM vectors: chosen on banking77 with held-out
# intents (evals/reports/new_categories.md); hashed character n-grams sit further apart and need about 0.5
DEFAULT_DISTANCE = 0.3
HASHING_DISTANCE = 0.5
MIN_SIZE = 5  # the smallest cluster reported
GROWTH_DAYS = 7  # a cluster grows when its last 7 days hold more tickets than the 7 before


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AbstainedTicket(_Model):
    """A ticket whose every topic field fell under its threshold: no known label fits it well enough."""

    id: str
    title: str = ""
    text: str
    created_at: datetime
    team: str | None = Field(default=None, description="the predicted (or since assigned) team, for per-team digests")

    @field_validator("created_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        """SQLite hands back naive datetimes: the store keeps UTC, so naive means UTC."""
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Example(_Model):
    id: str
    title: str


class NewCategory(_Model):
    """A cluster of abstained tickets: how big, how it grew (the last `growth_days` against the ones before), the
    words its tickets use more than the others do, and the tickets nearest its centre as examples."""

    size: int
    recent: int = Field(description="tickets in the last growth window (7 days by default)")
    previous: int = Field(description="tickets in the window before that")
    growing: bool = Field(description="more tickets recently than in the window before")
    growth_days: int = Field(default=GROWTH_DAYS, description="the length of each of the two growth windows")
    words: list[str]
    examples: list[Example]
    ticket_ids: list[str] = Field(description="every ticket of the cluster, most recent first")
    teams: dict[str, int] = Field(default={}, description="predicted team -> tickets, most first")

    @property
    def about(self) -> str:
        """The words as one phrase ("car park / barrier / gate")."""
        return " / ".join(self.words) or "(no common words)"
