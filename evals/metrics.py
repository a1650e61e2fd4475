"""Metrics as pure functions: classification, precision-coverage, calibration, retrieval ranks, latency."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from agents.classical.calibration import choose_threshold, precision_coverage_curve


def classification_report(y_true: list[str], y_pred: list[str]) -> dict[str, Any]:
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "per_class": {
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, lab in enumerate(labels)
        },
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[float, list]:
    """ECE with equal-width bins, and the bins themselves (for a reliability diagram)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece, table = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
            ece += mask.mean() * abs(acc - conf)
            table.append({"lo": float(lo), "hi": float(hi), "n": int(mask.sum()), "accuracy": acc, "confidence": conf})
    return float(ece), table


def precision_at_threshold(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float]:
    """(precision, coverage) of the rows at or above a threshold chosen elsewhere."""
    mask = confidence >= threshold
    if not mask.any():
        return 0.0, 0.0
    return float(correct[mask].mean()), float(mask.mean())


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 50) -> list[dict[str, float]]:
    thresholds, precision, coverage = precision_coverage_curve(confidence, correct)
    step = max(1, len(thresholds) // points)
    return [
        {"threshold": float(t), "precision": float(p), "coverage": float(c)}
        for t, p, c in list(zip(thresholds, precision, coverage, strict=True))[::step]
    ]


def best_coverage_at(confidence: np.ndarray, correct: np.ndarray, target: float) -> dict[str, float]:
    """Oracle view on the test set: the most coverage any threshold reaches at the target precision."""
    return choose_threshold(confidence, correct, target, min_support=1).model_dump(exclude={"confidence_quantiles"})


def rank_metrics(ranks: list[int | None], ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """recall@k and MRR from 1-based ranks (None = not found)."""
    n = len(ranks)
    out = {f"recall_at_{k}": (sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0) for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r) / n if n else 0.0
    out["n"] = n
    return out


def latency_summary(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {}
    arr = np.asarray(ms)
    return {f"latency_ms_p{q}": round(float(np.percentile(arr, q)), 3) for q in (50, 95, 99)}


def llm_cost(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """p50 and max of the records' `llm_ms`, and p50 of their `prompt_tokens` (rows without a call left out)."""
    ms = [r["llm_ms"] for r in records if r.get("llm_ms") is not None]
    tokens = [r["prompt_tokens"] for r in records if r.get("prompt_tokens") is not None]
    return {
        "llm_ms_p50": float(np.median(ms)) if ms else None,
        "llm_ms_max": max(ms) if ms else None,
        "prompt_tokens_p50": float(np.median(tokens)) if tokens else None,
    }
