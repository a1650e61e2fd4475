"""A field with one label in its training data: a constant model that always says that label, at confidence 1.0."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.classical.text_models import EnsembleClassifier, tfidf_features
from agents.errors import DataError


class ConstantClassifier(EnsembleClassifier):
    """Stands where an ensemble stands (same attributes, same calls) for a field whose rows all carry one label,
    e.g. the priority of an export that has none: every text gets that label with probability 1.0.

    Its held-out rows are all its rows, all predicted right: the threshold chosen on them is 1.0 at precision 1.0
    and coverage 1.0, which is what the data can say about a field with one label (it measures nothing more).
    """

    name = "constant"

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> ConstantClassifier:
        classes = np.unique(np.asarray(labels, dtype=object).astype(str))
        if len(classes) != 1:
            raise DataError("labels", f"a constant model needs exactly one label, got {len(classes)}: {list(classes)}")
        self.classes_ = classes
        self.features_ = self.features if self.features is not None else tfidf_features(self.max_features).fit(texts)
        self.members_ = []
        self.scales_ = []
        self.oof_rows_ = np.arange(len(labels))
        self.oof_proba_ = np.ones((len(labels), 1))
        return self

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None, X: Any = None) -> np.ndarray:
        return np.ones((len(texts), 1))
