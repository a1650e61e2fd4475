"""Query rewriting: the LLM restates a plain-words question in the words runbooks use, for retrieval only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.llm.calls import ask
from agents.llm.chat import ChatModel
from agents.llm.classify import wire_schema
from agents.llm.readers import text_reader
from agents.types import Deadline, LlmCall
from prompts import Prompt, data_block, load_prompt

MAX_WORDS = 30


class RewriteAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=2, max_length=400)


read_rewrite = text_reader(RewriteAnswer, "query", "rewrite")


class Rewritten(BaseModel):
    """The query to search with, the LLM's words alone, and the call (None when the LLM was not asked)."""

    model_config = ConfigDict(extra="forbid")

    query: str
    rewrite: str | None = None
    call: LlmCall | None = None
    reason: str | None = None  # why the question is searched as it came


class LlmQueryRewriter:
    """Expands a question with the LLM's rewrite (question + rewrite, so no word of the user's is lost); any failure
    of the LLM path leaves the question as it came, with the reason."""

    def __init__(self, chat: ChatModel, *, prompt: Prompt | None = None, max_words: int = MAX_WORDS) -> None:
        self.chat = chat
        self.prompt = prompt or load_prompt("rewrite", "v1")
        self.max_words = max_words

    def rewrite(self, question: str, deadline: Deadline | None = None) -> Rewritten:
        messages = self.prompt.render(max_words=self.max_words, question=data_block(question, "question"))
        try:
            words, call = ask(
                self.chat,
                "rewrite",
                self.prompt.id,
                messages,
                wire_schema(RewriteAnswer),
                read_rewrite,
                schema_name="rewrite",
                max_tokens=self.max_words * 3,
                deadline=deadline,
            )
        except Exception as exc:  # noqa: BLE001 - retrieval never fails because the rewrite did
            return Rewritten(query=question, reason=f"rewrite failed ({type(exc).__name__}: {exc})"[:300])
        clipped = " ".join(words.split()[: self.max_words])
        return Rewritten(query=f"{question} {clipped}", rewrite=clipped, call=call)
