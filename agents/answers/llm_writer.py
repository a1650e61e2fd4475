"""The answer-writer seam: the protocol, the citation check, and the LLM writer that uses prompts/answer.v1.md."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import InvalidModelOutput
from agents.llm.calls import ask
from agents.llm.chat import ChatModel, ChatReply
from agents.llm.classify import sop_attributes, wire_schema
from agents.redact import prepare
from agents.types import Deadline, LlmCall, Owner
from prompts import Prompt, data_block, load_prompt
from retrieval.hybrid import Hit

CITATION = re.compile(r"\[([^\[\]#\s]+)#([^\[\]\n]+)\]")
ASKS_FOR_SECRET = re.compile(r"(?i)\b(send|share|give|tell|reply with)\b.{0,40}\b(password|passcode|one-time code|otp)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Written(_Model):
    """What a writer produced, before the citation check."""

    text: str
    llm_calls: list[LlmCall] = []


class Draft(_Model):
    """A writer's answer after the citation check: the refs it kept and how many it lost."""

    text: str
    refs: list[str]
    removed: int
    llm_calls: list[LlmCall] = []


class AnswerWriter(Protocol):
    """Writes an answer from the retrieved sections only, citing them as [doc_id#section]. Raising a TriageError
    (model unavailable, unusable output) makes the Answerer use its extractive answer instead."""

    name: str

    def write(self, question: str, hits: Sequence[Hit], owner: Owner | None) -> Written: ...


def check_citations(text: str, allowed: set[str]) -> tuple[str, list[str], int]:
    """(text without the citations outside `allowed`, the refs kept in order, how many were removed)."""
    kept: list[str] = []
    removed = 0

    def one(m: re.Match[str]) -> str:
        nonlocal removed
        ref = f"{m.group(1)}#{m.group(2).strip()}"
        if ref in allowed:
            kept.append(ref)
            return f"[{ref}]"
        removed += 1
        return ""

    cleaned = re.sub(r"[ \t]{2,}", " ", CITATION.sub(one, text))
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned)
    return cleaned.strip(), list(dict.fromkeys(kept)), removed


class AnswerReply(_Model):
    answer: str = Field(min_length=1, max_length=4000)


def read_answer(reply: ChatReply) -> str:
    """The answer's text; InvalidModelOutput when it does not validate or asks for a secret."""
    try:
        answer = AnswerReply.model_validate(reply.parsed).answer.strip()
    except ValidationError as exc:
        raise InvalidModelOutput(f"answer: {exc.errors()[0]['msg']}", raw=reply.text) from None
    if ASKS_FOR_SECRET.search(answer):
        raise InvalidModelOutput("the answer asks for a secret", raw=answer)
    return answer


def owner_line(owner: Owner | None) -> str:
    if owner is None:
        return "(unknown)"
    people = ", ".join(f"@{p}" for p in owner.people)
    on_call = f"; on call now @{owner.on_call}" if owner.on_call else ""
    return f"{owner.team_name} ({people}){on_call}; channel {owner.channel or '-'}"


class LlmAnswerWriter:
    """The chat model writes a short answer from the shown sections; the question is redacted before it leaves."""

    def __init__(
        self,
        chat: ChatModel,
        *,
        prompt: Prompt | None = None,
        max_words: int = 150,
        max_sops: int = 4,
        sop_chars: int = 900,
        llm_timeout: float | None = None,
    ) -> None:
        self.chat = chat
        self.name = chat.name
        self.prompt = prompt or load_prompt("answer", "v1")
        self.max_words = max_words
        self.max_sops = max_sops
        self.sop_chars = sop_chars
        self.llm_timeout = llm_timeout  # seconds of LLM time per question (TRIAGE_LLM_TIMEOUT)

    def write(self, question: str, hits: Sequence[Hit], owner: Owner | None) -> Written:
        redacted = prepare(question)
        deadline = Deadline.after(self.llm_timeout) if self.llm_timeout else None
        sops = [
            data_block(f"{h.title} - {h.section}:\n{h.text[: self.sop_chars]}", "sop", **sop_attributes(h))
            for h in hits[: self.max_sops]
        ]
        messages = self.prompt.render(
            max_words=self.max_words,
            owner=owner_line(owner),
            sops="\n".join(sops) or "(none)",
            question=data_block(redacted.text or "(empty)", "question"),
        )
        answer, call = ask(
            self.chat,
            "answer",
            self.prompt.id,
            messages,
            wire_schema(AnswerReply),
            read_answer,
            schema_name="answer",
            max_tokens=self.max_words * 3,
            deadline=deadline,
        )
        return Written(text=redacted.restore(answer), llm_calls=[call])
