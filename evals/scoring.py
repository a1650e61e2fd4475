"""Figures from scored rows: per field (accuracy, calibration, coverage, confusion) and per backend (cost)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from evals.metrics import (
    best_coverage_at,
    classification_report,
    coverage_curve,
    expected_calibration_error,
    latency_summary,
    precision_at_threshold,
)
from evals.outputs import RowOutput

FAILED = "<failed>"


def field_metrics(
    y_true: list[str], outputs: list[RowOutput], name: str, threshold: float | None, target: float
) -> dict[str, Any]:
    """All figures for one field from the rows scored so far; a failed or missing answer is a wrong answer."""
    n = len(outputs)
    if n == 0:
        return {"n_scored": 0}
    y_true = y_true[:n]
    preds = [o.fields.get(name) for o in outputs]
    y_pred = [p.label if p else FAILED for p in preds]
    confidence = np.array([p.confidence if p else 0.0 for p in preds], dtype=float)
    correct = np.array(y_pred) == np.array(y_true)
    report = classification_report(y_true, y_pred)
    report["per_class"].pop(FAILED, None)
    labels = sorted(set(y_true) | set(y_pred))
    ece, reliability = expected_calibration_error(confidence, correct)
    out: dict[str, Any] = {
        "n_scored": n,
        **report,
        "failures": int(sum(p is None for p in preds)),
        "decided_by": dict(Counter(p.decided_by for p in preds if p)),
        "target_precision": target,
        "oracle_coverage": best_coverage_at(confidence, correct, target)["coverage"],
        "ece": ece,
        "reliability": reliability,
        "precision_coverage": coverage_curve(confidence, correct),
        "confusion": {"labels": labels, "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }
    if threshold is not None:
        prec, cov = precision_at_threshold(confidence, correct, threshold)
        out.update(threshold=threshold, precision_at_threshold=prec, coverage_at_threshold=cov)
    return out


def backend_figures(outputs: list[RowOutput], single_ms: list[float], n_test: int) -> dict[str, Any]:
    """Latency per ticket, LLM calls and tokens per ticket, and the rows that failed (scored as wrong)."""
    n = len(outputs)
    errors = [o.error for o in outputs if o.error]
    return {
        "n_scored": n,
        "n_test": n_test,
        **latency_summary(single_ms),
        "llm_calls_per_ticket": round(sum(o.llm_calls for o in outputs) / n, 4) if n else 0.0,
        "tokens_per_ticket": round(sum(o.tokens for o in outputs) / n, 1) if n else 0.0,
        "failed_rows": len(errors),
        "failure_examples": sorted(set(errors))[:5],
    }
