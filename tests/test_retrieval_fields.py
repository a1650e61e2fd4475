"""Whole-file search: the four file rankings it fuses (whole-file and best-section BM25, best-section and centroid
similarity), their weights, and how a file with no word in common with the question still ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.corpus import load_chunks
from retrieval.documents import DocumentSignals
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import DOCUMENT_RRF_K, DOCUMENT_WEIGHTS, HybridSearcher
from retrieval.index import SopIndex
from retrieval.markdown import split_identifiers

# one file about disk pressure in every section, one with a single matching section among unrelated ones
FOCUSED = """# Disk pressure

## Meaning
The node disk is nearly full and the kubelet evicts pods.

## Impact
Pods are evicted from the node while the disk stays full.

## Mitigation
Free disk space on the node so the kubelet stops evicting pods.
"""
DILUTED = """# Cluster handbook

## Disk
The node disk is full and the kubelet evicts pods.

## Holidays
Book annual leave in the staff calendar before the end of March.

## Canteen
Lunch is served from noon; vegetarian meals on request.

## Parking
Visitors park on level two and register at the front desk.

## Printing
Colour printers sit next to the kitchen on every floor.
"""
CERTS = """# Certificate expiry

## Meaning
The serving certificate of the API expires within a week.

## Mitigation
Rotate the certificate and restart the API servers.
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for name, text in {"focused.md": FOCUSED, "diluted.md": DILUTED, "certs.md": CERTS}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def index(corpus: Path) -> SopIndex:
    return SopIndex.build(load_chunks(corpus), HashingEmbedder())


def test_best_section_and_centroid_are_scored_apart(index: SopIndex) -> None:
    chunks, embedder = index.chunks, index.embedder
    vectors = embedder.embed([c.search_text() for c in chunks])
    signals = DocumentSignals(chunks, vectors)
    query = embedder.embed(["the node disk is full and the kubelet evicts pods"])[0]
    scores = signals.scores("the node disk is full and the kubelet evicts pods", query)
    for d, doc in enumerate(signals.doc_ids):
        own = vectors[[i for i, c in enumerate(chunks) if c.doc_id == doc]]
        mean = own.sum(axis=0) / np.linalg.norm(own.sum(axis=0))
        assert scores.best[d] == pytest.approx(float((own @ query).max()), abs=1e-5)
        assert scores.centroid[d] == pytest.approx(float(mean @ query), abs=1e-5)
        assert scores.dense[d] == pytest.approx(scores.best[d] + 0.5 * scores.centroid[d], abs=1e-9)
    position = {doc: d for d, doc in enumerate(signals.doc_ids)}
    focused, diluted = position["focused"], position["diluted"]
    # the diluted file holds the question almost word for word in one section; the focused file is about it throughout
    assert scores.best[diluted] > scores.best[focused]
    assert scores.centroid[focused] > scores.centroid[diluted]


def test_no_vector_gives_zero_dense_signals(index: SopIndex) -> None:
    signals = DocumentSignals(index.chunks, index.embedder.embed([c.search_text() for c in index.chunks]))
    scores = signals.scores("disk full", None)
    assert scores.body.max() > 0
    assert not scores.best.any() and not scores.centroid.any() and not scores.dense.any()
    assert len(scores.best) == len(scores.centroid) == len(signals) == 3


def _expected_fusion(searcher: HybridSearcher, query: str) -> list[tuple[str, float]]:
    """The documented fusion, written out: weighted reciprocal ranks of four file rankings, ties by pooled score."""
    docs = searcher.documents
    qvec = searcher.index.embedder.embed([query])[0]
    scores = docs.scores(query, qvec)
    lexical = docs.best_per_doc(searcher.index.lexical.scores(query).astype(np.float64))
    lists = [(scores.body, True), (lexical, True), (scores.best, False), (scores.centroid, False)]
    fused: dict[int, float] = {}
    for (values, positive_only), weight in zip(lists, DOCUMENT_WEIGHTS, strict=True):
        ranked = [int(d) for d in np.argsort(-values, kind="stable") if not positive_only or values[d] > 0]
        for rank, d in enumerate(ranked, start=1):
            fused[d] = fused.get(d, 0.0) + weight / (DOCUMENT_RRF_K + rank)
    order = sorted(fused, key=lambda d: (-round(fused[d], 12), -scores.dense[d]))
    return [(docs.doc_ids[d], fused[d]) for d in order]


@pytest.mark.parametrize(
    "query",
    ["the node disk is full and the kubelet evicts pods", "rotate the expiring API certificate", "lunch on level two"],
)
def test_document_fusion_is_weighted_rrf_of_the_four_rankings(index: SopIndex, query: str) -> None:
    searcher = HybridSearcher(index, fusion="documents")
    hits = searcher.search(query, k=3)
    expected = _expected_fusion(searcher, split_identifiers(query))
    assert [h.doc_id for h in hits] == [doc for doc, _ in expected]
    assert [h.score for h in hits] == pytest.approx([round(score, 6) for _, score in expected], abs=1e-6)
    assert len(DOCUMENT_WEIGHTS) == 4 and DOCUMENT_RRF_K < 60  # four rankings; the first places count most


def test_a_file_that_shares_no_word_still_ranks_by_its_similarity(index: SopIndex) -> None:
    searcher = HybridSearcher(index, fusion="documents")
    query = "certificat rotat"  # no whole word or stem of any file: only the character n-grams of the vectors match
    assert not index.lexical.scores(query).any() and not searcher.documents.scores(query, None).body.any()
    hits = searcher.search(query, k=3)
    assert len(hits) == 3 and hits[0].doc_id == "certs"
    assert hits[0].score == pytest.approx(
        (DOCUMENT_WEIGHTS[2] + DOCUMENT_WEIGHTS[3]) / (DOCUMENT_RRF_K + 1), abs=1e-6
    )  # first in both similarity rankings, and in no lexical one


def test_document_fusion_questions_the_whole_file(index: SopIndex) -> None:
    searcher = HybridSearcher(index, fusion="documents")
    hits = searcher.search("pods keep getting evicted because the node disk is full, how do I free space", k=3)
    assert hits[0].doc_id == "focused"
    assert hits[0].section in {"Meaning", "Impact", "Mitigation"}  # shown by one of its own sections
