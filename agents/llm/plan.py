"""What the LLM does under these settings, decided once from the evidence files: the fields it classifies and what
it writes, and so whether triaging a ticket calls it at all."""

from __future__ import annotations

from dataclasses import dataclass

from agents.llm.evidence import FIELDS, fields_from_evidence
from agents.llm.writer_evidence import writers_from_evidence
from agents.settings import Settings

TRIAGE_WRITERS = frozenset({"summary", "reply"})  # written while triaging a ticket; "answer" is `ask`'s


@dataclass(frozen=True)
class LlmPlan:
    """The fields the LLM classifies and the writers it takes over; empty: classical and extractive throughout."""

    fields: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()

    @property
    def in_triage(self) -> bool:
        """Whether triaging a ticket calls the LLM (to classify a field, or to write a summary or a reply)."""
        return bool(self.fields) or bool(TRIAGE_WRITERS & set(self.writers))


def plan_llm(settings: Settings, *, usable: bool) -> LlmPlan:
    """The plan for `settings.policy` from the evidence files (each decision logged with its reason): the cascade
    may classify its `cascade_fields`, llm_first every field and also write; classical_only, or an LLM that is not
    `usable` (none configured, a URL that cannot work, no client), never calls it."""
    if settings.policy == "classical_only" or not usable:
        return LlmPlan()
    llm_first = settings.policy == "llm_first"
    fields = fields_from_evidence(settings, list(FIELDS) if llm_first else list(settings.cascade_fields))
    writers = writers_from_evidence(settings) if llm_first else []
    return LlmPlan(tuple(fields), tuple(writers))
