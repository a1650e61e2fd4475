"""Whether an SOP hit answers a ticket well enough for the template reply to quote it, and which hit it quotes."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from agents.answers.steps import SopSections
from agents.summarise import sentences
from retrieval.embedders import Embedder
from retrieval.hybrid import Hit
from retrieval.markdown import Chunk

# the top hit's dense similarity from which its SOP is quoted (the rule before the aligned one): chosen for
# minilm-int8 (the default embedder) on the tune half of evals/data/summaries.v1.jsonl, as the right-SOP share minus
# twice the share of citations where no SOP fits; evals/reports/summaries.md has the sweep
RELEVANCE = 0.55
# the aligned rule's threshold on mean(the hit's dense similarity, its best sentence-to-line similarity), for
# minilm-int8, chosen on the same tune half by the same objective (a plateau from 0.55 to 0.58, its cleanest end);
# a logistic regression over the two similarities fitted on the tune half weighs them 0.45 / 0.55, near the mean
ALIGNED = 0.58
# a ticket's first sentences are read, so a 20,000-character paste costs what a short ticket does; on the 80 reference
# and holdout tickets (median 3 sentences, at most 7) the first 3 already give the same decisions as all of them
MAX_SENTENCES = 6
MIN_LINE_WORDS = 3  # an SOP line shorter than this (a bare heading such as "Steps") aligns with anything
LINE_MARKER = re.compile(r"^([-*•#>]+|\d+[.)])\s*")


def best_above(hits: Sequence[Hit], scores: Sequence[float], threshold: float) -> Hit | None:
    """The hit of the highest score (one per leading hit) when that score reaches `threshold`, else None."""
    if not scores:
        return None
    best = int(np.argmax(scores))
    return hits[best] if scores[best] >= threshold else None


class RelevanceRule(Protocol):
    """Picks the hit a template reply may quote, or none."""

    name: str

    def choose(self, ticket_text: str, hits: Sequence[Hit]) -> Hit | None: ...


class DenseRelevance:
    """The top hit when its dense similarity to the whole ticket reaches `threshold`."""

    def __init__(self, threshold: float = RELEVANCE) -> None:
        self.threshold = threshold
        self.name = f"dense >= {threshold:.2f}"

    def choose(self, ticket_text: str, hits: Sequence[Hit]) -> Hit | None:
        return hits[0] if hits and hits[0].dense_score >= self.threshold else None


def ticket_sentences(ticket_text: str, limit: int = MAX_SENTENCES) -> list[str]:
    """The ticket's first `limit` sentences as the summariser reads them (no greeting, sign-off or signature); the
    whole text when none is left."""
    found = sentences(ticket_text)[:limit]
    return found or ([" ".join(ticket_text.split())] if ticket_text.strip() else [])


def sop_lines(title: str, chunks: Sequence[Chunk | Hit]) -> list[str]:
    """An SOP's title, section headings and lines of text of at least MIN_LINE_WORDS words, list markers dropped."""
    out: list[str] = [title]
    for chunk in chunks:
        for raw in [chunk.section.split(" > ")[-1], *chunk.text.splitlines()]:
            line = LINE_MARKER.sub("", " ".join(raw.split()))
            if len(line.split()) >= MIN_LINE_WORDS and line not in out:
                out.append(line)
    return [line for line in out if len(line.split()) >= MIN_LINE_WORDS]


class AlignedRelevance:
    """Scores a hit by the mean of its dense similarity to the whole ticket and the best similarity between one of
    the ticket's sentences and one line of its SOP (title, headings, symptoms, steps); quotes the best of the first
    `candidates` hits when its score reaches `threshold`.

    The sentence alignment rewards an SOP that states the ticket's own problem in one line, and the whole-ticket
    similarity keeps an SOP that only shares one generic line from passing. The SOP lines are embedded once per file;
    a reply embeds the ticket's sentences once. `embedder` must be of the vector space the hits were scored in.
    """

    def __init__(
        self, embedder: Embedder, sections: SopSections, *, threshold: float = ALIGNED, candidates: int = 1
    ) -> None:
        self.embedder = embedder
        self.sections = sections
        self.threshold = threshold
        self.candidates = max(1, candidates)
        self.name = f"aligned >= {threshold:.2f}" + (f", best of {self.candidates}" if self.candidates > 1 else "")
        self._lines: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _line_vectors(self, hit: Hit) -> np.ndarray:
        """The vectors of the hit's SOP lines, embedded on first use (the hit's own section when its file is gone)."""
        key = hit.path or hit.doc_id
        with self._lock:
            found = self._lines.get(key)
        if found is not None:
            return found
        chunks: Sequence[Chunk | Hit] = self.sections.of(hit) or [hit]
        lines = sop_lines(hit.title, chunks)
        vectors = self.embedder.embed(lines) if lines else np.zeros((0, self.embedder.dim), dtype=np.float32)
        with self._lock:
            self._lines[key] = vectors
        return vectors

    def scores(self, ticket_text: str, hits: Sequence[Hit]) -> list[float]:
        """The score of each of the first `candidates` hits: mean(dense similarity, best sentence-to-line one)."""
        shown = list(hits[: self.candidates])
        said = ticket_sentences(ticket_text)
        if not shown or not said:
            return [h.dense_score / 2 for h in shown]
        vectors = self.embedder.embed(said)
        out = []
        for hit in shown:
            lines = self._line_vectors(hit)
            aligned = float((vectors @ lines.T).max()) if len(lines) else 0.0
            out.append((hit.dense_score + aligned) / 2)
        return out

    def choose(self, ticket_text: str, hits: Sequence[Hit]) -> Hit | None:
        return best_above(hits, self.scores(ticket_text, hits), self.threshold)
