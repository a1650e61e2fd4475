"""Backends the eval runner can score, by name: classical, the full service, the TF-IDF + LR reference, plug-ins."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from agents.calibration import ThresholdChoice
from agents.members import DEFAULT_MEMBERS
from agents.text_models import EnsembleClassifier
from evals.specs import DatasetSpec, Table
from retrieval.embedders import Embedder

REFERENCE = "tfidf_lr"
PLUGIN_MODULE = "evals.llm_eval"


@dataclass
class Prediction:
    label: str
    confidence: float
    decided_by: str  # the backend that answered this field (e.g. classical:ensemble, llm:qwen)
    ranked: tuple[str, ...] = ()  # the classical model's most likely labels, best first (the cascade's top-k guard)


@dataclass
class RowOutput:
    """One ticket's answer: a prediction per field, and what it cost. A missing field counts as a failure."""

    fields: dict[str, Prediction] = field(default_factory=dict)
    llm_calls: int = 0
    tokens: int = 0
    error: str | None = None


class EvalBackend(Protocol):
    """What the runner scores. `thresholds` (field -> abstention threshold) must be chosen on training rows only.

    A plug-in module (evals/llm_eval.py) may provide `make_backend(name, *, settings, embedder, chat) -> EvalBackend`
    for the names `llm` and `cascade`; raising BackendUnavailable there reports the backend as skipped.
    """

    name: str
    batch_size: int

    @property
    def thresholds(self) -> dict[str, float]: ...

    def fit(self, train: Table, vectors: np.ndarray | None) -> None: ...

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]: ...


@dataclass
class Skipped:
    reason: str


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


def _llm_backend(name: str, settings: Any, embedder: Embedder, chat: Any) -> EvalBackend | Skipped:
    """`cascade` and `llm` come from the plug-in evals/llm_eval.py; without it (or an LLM) they are skipped."""
    from agents.errors import BackendUnavailable

    try:
        module = importlib.import_module(PLUGIN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PLUGIN_MODULE:
            raise
        return Skipped(f"{PLUGIN_MODULE} is not in this tree: the {name} backend is not built yet")
    make = getattr(module, "make_backend", None)
    if make is None:
        return Skipped(f"{PLUGIN_MODULE} has no make_backend(name, *, settings, embedder, chat)")
    if chat is None and not settings.llm_model:
        return Skipped("no LLM configured: set TRIAGE_LLM_MODEL (and TRIAGE_LLM_BASE_URL for a local server)")
    try:
        backend: EvalBackend = make(name, settings=settings, embedder=embedder, chat=chat)
    except BackendUnavailable as exc:  # the endpoint is down or misconfigured
        return Skipped(str(exc))
    return backend


def _service(spec: DatasetSpec, settings: Any, embedder: Embedder, folds: int | None) -> EvalBackend | Skipped:
    from evals.service_backend import FIELDS, ServiceBackend

    missing = set(FIELDS) - set(spec.labels)
    if not spec.kb or missing:
        return Skipped(f"the full service needs demo-taxonomy labels (spec kb: true) for {', '.join(FIELDS)}")
    return ServiceBackend(embedder, settings, folds=folds or spec.folds)


BACKEND_NAMES = ("classical", "service", "cascade", "llm", REFERENCE)


def make_backend(
    name: str,
    spec: DatasetSpec,
    *,
    settings: Any,
    embedder: Embedder,
    folds: int | None = None,
    chat: Any = None,
) -> EvalBackend | Skipped:
    """The named backend for one data set, or the reason it cannot run there (never a stand-in)."""
    if name == "classical":
        return ClassicalBackend(
            embedder, folds=folds or spec.folds, target=settings.precision_target, members=settings.members
        )
    if name == REFERENCE:
        return TfidfLrBackend()
    if name == "service":
        return _service(spec, settings, embedder, folds)
    if name in ("cascade", "llm"):
        return _llm_backend(name, settings, embedder, chat)
    raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKEND_NAMES)}")
