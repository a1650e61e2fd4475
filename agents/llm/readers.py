"""What a written answer (summary, reply, rewrite, translation) must look like, and how a reply is read or refused."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agents.errors import InvalidModelOutput
from agents.llm.chat import ChatReply

ASKS_FOR_SECRET = re.compile(
    r"(?i)\b(send|share|give|tell|provide|reply with|confirm)\b.{0,40}\b(password|passcode|one-time code|otp|mfa code)"
)


class SummaryAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=3, max_length=400)


def reply_model(refs: Sequence[str]) -> type[BaseModel]:
    """The reply may cite only SOPs it was shown (a Literal of their refs), and none when none of them fits."""
    source: Any = Literal[tuple(refs)] if refs else str  # type: ignore[valid-type]
    sources = (list[source], Field(min_length=0, max_length=len(refs)))
    return create_model(
        "ReplyAnswer",
        __config__=ConfigDict(extra="forbid"),
        reply=(str, Field(min_length=20, max_length=2000)),
        sources=sources,
    )


def text_reader(model: type[BaseModel], field: str, task: str) -> Callable[[ChatReply], str]:
    """A reader of an answer that is one text field of `model`: the text with its whitespace collapsed, or
    InvalidModelOutput naming the task and what did not validate."""

    def read(reply: ChatReply) -> str:
        try:
            return " ".join(str(getattr(model.model_validate(reply.parsed), field)).split())
        except ValidationError as exc:
            raise InvalidModelOutput(f"{task}: {exc.errors()[0]['msg']}", raw=reply.text) from None

    return read


read_summary = text_reader(SummaryAnswer, "summary", "summary")


def read_reply(model: type[BaseModel], reply: ChatReply) -> tuple[str, list[str]]:
    """The reply's text and the SOPs it cites; InvalidModelOutput when it does not validate or asks for a secret."""
    try:
        answer = model.model_validate(reply.parsed)
    except ValidationError as exc:
        raise InvalidModelOutput(f"reply: {exc.errors()[0]['msg']}", raw=reply.text) from None
    body: str = answer.reply.strip()  # type: ignore[attr-defined]
    if ASKS_FOR_SECRET.search(body):
        raise InvalidModelOutput("the reply asks the requester for a secret", raw=body)
    return body, list(answer.sources)  # type: ignore[attr-defined]
