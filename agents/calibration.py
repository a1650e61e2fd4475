"""Abstention thresholds: the lowest confidence at which held-out predictions reach a target precision."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

NEVER = 1.01  # a threshold no confidence reaches: the field always goes to a human


class ThresholdChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float
    target_precision: float
    precision: float  # precision of held-out predictions at or above the threshold
    coverage: float  # share of held-out rows at or above the threshold
    support: int  # held-out rows the choice was made on


def precision_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each distinct confidence t (descending): threshold t, precision and coverage of rows >= t."""
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(float)
    cum_hits = np.cumsum(hits)
    counts = np.arange(1, len(conf) + 1)
    last = np.r_[conf[1:] != conf[:-1], True]  # keep the last row of each tie group
    return conf[last], (cum_hits / counts)[last], (counts / max(len(conf), 1))[last]


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float = 0.9, min_support: int = 10
) -> ThresholdChoice:
    """Lowest threshold whose precision is >= target (most coverage), with at least min_support rows."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    n = len(confidence)
    if n == 0:
        return ThresholdChoice(threshold=NEVER, target_precision=target, precision=0.0, coverage=0.0, support=0)
    thresholds, precision, coverage = precision_coverage_curve(confidence, correct)
    ok = (precision >= target) & (coverage * n >= min(min_support, n))
    if not ok.any():
        return ThresholdChoice(
            threshold=NEVER, target_precision=target, precision=float(precision[0]), coverage=0.0, support=n
        )
    i = int(np.flatnonzero(ok)[-1])
    return ThresholdChoice(
        threshold=float(thresholds[i]),
        target_precision=target,
        precision=float(precision[i]),
        coverage=float(coverage[i]),
        support=n,
    )
