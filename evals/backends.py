"""The classical backends the eval runner scores: the calibrated ensemble and the plain TF-IDF + LR reference."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from agents.classical.calibration import ThresholdChoice
from agents.classical.text_models import EnsembleClassifier
from agents.settings import DEFAULT_MEMBERS
from evals.outputs import REFERENCE, Prediction, RowOutput
from evals.specs import Table
from retrieval.embedders import Embedder


class ClassicalBackend:
    """One calibrated TF-IDF + embedding ensemble per field; thresholds from its out-of-fold training rows."""

    name = "classical"
    batch_size = 256

    def __init__(
        self, embedder: Embedder, *, folds: int = 5, target: float = 0.9, members: str = DEFAULT_MEMBERS
    ) -> None:
        self.embedder = embedder
        self.folds = folds
        self.members = members
        self.target = target
        self.choices: dict[str, ThresholdChoice] = {}  # the thresholds with the held-out figures behind them
        self.models: dict[str, EnsembleClassifier] = {}

    @property
    def thresholds(self) -> dict[str, float]:
        return {name: choice.threshold for name, choice in self.choices.items()}

    def fit(self, train: Table, vectors: np.ndarray | None) -> None:
        for name, labels in train.labels.items():
            model = EnsembleClassifier(self.embedder, folds=self.folds, members=self.members)
            model.fit(train.texts, labels, vectors)
            self.models[name], self.choices[name] = model, model.oof_threshold(labels, self.target)

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        vectors = self.embedder.embed([t or " " for t in texts])
        out = [RowOutput() for _ in texts]
        for name, model in self.models.items():
            proba = model.predict_proba(texts, vectors)
            for row, p in zip(out, proba, strict=True):
                order = np.argsort(-p, kind="stable")[:3]
                ranked = tuple(str(model.classes_[i]) for i in order)
                row.fields[name] = Prediction(ranked[0], float(p[order[0]]), "classical:ensemble", ranked)
        return out


class TfidfLrBackend:
    """The reference measured in every run: word TF-IDF and logistic regression, nothing else."""

    name = REFERENCE
    batch_size = 1024

    def __init__(self) -> None:
        self.thresholds: dict[str, float] = {}
        self.models: dict[str, Any] = {}

    def fit(self, train: Table, vectors: np.ndarray | None) -> None:
        for name, labels in train.labels.items():
            model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
            self.models[name] = model.fit(train.texts, labels)

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        out = [RowOutput() for _ in texts]
        for name, model in self.models.items():
            proba = model.predict_proba(texts)
            for row, p in zip(out, proba, strict=True):
                best = int(p.argmax())
                row.fields[name] = Prediction(str(model.classes_[best]), float(p[best]), REFERENCE)
        return out
