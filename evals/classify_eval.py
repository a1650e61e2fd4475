"""`triage eval classify`: the calibrated ensemble against a plain TF-IDF + LR baseline on the same split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from agents.classical.calibration import ThresholdChoice
from agents.classical.text_models import EnsembleClassifier
from agents.settings import DEFAULT_MEMBERS
from evals.metrics import (
    best_coverage_at,
    classification_report,
    coverage_curve,
    expected_calibration_error,
    latency_summary,
    precision_at_threshold,
)
from retrieval.embedders import Embedder


def split(texts: list[str], labels: list[str], test_size: float, seed: int) -> tuple[list[str], ...]:
    """Stratified where every class has two rows; classes with one row go to training."""
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    singles = [i for i, lab in enumerate(labels) if counts[lab] < 2]
    rest = [i for i, lab in enumerate(labels) if counts[lab] >= 2]
    tr, te = train_test_split(rest, test_size=test_size, random_state=seed, stratify=[labels[i] for i in rest])
    tr = list(tr) + singles
    return ([texts[i] for i in tr], [labels[i] for i in tr], [texts[i] for i in te], [labels[i] for i in te])


def baseline(train_x: list[str], train_y: list[str], test_x: list[str]) -> list[str]:
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
    model.fit(train_x, train_y)
    return [str(p) for p in model.predict(test_x)]


@dataclass
class FittedEnsemble:
    """The ensemble fitted on the training rows, its threshold, and the training vectors (for the LLM policies)."""

    model: EnsembleClassifier
    choice: ThresholdChoice
    vectors: np.ndarray
    seconds: float


def fit_ensemble(
    train_x: list[str],
    train_y: list[str],
    embedder: Embedder,
    *,
    target: float = 0.9,
    folds: int = 5,
    members: str = DEFAULT_MEMBERS,
) -> FittedEnsemble:
    """Fit on train; the abstention threshold is chosen on train's held-out (out-of-fold) rows."""
    started = time.perf_counter()
    vectors = embedder.embed([t or " " for t in train_x])
    model = EnsembleClassifier(embedder, folds=folds, members=members).fit(train_x, train_y, vectors)
    return FittedEnsemble(model, model.oof_threshold(train_y, target), vectors, time.perf_counter() - started)


def evaluate_classical(
    train_x: list[str],
    train_y: list[str],
    test_x: list[str],
    test_y: list[str],
    embedder: Embedder,
    *,
    target: float = 0.9,
    folds: int = 5,
    latency_sample: int = 200,
    fitted: FittedEnsemble | None = None,
) -> dict[str, Any]:
    """Fit on train (unless `fitted` is given), score on test."""
    fitted = fitted or fit_ensemble(train_x, train_y, embedder, target=target, folds=folds)
    model, choice, fit_seconds = fitted.model, fitted.choice, fitted.seconds
    started = time.perf_counter()
    proba = model.predict_proba(test_x)  # embeds the test texts: batch throughput includes embeddings
    batch_seconds = time.perf_counter() - started
    pred = [str(p) for p in model.classes_[proba.argmax(axis=1)]]
    confidence = proba.max(axis=1)
    correct = np.array(pred) == np.array(test_y)
    single = []
    for text in test_x[:latency_sample]:
        t0 = time.perf_counter()
        model.predict_proba([text])
        single.append((time.perf_counter() - t0) * 1000)
    prec, cov = precision_at_threshold(confidence, correct, choice.threshold)
    ece, reliability = expected_calibration_error(confidence, correct)
    base_pred = baseline(train_x, train_y, test_x)
    base = classification_report(test_y, base_pred)
    unseen = sorted(set(test_y) - set(train_y))
    report = classification_report(test_y, pred)
    return {
        "backend": "classical:ensemble",
        **report,
        "n_train": len(train_x),
        "n_test": len(test_x),
        "threshold": choice.threshold,
        "threshold_chosen_on": "train out-of-fold",
        "target_precision": target,
        "precision_at_threshold": prec,
        "coverage_at_threshold": cov,
        "oracle_at_target": best_coverage_at(confidence, correct, target),
        "ece": ece,
        "reliability": reliability,
        "precision_coverage": coverage_curve(confidence, correct),
        **latency_summary(single),
        "batch_tickets_per_s": round(len(test_x) / batch_seconds, 1) if batch_seconds else None,
        "fit_seconds": round(fit_seconds, 1),
        "ensemble_members": [m.name for m in model.members_],
        "ensemble_scales": model.scales_,
        "baseline_accuracy": base["accuracy"],
        "baseline_macro_f1": base["macro_f1"],
        "accuracy_ratio_to_baseline": round(report["accuracy"] / base["accuracy"], 4) if base["accuracy"] else None,
        "test_classes_unseen_in_train": {
            "count": len(unseen),
            "rows": sum(y in unseen for y in test_y),
            "labels": unseen[:20],
        },
    }
