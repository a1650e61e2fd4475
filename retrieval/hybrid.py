"""Hybrid search: lexical and dense rankings fused by reciprocal rank (per file or per chunk), as typed hits."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from retrieval.documents import DocumentSignals
from retrieval.errors import EmptyQuery
from retrieval.index import SopIndex
from retrieval.markdown import split_identifiers

log = logging.getLogger(__name__)

Mode = Literal["lexical", "dense", "hybrid"]
Fusion = Literal["documents", "chunks"]
FUSIONS: tuple[Fusion, ...] = ("documents", "chunks")
MAX_QUERY_CHARS = 2000
CANDIDATES = 50
SNIPPET_CHARS = 240
# "documents" fusion: a small k lets the first places of each ranking count; the weights are those of whole-file
# BM25, best chunk BM25, best chunk similarity and centroid similarity (k and weights chosen on the tune half of
# evals/data/runbook_questions.v1.jsonl with the alert pairs kept; see evals/reports/retrieval_questions.md)
DOCUMENT_RRF_K = 5
DOCUMENT_WEIGHTS = (1.0, 1.0, 1.0, 0.75)
TIE_DIGITS = 12


class Hit(BaseModel):
    """One search result: a chunk of a document, with its fused score."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str
    title: str
    section: str
    path: str
    score: float
    snippet: str
    text: str = ""
    dense_score: float = 0.0
    meta: dict[str, Any] = {}

    @property
    def ref(self) -> str:
        return f"{self.doc_id}#{self.section}" if self.section else self.doc_id


def clean_query(query: str, limit: int = MAX_QUERY_CHARS) -> str:
    """Strip, refuse empty, and truncate very long queries with a warning."""
    if not isinstance(query, str) or not query.strip():
        raise EmptyQuery()
    query = query.strip()
    if len(query) > limit:
        log.warning("query of %d characters truncated to %d", len(query), limit)
        query = query[:limit]
    return query


def _ranked(scores: np.ndarray, *, positive_only: bool) -> np.ndarray:
    """Positions by descending score; a lexical ranking leaves out what shares no word with the query."""
    order = np.argsort(-scores, kind="stable")
    return order[scores[order] > 0] if positive_only else order


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = 60, weights: list[float] | None = None) -> dict[Any, float]:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[Any, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


class HybridSearcher:
    """Searches one SopIndex lexically, densely, or both fused.

    Hybrid search over documents fuses, by default (`fusion="chunks"`), chunk BM25 and chunk similarity, each
    reduced to its best chunk per file, with k=`rrf_k`. `fusion="documents"` fuses four rankings of whole files
    instead: BM25 over each file's full text (stemmed, the question's stop words dropped), the file's best chunk
    BM25, its best chunk similarity, and its similarity to the mean of its chunk vectors (at 0.75 weight). It finds
    runbooks from plain-words questions better (evals/reports/retrieval_questions.md) and is opt-in, because on the
    `ask` question set the answers built on it name two owners wrong that chunk fusion gets right.
    """

    def __init__(
        self, index: SopIndex, *, rrf_k: int = 60, candidates: int = CANDIDATES, fusion: Fusion = "chunks"
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}: expected one of {', '.join(FUSIONS)}")
        self.index = index
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.fusion: Fusion = fusion
        self._documents: DocumentSignals | None = None

    @property
    def documents(self) -> DocumentSignals:
        """Per-file signals of the index, built on first use (a whole-file BM25 and the chunk vectors)."""
        if self._documents is None:
            n = len(self.index)
            vectors = self.index.faiss_index.reconstruct_n(0, n) if n else np.zeros((0, self.index.embedder.dim))
            self._documents = DocumentSignals(self.index.chunks, np.asarray(vectors, dtype=np.float32))
        return self._documents

    def _lexical(self, query: str) -> tuple[list[int], np.ndarray]:
        scores = self.index.lexical.scores(query)
        n = min(self.candidates, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n else np.array([], dtype=int)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(i) for i in top if scores[i] > 0], scores

    def _dense(self, vector: np.ndarray) -> tuple[list[int], dict[int, float]]:
        ids, scores = self.index.dense_search(vector, self.candidates)
        return [int(i) for i in ids], {int(i): float(s) for i, s in zip(ids, scores, strict=True)}

    def _best_per_doc(self, ranking: list[int]) -> list[int]:
        seen: set[str] = set()
        out = []
        for pos in ranking:
            doc = self.index.chunks[pos].doc_id
            if doc not in seen:
                seen.add(doc)
                out.append(pos)
        return out

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        unique_docs: bool = True,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """Top-k hits; with unique_docs each system ranks documents (by their best chunk) before fusion.

        `vector` is the query's embedding when the caller already has it (it must be of `query`).
        """
        if mode not in ("lexical", "dense", "hybrid"):
            raise ValueError(f"unknown search mode {mode!r}: expected lexical, dense or hybrid")
        query = split_identifiers(clean_query(query))
        if k < 1 or len(self.index) == 0:
            return []
        qvec = None if mode == "lexical" else (vector if vector is not None else self.index.embedder.embed([query])[0])
        if mode == "hybrid" and unique_docs and self.fusion == "documents" and qvec is not None:
            return self._by_documents(query, qvec, k)
        rankings: list[list[int]] = []
        raw: dict[int, float] = {}
        dense_scores: dict[int, float] = {}
        if mode in ("lexical", "hybrid"):
            ranking, lex = self._lexical(query)
            rankings.append(ranking)
            raw = {i: float(lex[i]) for i in ranking}
        if qvec is not None:
            ranking, dense_scores = self._dense(qvec)
            rankings.append(ranking)
            raw = dense_scores if mode == "dense" else raw
        if unique_docs:
            rankings = [self._best_per_doc(r) for r in rankings]
        if mode == "hybrid":
            # fuse by document (or chunk): the representative chunk is the best-ranked one of either list
            key = (lambda p: self.index.chunks[p].doc_id) if unique_docs else (lambda p: p)
            best: dict[object, tuple[int, int]] = {}  # key -> (best rank, chunk position)
            for ranking in rankings:
                for rank, pos in enumerate(ranking):
                    if key(pos) not in best or rank < best[key(pos)][0]:
                        best[key(pos)] = (rank, pos)
            rep = {kk: pos for kk, (_, pos) in best.items()}
            keyed = [[key(p) for p in r] for r in rankings]
            fused = rrf(keyed, k=self.rrf_k)
            order = [rep[kk] for kk in sorted(fused, key=lambda kk: -fused[kk])]
            scored = {rep[kk]: fused[kk] for kk in fused}
        else:
            order = rankings[0]
            scored = raw
        hits: list[Hit] = []
        for pos in order[:k]:
            dense = dense_scores.get(pos)
            if dense is None and qvec is not None:
                dense = float(qvec @ self._vector(pos))
            hits.append(self._hit(pos, scored[pos], dense or 0.0))
        return hits

    def _hit(self, pos: int, score: float, dense: float) -> Hit:
        """The hit for chunk `pos`: its place in the corpus, the fused score and its dense similarity."""
        chunk = self.index.chunks[pos]
        return Hit(
            doc_id=chunk.doc_id,
            title=chunk.title,
            section=chunk.section,
            path=chunk.path,
            score=round(score, 6),
            snippet=" ".join(chunk.text.split())[:SNIPPET_CHARS],
            text=chunk.text,
            dense_score=round(dense, 6),
            meta=chunk.meta,
        )

    def _by_documents(self, query: str, qvec: np.ndarray, k: int) -> list[Hit]:
        """Files ranked by RRF of four rankings, a file and its best chunk each read lexically and densely; each
        file is shown by its best-ranked chunk."""
        docs = self.documents
        scores = docs.scores(query, qvec)
        lexical = self.index.lexical.scores(query).astype(np.float64)
        rankings = [
            _ranked(scores.body, positive_only=True),
            _ranked(docs.best_per_doc(lexical), positive_only=True),
            _ranked(scores.best, positive_only=False),
            _ranked(scores.centroid, positive_only=False),
        ]
        by_doc = rrf([r.tolist() for r in rankings], k=DOCUMENT_RRF_K, weights=list(DOCUMENT_WEIGHTS))
        fused = np.zeros(len(docs), dtype=np.float64)
        fused[list(by_doc)] = list(by_doc.values())
        # equal fused scores are common (1st + 3rd = 3rd + 1st): the pooled similarity breaks the tie; rounding
        # makes sums of the same terms in another order equal, so float noise never decides
        order = np.lexsort((-scores.dense, -np.round(fused, TIE_DIGITS)))
        hits = []
        for doc in (int(d) for d in order[:k] if fused[d] > 0):
            pos = self._representative(doc, lexical, scores.chunk_dense)
            hits.append(self._hit(pos, float(fused[doc]), float(scores.chunk_dense[pos])))
        return hits

    def _representative(self, doc: int, lexical: np.ndarray, dense: np.ndarray) -> int:
        """The file's chunk that ranks best in either chunk ranking (lexical wins a tie, as in chunk fusion)."""
        members = np.flatnonzero(self.documents.chunk_doc == doc)
        best_dense = int(members[np.argmax(dense[members])])
        best_lexical = int(members[np.argmax(lexical[members])])
        if lexical[best_lexical] <= 0:
            return best_dense
        lexical_rank = int((lexical > lexical[best_lexical]).sum())
        dense_rank = int((dense > dense[best_dense]).sum())
        return best_lexical if lexical_rank <= dense_rank else best_dense

    def _vector(self, pos: int) -> np.ndarray:
        return np.asarray(self.index.faiss_index.reconstruct(pos), dtype=np.float32)
