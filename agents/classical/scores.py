"""Score arithmetic shared by the ensemble's members: column alignment, softmax, linear margins, label checks."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from agents.errors import DataError


def check_labels(labels: list[str]) -> np.ndarray:
    classes = np.unique(np.asarray(labels, dtype=object).astype(str))
    if len(classes) < 2:
        raise DataError("labels", f"need at least 2 classes to learn from, got {len(classes)}: {list(classes)}")
    return classes


def expand(scores: np.ndarray, model_classes: np.ndarray, classes: np.ndarray, fill: float) -> np.ndarray:
    """Put a model's columns in the order of `classes`; classes it never saw get `fill`."""
    if scores.ndim == 1:  # binary decision_function: one column for the positive class
        scores = np.column_stack([-scores, scores])
    out = np.full((scores.shape[0], len(classes)), fill, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for j, cls in enumerate(model_classes):
        out[:, index[cls]] = scores[:, j]
    return out


def linear_scores(head: Any, X: Any) -> np.ndarray:
    """A fitted linear model's `decision_function(X)` without sklearn's per-call input checks (same numbers)."""
    scores = np.asarray(X @ head.coef_.T) + head.intercept_
    return scores.ravel() if scores.shape[1] == 1 else scores


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def log_proba(head: LogisticRegression, X: Any) -> np.ndarray:
    """log of `predict_proba(X) + 1e-9` for a fitted logistic regression, computed from `linear_scores`."""
    scores = linear_scores(head, X)
    if scores.ndim == 1:  # binary: sklearn's probability of the positive class is the logistic of the score
        positive = 1.0 / (1.0 + np.exp(-scores))
        return np.log(np.column_stack([1.0 - positive, positive]) + 1e-9)
    return np.log(softmax(scores) + 1e-9)
