"""`triage eval retrieval`: recall@k and MRR of lexical, dense and hybrid search on query -> document pairs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.metrics import latency_summary, rank_metrics
from retrieval.hybrid import HybridSearcher, Mode


def target_rank(paths: list[str], target: str) -> int | None:
    """1-based rank of the first hit whose path ends with the target path (either way round)."""
    target = target.replace("\\", "/")
    for rank, path in enumerate(paths, start=1):
        if path.endswith(target) or target.endswith(path):
            return rank
    return None


def evaluate_retrieval(
    searcher: HybridSearcher,
    pairs: list[dict[str, Any]],
    query_field: str,
    target_field: str,
    modes: list[Mode],
    k: int = 10,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        ranks, ms, name_ranks = [], [], []
        for pair in pairs:
            t0 = time.perf_counter()
            hits = searcher.search(str(pair[query_field]), k=k, mode=mode)
            ms.append((time.perf_counter() - t0) * 1000)
            paths = [h.path for h in hits]
            ranks.append(target_rank(paths, str(pair[target_field])))
            # same file name in another folder (the corpus has near-identical copies of some runbooks)
            name_ranks.append(target_rank([Path(p).name for p in paths], Path(str(pair[target_field])).name))
        out[mode] = {
            **rank_metrics(ranks),
            **latency_summary(ms),
            "same_name_recall_at_1": float(np.mean([r == 1 for r in name_ranks])) if pairs else 0.0,
        }
    return out
