"""Abstention thresholds: the lowest confidence at which held-out predictions reach a target precision."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

NEVER = 1.01  # a threshold no confidence reaches: the field always goes to a human
QUANTILE_GRID = np.linspace(0.0, 1.0, 101)


class ValuePrecision(BaseModel):
    """Held-out figures of one predicted value at its field's threshold: is this label precise enough to apply?"""

    model_config = ConfigDict(extra="forbid")

    predicted: int  # held-out rows predicted as this value, at any confidence
    covered: int  # of those, at or above the threshold
    precision: float | None  # share of the covered rows that were right; None when none is covered


class ThresholdChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float
    target_precision: float
    precision: float  # precision of held-out predictions at or above the threshold
    coverage: float  # share of held-out rows at or above the threshold
    support: int  # held-out rows the choice was made on
    # held-out confidences at the quantiles 0, 0.01, ..., 1: what share of tickets a threshold sends under it
    # (the cascade's LLM budget); empty in models saved before it was recorded
    confidence_quantiles: list[float] = []
    # per predicted value (empty in models saved before it was recorded): what `auto` per value is checked against
    per_value: dict[str, ValuePrecision] = {}


def per_value_precision(
    predicted: np.ndarray, confidence: np.ndarray, correct: np.ndarray, threshold: float
) -> dict[str, ValuePrecision]:
    """For each predicted value: held-out rows, rows at or above `threshold`, and their precision."""
    out: dict[str, ValuePrecision] = {}
    for value in sorted({str(v) for v in predicted}):
        mine = predicted.astype(str) == value
        covered = mine & (confidence >= threshold)
        n = int(covered.sum())
        out[value] = ValuePrecision(
            predicted=int(mine.sum()), covered=n, precision=float(correct[covered].mean()) if n else None
        )
    return out


def precision_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each distinct confidence t (descending): threshold t, precision and coverage of rows >= t."""
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(float)
    cum_hits = np.cumsum(hits)
    counts = np.arange(1, len(conf) + 1)
    last = np.r_[conf[1:] != conf[:-1], True]  # keep the last row of each tie group
    return conf[last], (cum_hits / counts)[last], (counts / max(len(conf), 1))[last]


def choose_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float = 0.9,
    min_support: int = 10,
    predicted: np.ndarray | None = None,
) -> ThresholdChoice:
    """Lowest threshold whose precision is >= target (most coverage), with at least min_support rows.
    With the `predicted` labels, the choice also holds each value's held-out precision at that threshold."""
    choice = _choose(np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool), target, min_support)
    if predicted is not None and choice.support:
        labels = np.asarray(predicted)
        per_value = per_value_precision(
            labels, np.asarray(confidence, dtype=float), np.asarray(correct), choice.threshold
        )
        choice = choice.model_copy(update={"per_value": per_value})
    return choice


def _choose(confidence: np.ndarray, correct: np.ndarray, target: float, min_support: int) -> ThresholdChoice:
    n = len(confidence)
    if n == 0:
        return ThresholdChoice(threshold=NEVER, target_precision=target, precision=0.0, coverage=0.0, support=0)
    quantiles = [round(float(q), 6) for q in np.quantile(confidence, QUANTILE_GRID)]
    thresholds, precision, coverage = precision_coverage_curve(confidence, correct)
    ok = (precision >= target) & (coverage * n >= min(min_support, n))
    if not ok.any():
        return ThresholdChoice(
            threshold=NEVER,
            target_precision=target,
            precision=float(precision[0]),
            coverage=0.0,
            support=n,
            confidence_quantiles=quantiles,
        )
    i = int(np.flatnonzero(ok)[-1])
    return ThresholdChoice(
        threshold=float(thresholds[i]),
        target_precision=target,
        precision=float(precision[i]),
        coverage=float(coverage[i]),
        support=n,
        confidence_quantiles=quantiles,
    )


def budgeted_threshold(choice: ThresholdChoice, max_share: float) -> float:
    """The abstention threshold, lowered until at most `max_share` of held-out rows fall under it.

    The cascade asks the LLM about tickets under this threshold, so `max_share` caps LLM calls per ticket as
    estimated on the training rows; the least confident tickets go first. Without recorded quantiles (models
    saved by an older version), or with `max_share` >= 1, the abstention threshold is returned unchanged.
    """
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must be within [0, 1], got {max_share}")
    if max_share >= 1.0 or len(choice.confidence_quantiles) != len(QUANTILE_GRID):
        return choice.threshold
    cap = float(np.interp(max_share, QUANTILE_GRID, choice.confidence_quantiles))
    return min(choice.threshold, cap)
