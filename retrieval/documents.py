"""Document-level ranking signals: whole-file BM25 over normalised words, and chunk similarities pooled per file."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from retrieval.lexical import Bm25Index
from retrieval.markdown import Chunk, split_identifiers

WORD = re.compile(r"[a-z0-9]+")
SUFFIXES = ("ing", "ed", "es", "s")  # plural and tense endings only: "restarts", "restarting" -> "restart"
MIN_STEM = 3
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)
BODY_K1 = 1.2  # the usual Okapi values; b 0.9 was tried and did no better on the tune half
BODY_B = 0.75
CENTROID_WEIGHT = 0.5  # pooled file similarity (the tie-break) = best chunk + this x similarity to the centroid


def light_stem(word: str) -> str:
    """Strip one plural or tense ending when at least three letters remain."""
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


def normalise_words(text: str, *, drop_stop_words: bool = False) -> str:
    """Lower-case words (CamelCase split, punctuation dropped), lightly stemmed; optionally without stop words."""
    words = WORD.findall(split_identifiers(text).lower())
    if drop_stop_words:
        words = [w for w in words if w not in STOP_WORDS]
    return " ".join(light_stem(w) for w in words)


@dataclass(frozen=True)
class DocumentScores:
    """One query's scores per document (indexed like DocumentSignals.doc_ids), plus per-chunk similarities."""

    body: np.ndarray  # BM25 of the whole file
    best: np.ndarray  # the file's best chunk similarity
    centroid: np.ndarray  # similarity to the normalised mean of the file's chunk vectors
    dense: np.ndarray  # pooled: best + CENTROID_WEIGHT x centroid (breaks ties of the fused ranking)
    chunk_dense: np.ndarray  # cosine of the query with every chunk


class DocumentSignals:
    """Per-file views of one index's chunks: a BM25 over each whole file and each file's chunk vectors.

    The dense part is one matrix product over all chunk vectors (exact, also for an approximate index): fine for
    SOP and runbook corpora of a few thousand sections, where it costs well under a millisecond.
    """

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors: the index is inconsistent")
        self.doc_ids: list[str] = list(dict.fromkeys(c.doc_id for c in chunks))
        position = {doc: i for i, doc in enumerate(self.doc_ids)}
        self.chunk_doc = np.array([position[c.doc_id] for c in chunks], dtype=np.int64)
        texts: dict[str, list[str]] = {doc: [] for doc in self.doc_ids}
        for chunk in chunks:
            if not texts[chunk.doc_id]:
                texts[chunk.doc_id].append(chunk.title)
            texts[chunk.doc_id].append(chunk.text)
        self.body = Bm25Index(k1=BODY_K1, b=BODY_B).fit([normalise_words(" ".join(texts[d])) for d in self.doc_ids])
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        centroids = np.zeros((len(self.doc_ids), self.vectors.shape[1] if self.vectors.ndim == 2 else 0), np.float32)
        np.add.at(centroids, self.chunk_doc, self.vectors)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self.centroids = centroids / np.where(norms == 0, 1.0, norms)

    def __len__(self) -> int:
        return len(self.doc_ids)

    def best_per_doc(self, chunk_scores: np.ndarray) -> np.ndarray:
        """The highest chunk score of every document."""
        out = np.full(len(self.doc_ids), -np.inf, dtype=np.float64)
        np.maximum.at(out, self.chunk_doc, chunk_scores.astype(np.float64))
        return out

    def scores(self, query: str, vector: np.ndarray | None) -> DocumentScores:
        """Body BM25 (stop words dropped from the query) and, given the query vector, the best chunk and centroid
        similarities of every file (zeros without a vector)."""
        body = self.body.scores(normalise_words(query, drop_stop_words=True)).astype(np.float64)
        if vector is None or not len(self.vectors):
            none = np.zeros(len(self.doc_ids), dtype=np.float64)
            return DocumentScores(body, none, none, none, np.zeros(len(self.chunk_doc), dtype=np.float64))
        chunk_dense = (self.vectors @ vector.astype(np.float32)).astype(np.float64)
        best = self.best_per_doc(chunk_dense)
        centroid = (self.centroids @ vector.astype(np.float32)).astype(np.float64)
        return DocumentScores(body, best, centroid, best + CENTROID_WEIGHT * centroid, chunk_dense)
