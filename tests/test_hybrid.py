"""Hybrid search: RRF, the three modes, per-document results, query checks, and BM25 itself."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from retrieval.corpus import load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.errors import EmptyQuery
from retrieval.hybrid import MAX_QUERY_CHARS, HybridSearcher, clean_query, rrf
from retrieval.index import SopIndex
from retrieval.lexical import Bm25Index

MODES = ["lexical", "dense", "hybrid"]


@pytest.fixture
def searcher(tiny_corpus: Path, hashing_embedder: HashingEmbedder) -> HybridSearcher:
    return HybridSearcher(SopIndex.build(load_chunks(tiny_corpus), hashing_embedder))


# ---- reciprocal rank fusion -------------------------------------------------------------------


def test_rrf_second_in_both_beats_first_in_one() -> None:
    fused = rrf([[1, 2, 3], [4, 2, 5]], k=60)
    order = sorted(fused, key=lambda item: -fused[item])
    assert order[0] == 2
    assert fused[2] == pytest.approx(2 / 62)
    assert fused[1] == pytest.approx(1 / 61) == fused[4]
    assert fused[3] == pytest.approx(1 / 63) == fused[5]
    assert set(order) == {1, 2, 3, 4, 5}
    assert fused[2] > fused[1] > fused[3]


def test_rrf_k_and_weights_change_the_order() -> None:
    # "a" is 1st and 10th, "b" is 3rd twice: consistency wins at k=60, a top rank wins at k=1
    first = ["a", "x1", "b", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]
    second = ["y1", "y2", "b", "y3", "y4", "y5", "y6", "y7", "y8", "a"]
    k60 = rrf([first, second], k=60)
    assert k60["a"] == pytest.approx(1 / 61 + 1 / 70)
    assert k60["b"] == pytest.approx(2 / 63)
    assert k60["b"] > k60["a"]
    k1 = rrf([first, second], k=1)
    assert k1["a"] == pytest.approx(1 / 2 + 1 / 11)
    assert k1["a"] > k1["b"]
    # two lists that disagree tie; weighting the second makes its top item win
    assert rrf([[1, 2], [2, 1]])[1] == pytest.approx(rrf([[1, 2], [2, 1]])[2])
    weighted = rrf([[1, 2], [2, 1]], weights=[1.0, 2.0])
    assert weighted[2] == pytest.approx(1 / 62 + 2 / 61)
    assert weighted[2] > weighted[1]


def test_rrf_edge_cases() -> None:
    assert rrf([]) == {}
    assert rrf([[], [7]]) == {7: pytest.approx(1 / 61)}
    with pytest.raises(ValueError):
        rrf([[1], [2]], weights=[1.0])  # one weight per ranking


# ---- the three modes --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("query", "doc_id"),
    [
        ("vpn tunnel keeps dropping", "sop-vpn"),
        ("the printer on floor 2 has a paper jam", "printer"),
        ("I forgot my KeyGate password", "guides/password-reset"),
        ("where can I find my payslip", "payroll"),
        ("pod keeps crash looping", "alerts/kube"),
    ],
)
def test_each_mode_finds_the_right_document(searcher: HybridSearcher, mode: str, query: str, doc_id: str) -> None:
    hits = searcher.search(query, k=3, mode=mode)  # type: ignore[arg-type]
    assert hits, f"{mode} found nothing for {query!r}"
    assert hits[0].doc_id == doc_id
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_lexical_finds_camel_case_parts(searcher: HybridSearcher) -> None:
    # "looping" only occurs inside "KubePodCrashLooping"; split_identifiers makes it a word
    hits = searcher.search("looping", mode="lexical")
    assert [h.doc_id for h in hits] == ["alerts/kube"]
    # and a CamelCase query finds the words written apart
    hits = searcher.search("PayslipsStatement", mode="lexical")
    assert hits[0].doc_id == "payroll"


def test_hits_carry_chunk_data(searcher: HybridSearcher) -> None:
    hit = searcher.search("Windows tray shield icon", k=1, mode="hybrid", unique_docs=False)[0]
    assert (hit.doc_id, hit.section, hit.path) == ("sop-vpn", "Steps > Windows", "vpn.md")
    assert hit.title == "Connect to the GlobalConnect VPN"
    assert hit.ref == "sop-vpn#Steps > Windows"
    assert "\n" not in hit.snippet and hit.snippet in " ".join(hit.text.split())
    assert hit.meta["service"] == "vpn"
    assert 0.0 < hit.dense_score <= 1.0


def test_lexical_mode_returns_only_matching_documents(searcher: HybridSearcher) -> None:
    hits = searcher.search("toner cartridge", k=5, mode="lexical")
    assert [h.doc_id for h in hits] == ["printer"]
    assert searcher.search("zzzqqq", mode="lexical") == []


def test_unique_docs_returns_each_document_once(searcher: HybridSearcher) -> None:
    query = "GlobalConnect VPN shield connect"
    for mode in MODES:
        per_chunk = searcher.search(query, k=20, mode=mode, unique_docs=False)  # type: ignore[arg-type]
        per_doc = searcher.search(query, k=20, mode=mode, unique_docs=True)  # type: ignore[arg-type]
        assert Counter(h.doc_id for h in per_chunk)["sop-vpn"] >= 3, mode  # the flag matters
        ids = [h.doc_id for h in per_doc]
        assert len(ids) == len(set(ids)), mode
        assert ids[0] == "sop-vpn", mode
        refs = [h.ref for h in per_chunk]
        assert len(refs) == len(set(refs)), mode  # a chunk never appears twice either


def test_k_limits_hits(searcher: HybridSearcher) -> None:
    assert len(searcher.search("printer", k=2, mode="dense")) == 2
    assert searcher.search("printer", k=0) == []


# ---- the query --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t  \r\n"])
@pytest.mark.parametrize("mode", MODES)
def test_empty_query_is_refused(searcher: HybridSearcher, query: str, mode: str) -> None:
    with pytest.raises(EmptyQuery, match="empty"):
        searcher.search(query, mode=mode)  # type: ignore[arg-type]


def test_non_string_query_is_refused() -> None:
    with pytest.raises(EmptyQuery):
        clean_query(None)  # type: ignore[arg-type]


def test_huge_query_is_truncated_with_warning(searcher: HybridSearcher, caplog: pytest.LogCaptureFixture) -> None:
    query = "printer paper jam on floor 2 " * (1_000_000 // 29 + 1)
    assert len(query) >= 1_000_000
    with caplog.at_level(logging.WARNING, logger="retrieval.hybrid"):
        hits = searcher.search(query, k=3)
    warnings = [r for r in caplog.records if r.name == "retrieval.hybrid"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert f"truncated to {MAX_QUERY_CHARS}" in warnings[0].getMessage()
    assert hits and hits[0].doc_id == "printer"


def test_clean_query_strips_and_truncates(caplog: pytest.LogCaptureFixture) -> None:
    assert clean_query("  vpn  \n") == "vpn"
    with caplog.at_level(logging.WARNING, logger="retrieval.hybrid"):
        assert clean_query("x" * 50, limit=10) == "x" * 10
        assert clean_query("y" * 10, limit=10) == "y" * 10  # at the limit: no warning
    assert len(caplog.records) == 1


def test_unknown_mode_is_refused_clearly(searcher: HybridSearcher) -> None:
    with pytest.raises(ValueError, match="mode"):
        searcher.search("printer", mode="hybird")  # type: ignore[arg-type]


# ---- BM25 -------------------------------------------------------------------------------------

DOCS = [
    "the printer on floor two is jammed",
    "the vpn drops when the laptop sleeps",
    "the printer needs toner and the printer tray is empty",
    "reset the password in keygate",
]


def test_bm25_unknown_terms_score_zero() -> None:
    bm25 = Bm25Index().fit(DOCS)
    scores = bm25.scores("zebra quokka")
    assert scores.shape == (len(DOCS),)
    assert not scores.any()
    assert not bm25.scores("").any()


def test_bm25_rare_term_ranks_its_document_first() -> None:
    bm25 = Bm25Index().fit(DOCS)
    scores = bm25.scores("the keygate")  # 'the' is everywhere, 'keygate' in one doc
    assert int(np.argmax(scores)) == 3
    assert scores[3] > 2 * max(np.delete(scores, 3))
    # a term in every document still counts, but little
    common = bm25.scores("the")
    assert (common > 0).all()
    assert common.max() < bm25.scores("keygate")[3]


def test_bm25_term_frequency_and_case() -> None:
    bm25 = Bm25Index().fit(DOCS)
    scores = bm25.scores("PRINTER")
    assert scores[0] > 0 and scores[2] > 0
    assert scores[1] == scores[3] == 0
    # doc 2 says "printer" twice, which outweighs its greater length
    assert scores[2] > scores[0]


def test_bm25_keeps_hyphenated_tokens() -> None:
    bm25 = Bm25Index().fit(["error wi-fi drops", "wifi password", "error code"])
    assert int(np.argmax(bm25.scores("wi-fi"))) == 0
    assert bm25.scores("wi-fi")[1] == 0
