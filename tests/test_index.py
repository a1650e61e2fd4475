"""SopIndex: build, save, load and the checks that refuse a stale or foreign index."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval.corpus import content_hash, load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.errors import IndexMismatch, IndexMissing
from retrieval.hybrid import HybridSearcher
from retrieval.index import MANIFEST, SopIndex

QUERIES = [
    "GlobalConnect VPN disconnected",
    "printer paper jam floor 2",
    "forgot KeyGate password reset",
    "where are my payslips",
    "pod crash looping",
]


def build(corpus: Path, embedder: HashingEmbedder, *, approximate: bool = False) -> SopIndex:
    return SopIndex.build(
        load_chunks(corpus),
        embedder,
        content_hash=content_hash(corpus),
        source=str(corpus),
        approximate=approximate,
    )


def results(index: SopIndex, mode: str = "hybrid") -> list[list[tuple[str, str, float]]]:
    searcher = HybridSearcher(index)
    return [
        [(h.doc_id, h.section, h.score) for h in searcher.search(q, k=5, mode=mode)]  # type: ignore[arg-type]
        for q in QUERIES
    ]


def all_vectors(index: SopIndex) -> np.ndarray:
    return index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)


def test_build_embeds_every_chunk(tiny_corpus: Path, hashing_embedder: HashingEmbedder) -> None:
    seen: list[int] = []
    chunks = load_chunks(tiny_corpus)
    index = SopIndex.build(chunks, hashing_embedder, batch_size=4, progress=seen.append)
    assert len(index) == len(chunks) == index.faiss_index.ntotal
    assert sum(seen) == len(chunks) and max(seen) <= 4
    expected = hashing_embedder.embed([c.search_text() for c in chunks])
    np.testing.assert_allclose(all_vectors(index), expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid"])
def test_save_load_round_trip_gives_identical_hits(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path, mode: str
) -> None:
    index = build(tiny_corpus, hashing_embedder)
    before = results(index, mode)
    assert all(before), "every query should find something"
    index.save(tmp_path / "idx")
    loaded = SopIndex.load(tmp_path / "idx", HashingEmbedder(), expected_hash=content_hash(tiny_corpus))
    assert results(loaded, mode) == before
    assert loaded.chunks == index.chunks
    assert loaded.content_hash == content_hash(tiny_corpus)
    assert loaded.source == str(tiny_corpus)
    np.testing.assert_array_equal(all_vectors(loaded), all_vectors(index))


def test_manifest_describes_the_index(tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path) -> None:
    index = build(tiny_corpus, hashing_embedder)
    index.save(tmp_path / "idx")
    manifest = SopIndex.read_manifest(tmp_path / "idx")
    assert manifest["embedder"] == hashing_embedder.name
    assert manifest["dim"] == hashing_embedder.dim
    assert manifest["n_chunks"] == len(index)
    assert manifest["content_hash"] == content_hash(tiny_corpus)
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "chunks.jsonl",
        MANIFEST,
        "vectors.faiss",
    ]


def test_save_replaces_an_existing_index(tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    build(tiny_corpus, hashing_embedder).save(out)
    (tiny_corpus / "payroll.md").unlink()
    smaller = build(tiny_corpus, hashing_embedder)
    smaller.save(out)
    loaded = SopIndex.load(out, hashing_embedder, expected_hash=content_hash(tiny_corpus))
    assert "payroll" not in {c.doc_id for c in loaded.chunks}
    assert len(loaded) == len(smaller)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "idx"]  # no temp or .old left


def test_load_with_other_embedder_is_refused(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    build(tiny_corpus, hashing_embedder).save(tmp_path / "idx")
    with pytest.raises(IndexMismatch) as info:
        SopIndex.load(tmp_path / "idx", HashingEmbedder(dim=256))
    err = info.value
    assert err.what == "embedder"
    assert (err.saved, err.wanted) == ("hashing-512-3", "hashing-256-3")
    assert "triage kb index" in str(err)
    assert f"--kb {tiny_corpus}" in str(err)  # the rebuild command names the saved source


def test_load_with_wrong_content_hash_is_refused(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    build(tiny_corpus, hashing_embedder).save(tmp_path / "idx")
    old_hash = content_hash(tiny_corpus)
    (tiny_corpus / "printer.md").write_text("# Printer\nNew text.\n", encoding="utf-8")
    with pytest.raises(IndexMismatch, match="content hash") as info:
        SopIndex.load(tmp_path / "idx", hashing_embedder, expected_hash=content_hash(tiny_corpus))
    assert info.value.saved == old_hash[:12]
    assert "triage kb index" in str(info.value)
    # without an expected hash the same index loads
    assert len(SopIndex.load(tmp_path / "idx", hashing_embedder)) > 0


def test_load_of_other_format_version_is_refused(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    build(tiny_corpus, hashing_embedder).save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["format"] = 99
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexMismatch, match="format"):
        SopIndex.load(tmp_path / "idx", hashing_embedder)


def test_load_missing_index(tmp_path: Path, hashing_embedder: HashingEmbedder) -> None:
    for path in (tmp_path / "nothing-here", tmp_path):  # absent folder, folder without manifest
        with pytest.raises(IndexMissing) as info:
            SopIndex.load(path, hashing_embedder)
        assert info.value.path == str(path)
        assert "triage kb index" in str(info.value)


def test_failed_save_leaves_previous_index_intact(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    good = build(tiny_corpus, hashing_embedder)
    good.save(out)
    files_before = {p.name: p.read_bytes() for p in out.iterdir()}
    hits_before = results(good)

    # vectors.faiss is written first, then chunks.jsonl fails on a meta value JSON cannot hold
    chunks = load_chunks(tiny_corpus)
    chunks[-1] = replace(chunks[-1], meta={"owner": object()})
    bad = SopIndex.build(chunks, hashing_embedder)
    with pytest.raises(TypeError, match="not JSON serializable"):
        bad.save(out)

    assert {p.name: p.read_bytes() for p in out.iterdir()} == files_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "idx"]  # temp dir removed
    loaded = SopIndex.load(out, hashing_embedder, expected_hash=content_hash(tiny_corpus))
    assert results(loaded) == hits_before


def test_front_matter_list_of_dates_can_be_saved(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    (tiny_corpus / "audit.md").write_text(
        "---\nid: audit\nreviewed: [2026-01-10, 2026-03-02]\n---\n# Audit\nChecked twice.\n",
        encoding="utf-8",
    )
    index = build(tiny_corpus, hashing_embedder)
    index.save(tmp_path / "idx")
    loaded = SopIndex.load(tmp_path / "idx", hashing_embedder)
    audit = next(c for c in loaded.chunks if c.doc_id == "audit")
    assert audit.meta["reviewed"] == ["2026-01-10", "2026-03-02"]


def test_approximate_index_agrees_with_exact_on_top_hit(
    tiny_corpus: Path, hashing_embedder: HashingEmbedder, tmp_path: Path
) -> None:
    exact = build(tiny_corpus, hashing_embedder)
    approx = build(tiny_corpus, hashing_embedder, approximate=True)
    assert isinstance(exact.faiss_index, faiss.IndexFlatIP)
    assert isinstance(approx.faiss_index, faiss.IndexHNSWFlat)
    for mode in ("dense", "hybrid"):
        top_exact = [r[0][:2] for r in results(exact, mode)]
        top_approx = [r[0][:2] for r in results(approx, mode)]
        assert top_approx == top_exact
    # the HNSW flavour survives a save and load
    approx.save(tmp_path / "hnsw")
    loaded = SopIndex.load(tmp_path / "hnsw", hashing_embedder)
    assert loaded.approximate
    assert isinstance(loaded.faiss_index, faiss.IndexHNSWFlat)
    assert [r[0][:2] for r in results(loaded, "dense")] == [r[0][:2] for r in results(exact, "dense")]


def test_dense_search_caps_k_at_index_size(tiny_corpus: Path, hashing_embedder: HashingEmbedder) -> None:
    index = build(tiny_corpus, hashing_embedder)
    query = hashing_embedder.embed(["printer jam"])[0]
    ids, scores = index.dense_search(query, k=1000)
    assert len(ids) == len(index)
    assert sorted(ids.tolist()) == list(range(len(index)))
    assert np.all(np.diff(scores) <= 1e-6)  # best first
