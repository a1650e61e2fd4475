"""`triage eval retrieval`: recall@k and MRR of lexical, dense and hybrid search on query -> document pairs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import latency_summary, rank_metrics
from retrieval.hybrid import Fusion, HybridSearcher, Mode

KS = (1, 5, 10)


def target_rank(paths: list[str], target: str) -> int | None:
    """1-based rank of the first hit whose path ends with the target path (either way round)."""
    target = target.replace("\\", "/")
    for rank, path in enumerate(paths, start=1):
        if path.endswith(target) or target.endswith(path):
            return rank
    return None


def variant_label(mode: Mode, fusion: Fusion) -> str:
    """'hybrid' for the default fusion of chunks (as in earlier reports), 'hybrid-documents' for whole files."""
    return f"{mode}-{fusion}" if mode == "hybrid" and fusion != "chunks" else mode


def _ranks(
    searcher: HybridSearcher, rows: Sequence[dict[str, Any]], query: str, target: str, mode: Mode, k: int
) -> list[tuple[int | None, int | None, float]]:
    """(rank of the target, rank of a same-name file, milliseconds) per row."""
    out = []
    for row in rows:
        t0 = time.perf_counter()
        hits = searcher.search(str(row[query]), k=k, mode=mode)
        ms = (time.perf_counter() - t0) * 1000
        paths = [h.path for h in hits]
        # same file name in another folder (the corpus has near-identical copies of some runbooks)
        same_name = target_rank([Path(p).name for p in paths], Path(str(row[target])).name)
        out.append((target_rank(paths, str(row[target])), same_name, ms))
    return out


def _summary(results: Sequence[tuple[int | None, int | None, float]]) -> dict[str, Any]:
    return {
        **rank_metrics([r for r, _, _ in results], KS),
        **latency_summary([ms for _, _, ms in results]),
        "same_name_recall_at_1": float(np.mean([n == 1 for _, n, _ in results])) if results else 0.0,
    }


def evaluate_retrieval(
    searcher: HybridSearcher,
    pairs: list[dict[str, Any]],
    query_field: str,
    target_field: str,
    modes: list[Mode],
    k: int = 10,
    *,
    fusions: Sequence[Fusion] | None = None,
    split_field: str | None = None,
) -> dict[str, Any]:
    """Metrics per mode (and per hybrid fusion, side by side); with `split_field`, also per value of that field."""
    out: dict[str, Any] = {}
    default = searcher.fusion
    try:
        for mode in modes:
            for fusion in (fusions or [default]) if mode == "hybrid" else [default]:
                searcher.fusion = fusion
                label = variant_label(mode, fusion)
                results = _ranks(searcher, pairs, query_field, target_field, mode, k)
                out[label] = _summary(results)
                if split_field:
                    keys = [str(p.get(split_field, "")) for p in pairs]
                    out[label]["splits"] = {
                        s: _summary([r for r, key in zip(results, keys, strict=True) if key == s])
                        for s in sorted(set(keys))
                    }
    finally:
        searcher.fusion = default
    return out
