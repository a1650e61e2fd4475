"""`triage bench`: service latency, throughput, index build and search, each beside a plain reference run alongside."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from agents.settings import Settings
from retrieval.embedders import Embedder


def _ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def _pair(name: str, ours: list[float], ref: list[float], what: str, reference: str) -> dict[str, Any]:
    """Medians of both, and ours / reference (above 1: ours takes longer)."""
    o, r = statistics.median(ours), statistics.median(ref)
    return {
        "name": name,
        "what": what,
        "reference": reference,
        "ours_median_ms": round(o, 6),
        "ours_p95_ms": round(float(np.percentile(ours, 95)), 4),
        "reference_median_ms": round(r, 6),
        "ratio": round(o / r, 2) if r > 0 else None,
        "repeats": len(ours),
    }


def _topk(matrix: np.ndarray, vector: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ vector
    top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
    return top[np.argsort(-scores[top])]


def _embed_topk(matrix: np.ndarray, embedder: Embedder, query: str, k: int) -> np.ndarray:
    return _topk(matrix, embedder.embed([query])[0], k)


def run_bench(
    settings: Settings,
    embedder: Embedder,
    *,
    data: Path | None = None,
    n: int = 200,
    kb_dir: Path | None = None,
    folds: int = 5,
) -> dict[str, Any]:
    """Train in memory on labelled tickets, then time ours and the reference on the same inputs, interleaved."""
    from agents.jsonl import read_jsonl
    from agents.types import Ticket, ticket_text
    from evals.service_backend import build_service_from
    from retrieval.corpus import load_chunks
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    rows = read_jsonl(data or settings.training_data)
    texts = [ticket_text(r.get("title"), r.get("body")) for r in rows]
    tickets = [Ticket(title=str(r.get("title") or ""), body=str(r.get("body") or "")) for r in rows]
    t0 = time.perf_counter()
    service = build_service_from(rows, embedder, settings, folds=folds)
    train_s = time.perf_counter() - t0
    reference = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
    reference.fit(texts, [str(r["category"]) for r in rows])
    service.triage(tickets[0])  # warm up both (model load, caches)
    reference.predict_proba(texts[:1])
    out: list[dict[str, Any]] = []

    ours, ref = [], []
    for i in range(n):
        j = i % len(tickets)
        ours.append(_ms(partial(service.triage, tickets[j])))
        ref.append(_ms(partial(reference.predict_proba, [texts[j]])))
    out.append(_pair("single_ticket", ours, ref, "TriageService.triage, one ticket", "TF-IDF + LR predict, one text"))

    ours, ref = [], []
    for _ in range(3):
        ours.append(_ms(partial(service.triage_batch, tickets)))
        ref.append(_ms(partial(reference.predict_proba, texts)))
    batch = _pair("batch", ours, ref, f"triage_batch of {len(tickets)} tickets", "TF-IDF + LR on the same batch")
    batch["ours_tickets_per_s"] = round(len(tickets) / (batch["ours_median_ms"] / 1000), 1)
    batch["reference_tickets_per_s"] = round(len(tickets) / (batch["reference_median_ms"] / 1000), 1)
    out.append(batch)

    chunks = load_chunks(kb_dir or settings.kb_dir / "sops")
    chunk_texts = [c.search_text() for c in chunks]
    ours, ref = [], []
    index = None
    for _ in range(3):
        t0 = time.perf_counter()
        index = SopIndex.build(chunks, embedder)
        ours.append((time.perf_counter() - t0) * 1000)
        ref.append(_ms(partial(embedder.embed, chunk_texts)))
    out.append(
        _pair("index_build", ours, ref, f"SopIndex.build: embed {len(chunks)} chunks, FAISS + BM25", "embed + numpy")
    )
    assert index is not None
    matrix = np.vstack(index.faiss_index.reconstruct_n(0, len(chunks)))
    searcher = HybridSearcher(index)
    queries = [texts[i % len(texts)] or "help" for i in range(n)]
    vectors = embedder.embed(queries)
    ours = [_ms(partial(index.dense_search, v, 5)) for v in vectors]
    ref = [_ms(partial(_topk, matrix, v, 5)) for v in vectors]
    out.append(_pair("dense_search", ours, ref, "FAISS top-5, query vector given", "numpy dot product + top-5"))
    ours, ref = [], []
    for q in queries:
        ours.append(_ms(partial(searcher.search, q, k=5)))
        ref.append(_ms(partial(_embed_topk, matrix, embedder, q, 5)))
    out.append(_pair("hybrid_search", ours, ref, "hybrid search incl. query embedding", "embed + numpy top-5"))

    result: dict[str, Any] = {
        "embedder": embedder.name,
        "embed_precision": getattr(embedder, "precision", None),  # MiniLM runs in float32 or bfloat16
        "cpu_count": os.cpu_count(),
        "tickets": len(tickets),
        "chunks": len(chunks),
        "train_seconds": round(train_s, 2),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": out,
    }
    result["lines"] = format_lines(result)
    return result


def format_lines(result: dict[str, Any]) -> list[str]:
    head = f"embedder {result['embedder']}, {result['cpu_count']} CPUs, {result['tickets']} tickets, "
    lines = [head + f"{result['chunks']} chunks; ratio = ours / reference (median time; above 1: ours is slower)"]
    for r in result["results"]:
        line = (
            f"{r['name']:14s} ours {r['ours_median_ms']:10.3f} ms   reference {r['reference_median_ms']:10.3f} ms   "
            f"ratio {r['ratio']}x   ({r['what']} vs {r['reference']}; median of {r['repeats']})"
        )
        if "ours_tickets_per_s" in r:
            line += f"\n{'':14s} {r['ours_tickets_per_s']} tickets/s vs {r['reference_tickets_per_s']} tickets/s"
        lines.append(line)
    return lines


def write_bench(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in result.items() if k != "lines"}, indent=2), encoding="utf-8")
    return path
