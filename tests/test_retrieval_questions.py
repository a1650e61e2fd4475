"""Plain-words runbook questions: the versioned set is well formed, and whole-file fusion ranks what it should."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evals.retrieval_eval import evaluate_retrieval, variant_label
from retrieval.corpus import load_chunks
from retrieval.documents import DocumentSignals, light_stem, normalise_words
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import HybridSearcher
from retrieval.index import SopIndex
from retrieval.markdown import chunk_markdown, split_identifiers

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "evals" / "data" / "runbook_questions.v1.jsonl"
RUNBOOKS = REPO.parent / "shared" / "data" / "runbooks"
CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# ---- the question set -------------------------------------------------------------------------


def test_question_set_is_well_formed() -> None:
    rows = _rows()
    assert len(rows) >= 60
    assert all(set(r) == {"id", "question", "target", "component", "split"} for r in rows)
    assert len({r["id"] for r in rows}) == len(rows), "ids must be unique"
    assert len({r["question"].lower() for r in rows}) == len(rows), "no question twice"
    splits = Counter(r["split"] for r in rows)
    assert set(splits) == {"tune", "test"} and min(splits.values()) >= 0.4 * len(rows)
    per_component = Counter(r["component"] for r in rows)
    assert len(per_component) >= 8 and min(per_component.values()) >= 2, per_component
    for row in rows:  # every component is on both sides of the split
        assert {r["split"] for r in rows if r["component"] == row["component"]} == {"tune", "test"}


def test_no_question_names_its_alert_or_a_file() -> None:
    for row in _rows():
        alert = Path(row["target"]).stem
        question = row["question"]
        assert alert.lower() not in question.lower(), row["id"]
        assert _words(" ".join(CAMEL_WORD.findall(alert))) not in _words(question), row["id"]
        assert ".md" not in question and "/" not in question, row["id"]
        assert row["target"].endswith(".md") and not row["target"].startswith("/"), row["id"]


def test_every_target_is_a_runbook_of_the_corpus() -> None:
    if not RUNBOOKS.is_dir():
        pytest.skip(f"{RUNBOOKS} is not on this machine: the runbooks corpus is read by path, never copied")
    missing = [r["id"] for r in _rows() if not (RUNBOOKS / r["target"]).is_file()]
    assert not missing, f"targets not in {RUNBOOKS}: {missing}"


# ---- words, stems and whole-file signals ------------------------------------------------------


def test_light_stem_strips_one_ending_and_keeps_short_words() -> None:
    assert [light_stem(w) for w in ("restarts", "restarting", "restarted", "caches")] == [
        "restart",
        "restart",
        "restart",
        "cach",
    ]
    assert [light_stem(w) for w in ("is", "dns", "pods", "ring")] == ["is", "dns", "pod", "ring"]


def test_normalise_words_splits_identifiers_and_drops_stop_words_on_request() -> None:
    assert normalise_words("KubePodCrashLooping!") == "kubepodcrashloop kube pod crash loop"
    assert normalise_words("why is my pod not running", drop_stop_words=True) == "pod runn"


DOC_SPREAD = """# Disk pressure on workers

## Meaning
The kubelet evicts pods when the disk fills up.

## Diagnosis
Look at the image garbage collection settings.

## Mitigation
Prune unused images on the node.
"""
DOC_ONE_SECTION = """# Image pulls

## Meaning
Pulling images from the registry fails with a timeout.

## Mitigation
Check the proxy; retry the pull.
"""
DOC_LONG = "# Everything about nodes\n\n" + "\n\n".join(
    f"## Part {i}\nNodes, pods and disks, part {i}." for i in range(12)
)


@pytest.fixture
def signals_corpus(tmp_path: Path) -> Path:
    for name, text in {"disk.md": DOC_SPREAD, "pulls.md": DOC_ONE_SECTION, "long.md": DOC_LONG}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_whole_file_bm25_rewards_words_spread_over_sections(signals_corpus: Path) -> None:
    chunks = load_chunks(signals_corpus)
    signals = DocumentSignals(chunks, HashingEmbedder().embed([c.search_text() for c in chunks]))
    scores = signals.scores("pods evicted, garbage collection of unused images", None)
    ranked = [signals.doc_ids[i] for i in np.argsort(-scores.body)]
    assert ranked[0] == "disk"  # its three words sit in three different sections: no single chunk holds them all
    assert not scores.dense.any() and len(scores.chunk_dense) == len(chunks)  # no vector, no dense score


def test_pooled_similarity_is_best_chunk_plus_half_the_centroid(signals_corpus: Path) -> None:
    chunks = load_chunks(signals_corpus)
    embedder = HashingEmbedder()
    vectors = embedder.embed([c.search_text() for c in chunks])
    signals = DocumentSignals(chunks, vectors)
    query = embedder.embed(["registry pull timeout"])[0]
    scores = signals.scores("registry pull timeout", query)
    for d, doc in enumerate(signals.doc_ids):
        own = vectors[[i for i, c in enumerate(chunks) if c.doc_id == doc]]
        centroid = own.sum(axis=0) / np.linalg.norm(own.sum(axis=0))
        assert scores.dense[d] == pytest.approx(float((own @ query).max() + 0.5 * centroid @ query), abs=1e-5)
    assert signals.doc_ids[int(np.argmax(scores.dense))] == "pulls"


def test_signals_refuse_chunks_and_vectors_that_disagree(signals_corpus: Path) -> None:
    chunks = load_chunks(signals_corpus)
    with pytest.raises(ValueError, match=f"{len(chunks)} chunks but 1 vectors"):
        DocumentSignals(chunks, np.zeros((1, 8), dtype=np.float32))


# ---- the searcher with fusion="documents" ------------------------------------------------------


@pytest.fixture
def index(signals_corpus: Path, tiny_corpus: Path) -> SopIndex:
    chunks = load_chunks(tiny_corpus) + load_chunks(signals_corpus)
    return SopIndex.build(chunks, HashingEmbedder())


def test_default_fusion_is_unchanged_and_unknown_fusion_is_refused(index: SopIndex) -> None:
    assert HybridSearcher(index).fusion == "chunks"
    with pytest.raises(ValueError, match="unknown fusion 'files'"):
        HybridSearcher(index, fusion="files")  # type: ignore[arg-type]


def test_document_fusion_returns_each_file_once_with_its_best_chunk(index: SopIndex) -> None:
    searcher = HybridSearcher(index, fusion="documents")
    query = "pods evicted because the disk is full, prune images"
    hits = searcher.search(query, k=4)
    assert len(hits) == 4 and len({h.doc_id for h in hits}) == 4
    assert hits[0].doc_id == "disk"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    pos = next(i for i, c in enumerate(index.chunks) if c.doc_id == top.doc_id and c.section == top.section)
    assert top.text == index.chunks[pos].text and top.path == "disk.md"
    qvec = index.embedder.embed([split_identifiers(query)])[0]  # dense_score: the shown chunk's cosine, as before
    assert top.dense_score == pytest.approx(float(searcher.documents.vectors[pos] @ qvec), abs=1e-5)
    assert searcher.search("pods evicted", k=1, unique_docs=False)[0].doc_id  # per-chunk search keeps chunk fusion


def test_document_fusion_ignores_the_question_stop_words(index: SopIndex) -> None:
    stop_heavy = "# How do I\n\nHow do I do it? What is it, and why would I do it if it is what it is?\n"
    chunks = [*index.chunks, *chunk_markdown(stop_heavy, "howto.md")]
    searcher = HybridSearcher(SopIndex.build(chunks, HashingEmbedder()), fusion="documents")
    hits = searcher.search("how do I fix it when the image pull times out", k=3)
    assert hits[0].doc_id == "pulls"
    assert searcher.documents.scores("how do i do it", None).body.max() == 0.0  # nothing but stop words


def test_eval_scores_both_fusions_per_split_and_restores_the_searcher(index: SopIndex) -> None:
    searcher = HybridSearcher(index)
    rows = [
        {"q": "image pulls from the registry time out", "t": "pulls.md", "split": "tune"},
        {"q": "kubelet evicts pods, disk full of old images", "t": "disk.md", "split": "test"},
        {"q": "vpn tunnel keeps dropping", "t": "sop-vpn.md", "split": "test"},
    ]
    out = evaluate_retrieval(
        searcher, rows, "q", "t", ["lexical", "hybrid"], fusions=["chunks", "documents"], split_field="split"
    )
    assert list(out) == ["lexical", "hybrid", "hybrid-documents"]
    assert variant_label("hybrid", "documents") == "hybrid-documents" and variant_label("dense", "documents") == "dense"
    for label in out:
        assert out[label]["n"] == 3 and {s: m["n"] for s, m in out[label]["splits"].items()} == {"test": 2, "tune": 1}
        assert {"recall_at_1", "recall_at_5", "recall_at_10", "mrr", "latency_ms_p50"} <= set(out[label])
    assert out["hybrid-documents"]["recall_at_5"] == 1.0
    assert searcher.fusion == "chunks"
