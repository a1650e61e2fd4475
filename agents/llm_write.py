"""Summaries and suggested replies: the LLM writes when it can, the classical path (extractive, template) when not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agents.errors import InvalidModelOutput
from agents.llm import ChatModel, record_call, remaining
from agents.llm_classify import sop_attributes, wire_schema
from agents.policy import LlmGuard
from agents.redact import Redactor
from agents.summarise import ExtractiveSummariser
from agents.types import LlmCall, Ticket
from kb.loader import KnowledgeBase
from prompts import Prompt, data_block, load_prompt
from retrieval.hybrid import Hit

ASKS_FOR_SECRET = re.compile(
    r"(?i)\b(send|share|give|tell|provide|reply with|confirm)\b.{0,40}\b(password|passcode|one-time code|otp|mfa code)"
)


class Written(BaseModel):
    """A piece of text for the result, and who wrote it."""

    model_config = ConfigDict(extra="forbid")

    text: str
    backend: str
    reasons: list[str] = []
    llm_calls: list[LlmCall] = []


class SummaryAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=3, max_length=400)


def reply_model(refs: Sequence[str]) -> type[BaseModel]:
    """The reply must cite only SOPs it was shown (a Literal of their refs), at least one when there were some."""
    source: Any = Literal[tuple(refs)] if refs else str  # type: ignore[valid-type]
    sources = (list[source], Field(min_length=1 if refs else 0, max_length=len(refs)))
    return create_model(
        "ReplyAnswer",
        __config__=ConfigDict(extra="forbid"),
        reply=(str, Field(min_length=20, max_length=2000)),
        sources=sources,
    )


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
        redactor: Redactor | None = None,
        max_words: int = 25,
        text_chars: int = 1500,
    ) -> None:
        self.fallback = fallback or ExtractiveSummariser()
        self.chat = chat
        self.guard = guard or (LlmGuard(chat.name) if chat else None)
        self.prompt = prompt or load_prompt("summarise", "v1")
        self.redactor = redactor or Redactor()
        self.max_words = max_words
        self.text_chars = text_chars

    def write(self, ticket: Ticket, deadline: float | None = None) -> Written:
        if self.chat is None or self.guard is None:
            return Written(text=self.fallback.summarise(ticket.title, ticket.body), backend=self.fallback.name)
        attempt = self.guard.run("summarise", lambda: self._llm(ticket, deadline))
        if attempt.value is not None:
            return attempt.value
        return Written(
            text=self.fallback.summarise(ticket.title, ticket.body),
            backend=f"{self.fallback.name} (fallback)",
            reasons=[f"{attempt.reason}: extractive summary instead"],
            llm_calls=attempt.calls,
        )

    def _llm(self, ticket: Ticket, deadline: float | None) -> Written:
        assert self.chat is not None
        text, mapping = self.redactor.redact(ticket.text[: self.text_chars])
        messages = self.prompt.render(max_words=self.max_words, ticket=data_block(text or "(empty)", "ticket"))
        left = remaining(deadline, self.chat.name, "summarise")
        schema = wire_schema(SummaryAnswer)
        reply = self.chat.complete(messages, schema, schema_name="summary", max_tokens=self.max_words * 3, timeout=left)
        try:
            summary = SummaryAnswer.model_validate(reply.parsed).summary
        except ValidationError as exc:
            raise InvalidModelOutput(f"summary: {exc.errors()[0]['msg']}", raw=reply.text) from None
        words = " ".join(self.redactor.restore(summary, mapping).split()).split(" ")
        clipped = " ".join(words[: self.max_words]) + ("..." if len(words) > self.max_words else "")
        return Written(
            text=clipped, backend=self.chat.name, llm_calls=[record_call("summarise", self.chat.name, reply, messages)]
        )


class ReplyWriter:
    """A first reply to the requester: by the LLM, grounded in the SOP hits; else a template citing the top SOP."""

    name = "classical:template"

    def __init__(
        self,
        kb: KnowledgeBase,
        chat: ChatModel | None = None,
        *,
        guard: LlmGuard | None = None,
        prompt: Prompt | None = None,
        redactor: Redactor | None = None,
        max_words: int = 120,
        max_sops: int = 2,
        sop_chars: int = 600,
    ) -> None:
        self.kb = kb
        self.chat = chat
        self.guard = guard or (LlmGuard(chat.name) if chat else None)
        self.prompt = prompt or load_prompt("reply", "v1")
        self.redactor = redactor or Redactor()
        self.max_words = max_words
        self.max_sops = max_sops
        self.sop_chars = sop_chars

    def write(
        self,
        ticket: Ticket,
        category: str,
        priority: str,
        team: str,
        hits: Sequence[Hit],
        deadline: float | None = None,
    ) -> Written:
        if self.chat is None or self.guard is None:
            return Written(text=self.template(ticket, category, priority, team, hits), backend=self.name)
        attempt = self.guard.run("reply", lambda: self._llm(ticket, category, priority, team, hits, deadline))
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
        if hits:
            top = hits[0]
            steps = " ".join(top.text.split())[:400] or top.snippet
            lines += ["", f'While you wait, the guide "{top.title}" [{top.ref}] may help: {steps}']
        return "\n".join([*lines, "", "IT Service Desk"])

    def _llm(
        self, ticket: Ticket, category: str, priority: str, team: str, hits: Sequence[Hit], deadline: float | None
    ) -> Written:
        assert self.chat is not None
        cat, prio, team_name, response = self._facts(category, priority, team)
        text, mapping = self.redactor.redact(ticket.text[:1500])
        shown = list(hits[: self.max_sops])
        sops = [
            data_block(
                f"{h.title} - {h.section}:\n{' '.join(h.text.split())[: self.sop_chars]}", "sop", **sop_attributes(h)
            )
            for h in shown
        ]
        messages = self.prompt.render(
            max_words=self.max_words,
            category=cat,
            priority=prio,
            response_time=response,
            team=team_name,
            sops="\n".join(sops) or "(none)",
            ticket=data_block(text or "(empty)", "ticket"),
        )
        model = reply_model([h.ref for h in shown])
        left = remaining(deadline, self.chat.name, "reply")
        reply = self.chat.complete(
            messages, wire_schema(model), schema_name="reply", max_tokens=self.max_words * 3, timeout=left
        )
        try:
            answer = model.model_validate(reply.parsed)
        except ValidationError as exc:
            raise InvalidModelOutput(f"reply: {exc.errors()[0]['msg']}", raw=reply.text) from None
        body: str = answer.reply.strip()  # type: ignore[attr-defined]
        if ASKS_FOR_SECRET.search(body):
            raise InvalidModelOutput("the reply asks the requester for a secret", raw=body)
        missing = [s for s in answer.sources if f"[{s}]" not in body]  # type: ignore[attr-defined]
        if missing:
            body += "\n\nSee " + ", ".join(f"[{s}]" for s in missing)
        return Written(
            text=self.redactor.restore(body, mapping),
            backend=self.chat.name,
            llm_calls=[record_call("reply", self.chat.name, reply, messages)],
        )
