"""LLM re-ranking: the LLM picks, among the first K runbooks of the classical search, the ones that fit the question."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from agents.errors import InvalidModelOutput
from agents.llm.calls import ask
from agents.llm.chat import ChatModel, ChatReply
from agents.llm.classify import brief, wire_schema
from agents.types import Deadline, LlmCall
from prompts import Prompt, data_block, load_prompt
from retrieval.hybrid import Hit
from retrieval.markdown import Chunk

K = 5  # chosen on the tune half (evals/reports/llm/rerank/report.md): K = 10 did worse and took twice as long
MAX_PICKS = 3
EXTRACT_CHARS = 300
# sections that say what a runbook is about, best first; "" is the text before the first heading
ABOUT_SECTIONS = ("meaning", "description", "overview", "summary", "", "impact")
CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
URL = re.compile(r"https?://\S+")
CAMEL_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


class RerankAnswer(BaseModel):
    """What the reader accepts: one to MAX_PICKS whole numbers (their range and repeats are checked apart)."""

    model_config = ConfigDict(extra="forbid")

    picks: list[int] = Field(min_length=1, max_length=MAX_PICKS)


def answer_schema(k: int, max_picks: int = MAX_PICKS) -> dict[str, Any]:
    """The schema sent to the endpoint: the picks as numbers 1..k, so a grammar-constrained server can only answer
    those (the reader checks again: not every server constrains)."""
    numbers: Any = Literal[tuple(range(1, k + 1))]  # type: ignore[valid-type]
    model = create_model(
        "RerankWire",
        __config__=ConfigDict(extra="forbid"),
        picks=(list[numbers], Field(min_length=1, max_length=max_picks)),
    )
    return wire_schema(model)


def picks_reader(k: int, max_picks: int = MAX_PICKS) -> Callable[[ChatReply], list[int]]:
    """A reader of the picks among `k` candidates: InvalidModelOutput for junk, a number outside 1..k or a repeat."""

    def read(reply: ChatReply) -> list[int]:
        try:
            picks = RerankAnswer.model_validate(reply.parsed).picks
        except ValidationError as exc:
            raise InvalidModelOutput(f"rerank: {brief(exc)}", raw=reply.text) from None
        outside = [p for p in picks if not 1 <= p <= k]
        if outside:
            raise InvalidModelOutput(f"rerank: pick {outside[0]} outside 1..{k}", raw=reply.text)
        if len(set(picks)) != len(picks):
            raise InvalidModelOutput(f"rerank: a pick repeated in {picks}", raw=reply.text)
        return picks[:max_picks]

    return read


def clean_prose(text: str) -> str:
    """Markdown reduced to its prose: no code blocks, tables, URLs, link targets or backticks; one line."""
    text = LINK.sub(r"\1", CODE_BLOCK.sub(" ", text))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("|")]
    return " ".join(URL.sub(" ", " ".join(lines)).replace("`", "").replace("**", "").split())


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut} ..."


def hit_extract(hit: Hit, limit: int = EXTRACT_CHARS) -> str:
    """The hit's own section as prose (the fallback when no extract of its runbook is known)."""
    return clip(clean_prose(hit.text), limit)


def runbook_extracts(chunks: Iterable[Chunk], limit: int = EXTRACT_CHARS) -> dict[str, str]:
    """Per file path, the prose of the sections that say what the runbook is about (Meaning first), cut short."""
    by_path: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_path.setdefault(chunk.path, []).append(chunk)

    def rank(chunk: Chunk) -> int:
        top = chunk.section.split(" > ")[0].strip().lower()
        return ABOUT_SECTIONS.index(top) if top in ABOUT_SECTIONS else len(ABOUT_SECTIONS)

    out = {}
    for path, members in by_path.items():
        ordered = sorted(members, key=rank)  # stable: the file's order within a section kind
        text = " ".join(p for p in (clean_prose(c.text) for c in ordered) if p)
        out[path] = clip(text, limit)
    return out


def readable_title(title: str) -> str:
    """An alert-style title with its CamelCase words apart ("etcdDatabaseQuotaLowSpace" -> "etcd Database ...")."""
    return " ".join(CAMEL_WORD.findall(title)) or title


class Reranked(BaseModel):
    """The new order of runbook paths, the LLM's picks (1-based among those shown), the call, and why the classical
    order was kept when it was."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str]
    picks: list[int] = []
    shown: int = 0  # how many candidates the LLM saw
    prompt_chars: int = 0  # the size of the prompt sent (system and user turns)
    call: LlmCall | None = None
    reason: str | None = None  # why the classical order stands


class LlmReranker:
    """Puts the runbooks the LLM picks among the first `k` hits first, the rest after in the classical order; any
    failure of the LLM path keeps the classical order, with the reason. No candidate is lost or invented."""

    def __init__(
        self,
        chat: ChatModel,
        *,
        prompt: Prompt | None = None,
        k: int = K,
        max_picks: int = MAX_PICKS,
        extract: Callable[[Hit], str] = hit_extract,
    ) -> None:
        if k < 2 or max_picks < 1:
            raise ValueError("the re-ranker needs k >= 2 and max_picks >= 1")
        self.chat = chat
        self.prompt = prompt or load_prompt("rerank", "v1")
        self.k = k
        self.max_picks = max_picks
        self.extract = extract

    def candidates_text(self, hits: Sequence[Hit]) -> str:
        """The shown candidates, one numbered block each: title, folder, extract."""
        parts = []
        for i, hit in enumerate(hits, start=1):
            folder = hit.path.rsplit("/", 2)[-2] if hit.path.count("/") >= 1 else ""
            extract = " ".join(self.extract(hit).split())
            head = f"[{i}] {readable_title(hit.title)}" + (f" ({folder})" if folder else "")
            parts.append(f"{head}\n{extract}")
        return "\n\n".join(parts)

    def rerank(self, question: str, hits: Sequence[Hit], deadline: Deadline | None = None) -> Reranked:
        """The hits' paths (each file once) with the LLM's picks first; never raises."""
        by_path: dict[str, Hit] = {}
        for hit in hits:  # a file's first hit stands for it
            by_path.setdefault(hit.path, hit)
        unique = list(by_path.values())
        paths = [h.path for h in unique]
        shown = unique[: self.k]
        if len(shown) < 2:
            return Reranked(paths=paths, reason="fewer than two candidates: nothing to re-rank")
        messages = self.prompt.render(
            k=len(shown),
            max_picks=min(self.max_picks, len(shown)),
            candidates=data_block(self.candidates_text(shown), "runbooks"),
            question=data_block(question, "question"),
        )
        size = sum(len(m["content"]) for m in messages)
        try:
            picks, call = ask(
                self.chat,
                "rerank",
                self.prompt.id,
                messages,
                answer_schema(len(shown), self.max_picks),
                picks_reader(len(shown), self.max_picks),
                schema_name="rerank",
                max_tokens=16 + 4 * self.max_picks,
                deadline=deadline,
            )
        except Exception as exc:  # noqa: BLE001 - search never fails because the re-ranking did
            reason = f"rerank failed ({type(exc).__name__}: {exc})"[:300]
            return Reranked(paths=paths, shown=len(shown), prompt_chars=size, reason=reason)
        first = [shown[p - 1].path for p in picks]
        order = first + [p for p in paths if p not in first]
        return Reranked(paths=order, picks=picks, shown=len(shown), prompt_chars=size, call=call)
