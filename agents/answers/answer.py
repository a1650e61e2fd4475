"""Answers: retrieve SOP sections, write a cited answer (LLM or extractive), name the owner, abstain when unsure."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agents.answers.llm_writer import AnswerWriter, Draft, check_citations
from agents.answers.owners import OwnerAnswer, OwnerResolver
from agents.answers.text import (
    DEFAULT_THRESHOLD,
    AskResult,
    Citation,
    StaleSource,
    ask_line,
    owner_text,
    stale_line,
    stale_sources,
    verbatim,
)
from agents.errors import InvalidModelOutput, TriageError
from agents.language import detect_language
from agents.llm.translate import LlmTranslator
from agents.policy import LlmGuard
from agents.types import LlmCall, Owner
from retrieval.errors import EmptyQuery
from retrieval.hybrid import Hit, HybridSearcher, clean_query
from retrieval.markdown import Chunk

__all__ = ["DEFAULT_THRESHOLD", "Answerer", "AskResult", "Citation", "StaleSource"]

RETRIEVE_K = 10  # hits scored for ownership; the first 5 are the answer's retrieved set
SHOWN_K = 5
RANK_DOCS = 50  # documents ranked per question, so the owner service's SOPs can join the retrieved set
HANDLE = re.compile(r"(?<![\w.])@([a-z][a-z0-9._-]*[a-z0-9])", re.I)
OWNER_INTENT = re.compile(
    r"\b(who|whom|w?h?ich (team|group|department|person)|what team|on[- ]?cal+|in charge|responsible for|"
    r"owns|owned|owners?)\b",
    re.I,
)
NUMBERED = re.compile(r"^\s*\d+[.)]\s", re.M)
NUMBERED_BONUS = 0.1
LEXICAL_WEIGHT = 0.2


def steps_like(chunk: Chunk) -> bool:
    return "step" in chunk.section.lower() or bool(NUMBERED.search(chunk.text))


@dataclass(frozen=True)
class Translation:
    """What translating a question added: reasons to show and the LLM calls made."""

    reasons: list[str] = field(default_factory=list)
    calls: list[LlmCall] = field(default_factory=list)


class Answerer:
    """Hybrid retrieval, ownership, then an answer: the writer's (when given and it works) or the best section's
    steps verbatim. Below `threshold` it abstains and says who to ask instead."""

    def __init__(
        self,
        searcher: HybridSearcher,
        resolver: OwnerResolver,
        *,
        writer: AnswerWriter | None = None,
        guard: LlmGuard | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        stale_after_days: int = 365,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        translator: LlmTranslator | None = None,
    ) -> None:
        self.searcher = searcher
        self.resolver = resolver
        # languages the catalogue has words for are matched as written; the others go through the translator, where
        # evals/reports/llm/translate/report.md measured it to help (owner accuracy 0.127 -> 0.891, p < 0.001)
        self.translator = translator
        self.catalogue_languages = {lang for svc in resolver.kb.services.values() for lang in svc.aliases_in}
        self.writer = writer
        self.guard = guard or (LlmGuard(writer.name, fallback_on=(TriageError,)) if writer else None)
        self.threshold = threshold
        self.stale_after_days = stale_after_days
        self.clock = clock
        self.by_doc: dict[str, list[int]] = {}
        for pos, chunk in enumerate(searcher.index.chunks):
            self.by_doc.setdefault(chunk.doc_id, []).append(pos)
        self.vectorizer = searcher.index.lexical.vectorizer_

    def ask(self, question: str, *, tickets: Iterable[Any] | None = None) -> AskResult:
        started = time.perf_counter()
        try:
            query = clean_query(question)
        except EmptyQuery:
            query = ""
        if not query:
            return self._abstain(question or "", OwnerAnswer(), [], ["the question is empty"], started)
        query, translation = self._translated(query)
        result = self._ask(query, tickets, started)
        if not translation.reasons and not translation.calls:
            return result
        return result.model_copy(
            update={
                "reasons": [*translation.reasons, *result.reasons],
                "llm_calls": [*translation.calls, *result.llm_calls],
            }
        )

    def _translated(self, query: str) -> tuple[str, Translation]:
        """The query in English when it is in a language the catalogue has no words for and a translator is set."""
        if self.translator is None:
            return query, Translation()
        lang = detect_language(query)
        if not lang.foreign or lang.lang in self.catalogue_languages:
            return query, Translation()
        got = self.translator.translate(query)
        calls = [got.call] if got.call else []
        if got.reason:
            return query, Translation(reasons=[f"{lang.name}, which the catalogue has no words for: {got.reason}"])
        note = f"translated from {lang.name} by the LLM (the catalogue has no {lang.name} words): {got.text!r}"
        return got.text, Translation(reasons=[note], calls=calls)

    def _ask(self, query: str, tickets: Iterable[Any] | None, started: float) -> AskResult:
        vector = self.searcher.index.embedder.embed([query])[0]
        hits = self.searcher.search(query, k=min(max(len(self.by_doc), 1), RANK_DOCS), vector=vector)
        sop_scores: dict[str, float] = {}
        for hit in hits[:RETRIEVE_K]:
            service = str(hit.meta.get("service") or "")
            sop_scores[service] = max(sop_scores.get(service, 0.0), hit.dense_score)
        howto = not OWNER_INTENT.search(query)
        owner = self.resolver.resolve(query, vector=vector, sop_scores=sop_scores, by_rank=howto, tickets=tickets)
        reasons = [owner.note] if owner.note else []
        tokens = self.vectorizer.build_analyzer()(query)
        if len(tokens) >= 2 and sum(t in self.vectorizer.vocabulary_ for t in tokens) < 0.3 * len(tokens):
            reasons.append("most words of the question never occur in our SOPs (another language, or off topic)")
        if owner.confidence < self.threshold:
            reasons.insert(0, f"confidence {owner.confidence:.2f} is under the threshold {self.threshold:.2f}")
            return self._abstain(query, owner, hits[:SHOWN_K], reasons, started)
        shown = self._shown(hits, owner)
        result = self._answer(query, vector, shown, owner, reasons)
        return result.model_copy(update={"latency_ms": round((time.perf_counter() - started) * 1000, 2)})

    # ---- the parts -------------------------------------------------------------------------------

    def _shown(self, hits: list[Hit], owner: OwnerAnswer) -> list[Hit]:
        """The retrieved set: the owner service's SOPs first (in rank order), then the other top hits."""
        service = owner.owner.service if owner.owner else None
        promoted = [h for h in hits if service and h.meta.get("service") == service]
        return [*promoted, *[h for h in hits[:SHOWN_K] if h not in promoted]][:SHOWN_K]

    def _retrieved(self, shown: list[Hit], query: str, vector: np.ndarray) -> tuple[list[Hit], Chunk | None]:
        """Second stage: the top document's best steps section joins the retrieved set (first)."""
        if not shown:
            return [], None
        best = self._best_section(shown[0], query, vector)
        top = shown[0]
        as_hit = Hit(
            doc_id=best.doc_id,
            title=best.title,
            section=best.section,
            path=best.path,
            score=top.score,
            snippet=" ".join(best.text.split())[:240],
            text=best.text,
            meta=best.meta,
        )
        return [as_hit, *[h for h in shown if h.ref != as_hit.ref]], best

    def _answer(
        self, question: str, vector: np.ndarray, shown: list[Hit], owner: OwnerAnswer, reasons: list[str]
    ) -> AskResult:
        shown, best = self._retrieved(shown, question, vector)
        calls: list[LlmCall] = []
        removed = 0
        text, refs, backend = "", [], "classical:extractive"
        if self.writer is not None and self.guard is not None and shown:
            attempt = self.guard.run("answer", lambda: self._draft(question, shown, owner.owner))
            calls = attempt.calls
            if attempt.value is not None:
                draft = attempt.value
                text, refs, removed, calls, backend = (
                    draft.text,
                    draft.refs,
                    draft.removed,
                    draft.llm_calls,
                    self.writer.name,
                )
            else:
                reasons.append(f"{attempt.reason}: extractive answer instead")
                backend = "classical:extractive (fallback)"
        citations: list[Citation] = []
        if not text and best is not None:
            body, dropped = verbatim(best.text)
            if dropped:
                reasons.append(
                    f"left out {dropped} line(s) of {best.doc_id} that read like instructions to an assistant"
                )
            cite = Citation(doc_id=best.doc_id, title=best.title, section=best.section, path=best.path)
            text, citations = f"{body}\n\nSource: {best.title} [{cite.ref}]", [cite]
        else:
            by_ref = {h.ref: h for h in shown}
            citations = [
                Citation(doc_id=by_ref[r].doc_id, title=by_ref[r].title, section=by_ref[r].section, path=by_ref[r].path)
                for r in refs
            ]
        lead = owner_text(owner, self.resolver.kb.services) if OWNER_INTENT.search(question) else ""
        stale = stale_sources(shown, citations, self.clock().date(), self.stale_after_days)
        parts = [
            lead,
            text,
            ask_line(owner.owner) if not lead else "",
            *[stale_line(s, self.stale_after_days) for s in stale],
        ]
        return AskResult(
            question=question,
            answer="\n\n".join(p for p in parts if p),
            citations=citations,
            owner=owner.owner,
            alternatives=owner.alternatives,
            ambiguous=owner.ambiguous,
            handling=owner.handling,
            confidence=owner.confidence,
            threshold=self.threshold,
            backend=backend,
            abstained=False,
            stale_sources=stale,
            retrieved=[h.ref for h in shown],
            removed_citations=removed,
            reasons=reasons,
            llm_calls=calls,
        )

    def _draft(self, question: str, shown: list[Hit], owner: Owner | None) -> Draft:
        """The writer's text with out-of-set citations removed; no citation left or an invented person fails."""
        assert self.writer is not None
        clean = [h.model_copy(update={"text": verbatim(h.text)[0]}) for h in shown]
        written = self.writer.write(question, clean, owner)
        text, refs, removed = check_citations(written.text, {h.ref for h in shown})
        if not refs:
            raise InvalidModelOutput(
                f"the answer cites none of the retrieved sections ({removed} removed)", raw=written.text
            )
        known = {h for t in self.resolver.kb.teams.values() for h in t.handles}
        invented = [h for h in HANDLE.findall(text) if h.lower() not in known]
        if invented:
            raise InvalidModelOutput(f"the answer names people outside the catalogue: {invented[:3]}", raw=written.text)
        return Draft(text=text, refs=refs, removed=removed, llm_calls=written.llm_calls)

    def _best_section(self, hit: Hit, query: str, vector: np.ndarray) -> Chunk:
        """The hit's document's best section among those with steps (else the hit's own section): similarity to the
        question, plus its BM25 share within the document (error codes, product words), plus a head start for
        numbered steps over special cases such as "Steps > Drivers at the loading docks"."""
        chunks = self.searcher.index.chunks
        positions = [p for p in self.by_doc.get(hit.doc_id, []) if steps_like(chunks[p])]
        if not positions:
            return next(c for c in chunks if c.doc_id == hit.doc_id and c.section == hit.section)
        faiss_index = self.searcher.index.faiss_index
        lexical = self.searcher.index.lexical.scores(query)[positions]
        lexical = lexical / lexical.max() if lexical.max() > 0 else lexical
        scores = [
            float(vector @ faiss_index.reconstruct(p))
            + LEXICAL_WEIGHT * float(lex)
            + (NUMBERED_BONUS if NUMBERED.search(chunks[p].text) else 0.0)
            for p, lex in zip(positions, lexical, strict=True)
        ]
        return chunks[positions[int(np.argmax(scores))]]

    def _abstain(
        self, question: str, owner: OwnerAnswer, hits: list[Hit], reasons: list[str], started: float
    ) -> AskResult:
        """No answer; who to ask instead: the service the question names, else the catch-all team."""
        if owner.owner is not None and owner.owner.service in owner.mentioned:
            ask: Owner | None = owner.owner
        elif owner.mentioned:
            ask = self.resolver.owner_of(owner.mentioned[0], ["the question names this service"])
        else:
            ask = self.resolver.fallback_owner()
        best = f' (the closest SOP, "{hits[0].title}", is not a good enough match)' if hits else ""
        text = f"I could not find an answer to this in our SOPs{best}."
        if owner.ambiguous or owner.note.startswith("detected "):  # ambiguous, or another language and no service
            text += f" {owner.note}."
        if ask is not None:
            text += f" Please ask {ask.team_name} in {ask.channel}."
        return AskResult(
            question=question,
            answer=text,
            owner=ask,
            alternatives=owner.alternatives if owner.ambiguous else [],
            ambiguous=owner.ambiguous,
            handling=owner.handling,
            confidence=owner.confidence,
            threshold=self.threshold,
            backend="classical:abstain",
            abstained=True,
            retrieved=[h.ref for h in hits],
            reasons=reasons,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
