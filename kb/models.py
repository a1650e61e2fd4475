"""Typed shapes of the knowledge-base files: taxonomy, teams, service catalogue, SOP front matter."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Slug = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Strict):
    id: Slug
    name: str
    description: str = ""
    default_team: Slug


class Priority(_Strict):
    id: Literal["P1", "P2", "P3", "P4"]
    name: str
    description: str = ""
    response_minutes: int = Field(gt=0)
    resolution_minutes: int = Field(gt=0)


class PriorityRule(_Strict):
    id: Slug
    description: str = ""
    pattern: str
    min_priority: Literal["P1", "P2", "P3", "P4"]


class Taxonomy(_Strict):
    version: str
    categories: list[Category] = Field(min_length=2)
    priorities: list[Priority] = Field(min_length=2)
    default_priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    rules: list[PriorityRule] = []

    @property
    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    @property
    def priority_ids(self) -> list[str]:
        return [p.id for p in self.priorities]

    def priority(self, pid: str) -> Priority:
        return next(p for p in self.priorities if p.id == pid)

    def category(self, cid: str) -> Category:
        return next(c for c in self.categories if c.id == cid)


class Member(_Strict):
    handle: Slug
    name: str
    role: str = "member"


class Team(_Strict):
    id: Slug
    name: str
    channel: str
    email: str = ""
    members: list[Member] = Field(min_length=1)

    @property
    def handles(self) -> list[str]:
        return [m.handle for m in self.members]


class Teams(_Strict):
    version: str
    teams: list[Team] = Field(min_length=1)


class OnCall(_Strict):
    rotation: list[Slug] = Field(min_length=1)
    handover: datetime
    shift_hours: int = Field(gt=0)

    @field_validator("handover")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("handover needs a time zone, e.g. 2026-01-05T09:00:00+00:00")
        return value

    def on_duty(self, now: datetime) -> str:
        """Who holds the rotation at `now` (shifts repeat in order from the first handover)."""
        elapsed = now - self.handover
        shift = elapsed // timedelta(hours=self.shift_hours)
        return self.rotation[int(shift) % len(self.rotation)]


class Service(_Strict):
    id: Slug
    name: str
    aliases: list[str] = []  # English (what the embedder reads)
    aliases_in: dict[str, list[str]] = {}  # other languages by ISO 639-1 code: {"de": ["drucker"]}
    description: str = ""
    category: Slug
    owner_team: Slug
    owners: list[Slug] = Field(min_length=1)
    oncall: OnCall
    escalation: Slug
    channel: str
    sla_tier: Literal["gold", "silver", "bronze"]

    @field_validator("aliases_in")
    @classmethod
    def _language_codes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = [code for code in value if not (len(code) == 2 and code.isascii() and code.isalpha() and code.islower())]
        if bad:
            raise ValueError(f"aliases_in is keyed by two-letter ISO 639-1 codes (de, es, fr ...), not {bad}")
        return value

    @property
    def every_alias(self) -> list[str]:
        """The English aliases, then those of every other language: what text in any language may call it."""
        return [*self.aliases, *(alias for words in self.aliases_in.values() for alias in words)]


class Catalogue(_Strict):
    version: str
    services: list[Service]


class SopMeta(_Strict):
    id: Slug
    title: str
    service: Slug
    owner_team: Slug
    last_reviewed: date
    tags: list[str] = []
