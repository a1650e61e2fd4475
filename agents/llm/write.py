"""Summaries and suggested replies: the LLM writes when it can, the classical path (extractive, template) when not."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agents.answers.relevance import RELEVANCE, AlignedRelevance, DenseRelevance, RelevanceRule
from agents.answers.steps import MAX_STEPS, STEP_CHARS, SopSections, best_section, quote_steps
from agents.classify import TicketContext
from agents.llm.calls import ask
from agents.llm.chat import ChatModel
from agents.llm.classify import sop_attributes, wire_schema
from agents.llm.readers import SummaryAnswer, read_reply, read_summary, reply_model
from agents.policy import LlmGuard
from agents.redact import Redacted, prepare
from agents.summarise import MAX_CHARS, ExtractiveSummariser, clip_words
from agents.types import Deadline, LlmCall, Ticket
from kb.loader import KnowledgeBase
from prompts import Prompt, data_block, load_prompt
from retrieval.embedders import Embedder
from retrieval.hybrid import Hit


class Written(BaseModel):
    """A piece of text for the result, and who wrote it."""

    model_config = ConfigDict(extra="forbid")

    text: str
    backend: str
    reasons: list[str] = []
    llm_calls: list[LlmCall] = []


def llm_input(ticket: Ticket, context: TicketContext | None) -> tuple[Redacted, Deadline | None]:
    """What of the ticket may go to the LLM, and by when: the context's (cut and redacted once per ticket), or
    prepared here for a ticket written about on its own."""
    if context is None:
        return prepare(ticket.text), None
    return context.redacted, context.deadline


def duration(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} minutes"
    if minutes < 1440:
        hours = round(minutes / 60)
        return "1 hour" if hours == 1 else f"{hours} hours"
    days = round(minutes / 1440)
    return "1 working day" if days == 1 else f"{days} working days"


class SummaryWriter:
    """A one-line summary by the LLM, or the extractive summary when there is no LLM or it fails."""

    def __init__(
        self,
        fallback: ExtractiveSummariser | None = None,
        chat: ChatModel | None = None,
        *,
        guard: LlmGuard | None = None,
        prompt: Prompt | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.fallback = fallback or ExtractiveSummariser(max_chars)
        self.chat = chat
        self.guard = guard or (LlmGuard(chat.name) if chat else None)
        self.prompt = prompt or load_prompt("summarise", "v2")
        self.max_chars = max_chars

    def write(self, ticket: Ticket, context: TicketContext | None = None) -> Written:
        """The summary; with a context, the LLM sees its redacted text and keeps to its deadline."""
        if self.chat is None or self.guard is None:
            return Written(text=self.fallback.summarise(ticket.title, ticket.body), backend=self.fallback.name)
        redacted, deadline = llm_input(ticket, context)
        attempt = self.guard.run("summarise", lambda: self._llm(redacted, deadline))
        if attempt.value is not None:
            return attempt.value
        return Written(
            text=self.fallback.summarise(ticket.title, ticket.body),
            backend=f"{self.fallback.name} (fallback)",
            reasons=[f"{attempt.reason}: extractive summary instead"],
            llm_calls=attempt.calls,
        )

    def _llm(self, ticket: Redacted, deadline: Deadline | None) -> Written:
        assert self.chat is not None
        messages = self.prompt.render(max_chars=self.max_chars, ticket=data_block(ticket.text or "(empty)", "ticket"))
        summary, call = ask(
            self.chat,
            "summarise",
            self.prompt.id,
            messages,
            wire_schema(SummaryAnswer),
            read_summary,
            schema_name="summary",
            max_tokens=max(64, self.max_chars // 2),
            deadline=deadline,
        )
        clipped = clip_words(ticket.restore(summary), self.max_chars)
        return Written(text=clipped, backend=self.chat.name, llm_calls=[call])


class ReplyWriter:
    """A first reply to the requester: by the LLM, grounded in the SOP hits; else a template quoting whole steps of the
    SOP that `rule` finds relevant, and no SOP at all when it finds none. The rule is the aligned one
    (agents/answers/relevance.py) with an `embedder` of the index's vector space, else the top hit's dense similarity
    against `relevance`."""

    name = "classical:template"

    def __init__(
        self,
        kb: KnowledgeBase,
        chat: ChatModel | None = None,
        *,
        guard: LlmGuard | None = None,
        prompt: Prompt | None = None,
        sections: SopSections | None = None,
        max_words: int = 120,
        max_sops: int = 2,
        max_steps: int = MAX_STEPS,
        sop_chars: int = STEP_CHARS,
        relevance: float = RELEVANCE,
        embedder: Embedder | None = None,
        rule: RelevanceRule | None = None,
    ) -> None:
        self.kb = kb
        self.chat = chat
        self.guard = guard or (LlmGuard(chat.name) if chat else None)
        self.prompt = prompt or load_prompt("reply", "v2")
        self.sections = sections or SopSections(Path(kb.root) / "sops")
        self.max_words = max_words
        self.max_sops = max_sops
        self.max_steps = max_steps
        self.sop_chars = sop_chars
        if rule is None:
            rule = AlignedRelevance(embedder, self.sections) if embedder else DenseRelevance(relevance)
        self.rule = rule

    def write(
        self,
        ticket: Ticket,
        category: str,
        priority: str,
        team: str,
        hits: Sequence[Hit],
        context: TicketContext | None = None,
    ) -> Written:
        """The reply; with a context, the LLM sees its redacted text and keeps to its deadline."""
        if self.chat is None or self.guard is None:
            return Written(text=self.template(ticket, category, priority, team, hits), backend=self.name)
        redacted, deadline = llm_input(ticket, context)
        attempt = self.guard.run("reply", lambda: self._llm(redacted, category, priority, team, hits, deadline))
        if attempt.value is not None:
            return attempt.value
        return Written(
            text=self.template(ticket, category, priority, team, hits),
            backend=f"{self.name} (fallback)",
            reasons=[f"{attempt.reason}: template reply instead"],
            llm_calls=attempt.calls,
        )

    def _facts(self, category: str, priority: str, team: str) -> tuple[str, str, str, str]:
        tax = self.kb.taxonomy
        cat = tax.category(category).name if category in tax.category_ids else category
        prio = tax.priority(priority) if priority in tax.priority_ids else None
        team_name = self.kb.teams[team].name if team in self.kb.teams else team
        response = duration(prio.response_minutes) if prio else "the agreed time"
        return cat, f"{priority} ({prio.name})" if prio else priority, team_name, response

    def guide(self, ticket_text: str, hits: Sequence[Hit]) -> tuple[Hit, str, list[str], int] | None:
        """The SOP the rule finds relevant: its hit, the quoted section's ref, the whole steps, how many were left."""
        top = self.rule.choose(ticket_text, hits)
        if top is None:
            return None
        ref, _, text = best_section(top, self.sections.of(top), ticket_text)
        steps, left = quote_steps(text, self.max_steps, self.sop_chars)
        return (top, ref, steps, left) if steps else None

    def template(self, ticket: Ticket, category: str, priority: str, team: str, hits: Sequence[Hit]) -> str:
        cat, prio, team_name, response = self._facts(category, priority, team)
        handle = (ticket.requester or "").split("@")[0].split(".")[0]
        greeting = f"Hello {handle.capitalize()}," if handle.isalpha() else "Hello,"
        subject = f' "{ticket.title.strip()[:120]}"' if ticket.title.strip() else ""
        lines = [
            greeting,
            "",
            f"Thank you for your ticket{subject}. We logged it as {cat}, priority {prio}; "
            f"the {team_name} team will respond within {response}.",
        ]
        guide = self.guide(ticket.text, hits)
        if guide is not None:
            top, ref, steps, left = guide
            more = [f"({left} more step{'s' if left > 1 else ''} in the guide.)"] if left else []
            lines += ["", f'While you wait, the guide "{top.title}" [{ref}] may help:', *steps, *more]
        return "\n".join([*lines, "", "IT Service Desk"])

    def _excerpt(self, hit: Hit, ticket_text: str) -> tuple[str, str, str]:
        """(ref, section, text) of a hit for the LLM: whole steps of its best section, never a cut sentence."""
        ref, section, text = best_section(hit, self.sections.of(hit), ticket_text)
        steps, _ = quote_steps(text, max_steps=20, max_chars=self.sop_chars)
        return ref, section, "\n".join(steps)

    def _llm(
        self, ticket: Redacted, category: str, priority: str, team: str, hits: Sequence[Hit], deadline: Deadline | None
    ) -> Written:
        assert self.chat is not None
        cat, prio, team_name, response = self._facts(category, priority, team)
        shown = [(h, *self._excerpt(h, ticket.text)) for h in hits[: self.max_sops]]
        sops = [
            data_block(
                f"{h.title} - {section}:\n{text}" if section else f"{h.title}:\n{text}",
                "sop",
                **sop_attributes(h, ref),
            )
            for h, ref, section, text in shown
        ]
        values: dict[str, object] = {
            "max_words": self.max_words,
            "category": cat,
            "priority": prio,
            "response_time": response,
            "team": team_name,
            "sops": "\n".join(sops) or "(none)",
            "ticket": data_block(ticket.text or "(empty)", "ticket"),
        }
        if "max_steps" in self.prompt.variables:  # reply.v2 on; reply.v1 has no step limit
            values["max_steps"] = self.max_steps
        messages = self.prompt.render(**values)
        model = reply_model([ref for _, ref, _, _ in shown])
        (body, sources), call = ask(
            self.chat,
            "reply",
            self.prompt.id,
            messages,
            wire_schema(model),
            partial(read_reply, model),
            schema_name="reply",
            max_tokens=self.max_words * 3,
            deadline=deadline,
        )
        missing = [s for s in sources if f"[{s}]" not in body]
        if missing:
            body += "\n\nSee " + ", ".join(f"[{s}]" for s in missing)
        return Written(text=ticket.restore(body), backend=self.chat.name, llm_calls=[call])
