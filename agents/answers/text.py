"""What an answer looks like: the AskResult model, and the sentences about owners, staleness and who to ask."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from agents.answers.owners import OwnerAnswer, TicketRef
from agents.types import LlmCall, Owner
from kb.models import Service
from retrieval.hybrid import Hit

DEFAULT_THRESHOLD = 0.293  # chosen on evals/data/questions.v1.jsonl, see evals/reports/answers.md
INJECTION = re.compile(
    r"(?i)\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|above)\b"
    r"|\byou are now\b|\bsystem prompt\b|\b(assistant|chatbot|ai model|llm)s?\b.{0,40}\b(must|should|always)\b"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Citation(_Model):
    doc_id: str
    title: str
    section: str
    path: str

    @property
    def ref(self) -> str:
        return f"{self.doc_id}#{self.section}" if self.section else self.doc_id


class StaleSource(_Model):
    doc_id: str
    last_reviewed: date
    age_days: int


class AskResult(_Model):
    """The answer to one question, its sources and owner, how sure we are and who wrote it."""

    question: str
    answer: str
    citations: list[Citation] = []
    owner: Owner | None = None
    alternatives: list[Owner] = []  # the other owners when an alias names several services
    ambiguous: bool = False
    handling: list[TicketRef] = []  # open tickets about the service, for "who is handling ..." questions
    confidence: float = 0.0
    threshold: float = DEFAULT_THRESHOLD
    backend: str
    abstained: bool
    stale_sources: list[StaleSource] = []
    retrieved: list[str] = []  # the retrieved set (doc_id#section) that citations are checked against
    removed_citations: int = 0
    reasons: list[str] = []
    latency_ms: float = 0.0
    llm_calls: list[LlmCall] = []


def verbatim(text: str) -> tuple[str, int]:
    """The text without lines that read like instructions to an assistant, and how many were left out."""
    lines = text.splitlines()
    kept = [line for line in lines if not INJECTION.search(line)]
    return "\n".join(kept).strip(), len(lines) - len(kept)


def stale_sources(hits: Sequence[Hit], citations: Sequence[Citation], today: date, days: int) -> list[StaleSource]:
    """Cited SOPs whose front matter `last_reviewed` is more than `days` before `today`."""
    cited = {c.doc_id for c in citations}
    out: dict[str, StaleSource] = {}
    for hit in hits:
        raw = hit.meta.get("last_reviewed")
        if hit.doc_id not in cited or hit.doc_id in out or not raw:
            continue
        try:
            reviewed = date.fromisoformat(str(raw)[:10])
        except ValueError:
            continue
        if (today - reviewed).days > days:
            out[hit.doc_id] = StaleSource(doc_id=hit.doc_id, last_reviewed=reviewed, age_days=(today - reviewed).days)
    return list(out.values())


def stale_line(stale: StaleSource, days: int) -> str:
    return (
        f"Note: {stale.doc_id} was last reviewed on {stale.last_reviewed.isoformat()} ({stale.age_days} days ago, "
        f"over {days}); it may be out of date."
    )


def describe(owner: Owner, services: dict[str, Service]) -> str:
    svc = services.get(owner.service or "")
    people = ", ".join(f"@{p}" for p in owner.people)
    on_call = f" On call now: @{owner.on_call}." if owner.on_call else ""
    escalation = f" Escalation: @{owner.escalation}." if owner.escalation else ""
    name = svc.name if svc else owner.team_name
    return f"{name} is owned by {owner.team_name} ({people}).{on_call}{escalation} Channel: {owner.channel}."


def owner_text(owner: OwnerAnswer, services: dict[str, Service]) -> str:
    """The lead of an answer to a who-question: the owner (all of them when ambiguous) and open tickets."""
    if owner.owner is None:
        return owner.note
    lines = [describe(owner.owner, services)]
    if owner.ambiguous:
        lines = [f"{owner.note}.", *[f"- {describe(o, services)}" for o in [owner.owner, *owner.alternatives]]]
    for ticket in owner.handling[:5]:
        who = f"@{ticket.assignee}" if ticket.assignee else "nobody yet"
        lines.append(f"Open ticket {ticket.id} ({ticket.status}): {ticket.title} - assigned to {who}.")
    return "\n".join(lines)


def ask_line(owner: Owner | None) -> str:
    if owner is None:
        return ""
    on_call = f" (on call now: @{owner.on_call})" if owner.on_call else ""
    return f"If that does not help, ask {owner.team_name} in {owner.channel}{on_call}."
