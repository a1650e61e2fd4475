"""The classifiers learn from small real data, stay calibrated, refuse one-class labels, and save/load."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from agents.classical.calibration import (
    NEVER,
    ThresholdChoice,
    budgeted_threshold,
    choose_threshold,
    precision_coverage_curve,
)
from agents.classical.text_models import EmbeddingClassifier, EnsembleClassifier, TfidfClassifier
from agents.errors import DataError
from evals.classify_eval import split
from retrieval.embedders import HashingEmbedder


def _demo_split(demo_rows: list[dict], field: str) -> tuple[list[str], ...]:
    texts = [f"{r['title']}\n{r['body']}" for r in demo_rows]
    return split(texts, [r[field] for r in demo_rows], 0.25, 7)


def test_ensemble_beats_chance_on_held_out_demo_tickets(demo_rows: list[dict]) -> None:
    train_x, train_y, test_x, test_y = _demo_split(demo_rows, "category")
    model = EnsembleClassifier(HashingEmbedder(), folds=3).fit(train_x, train_y)
    proba = model.predict_proba(test_x)
    accuracy = float(np.mean(model.classes_[proba.argmax(axis=1)] == np.array(test_y)))
    majority = max(test_y.count(c) for c in set(test_y)) / len(test_y)
    assert accuracy > 0.6 > majority  # held-out rows only; 10 classes, the biggest is ~13 %
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model.oof_proba_.shape == (len(train_x), len(model.classes_))


def test_members_share_the_interface(demo_rows: list[dict]) -> None:
    train_x, train_y, test_x, _ = _demo_split(demo_rows, "team")
    for model in (TfidfClassifier(), EmbeddingClassifier(HashingEmbedder())):
        proba = model.fit(train_x, train_y).predict_proba(test_x[:5])
        assert proba.shape == (5, len(set(train_y)))
        assert np.allclose(proba.sum(axis=1), 1.0)


def test_one_class_is_refused_with_the_class_named() -> None:
    with pytest.raises(DataError, match="at least 2 classes.*only"):
        EnsembleClassifier(HashingEmbedder()).fit(["a b", "c d", "e f"], ["only", "only", "only"])


def test_a_class_with_one_row_still_trains() -> None:
    texts = ["vpn down", "vpn slow", "vpn error", "printer jam", "printer toner", "printer offline", "payslip"]
    labels = ["net", "net", "net", "hw", "hw", "hw", "hr"]
    model = EnsembleClassifier(HashingEmbedder(), folds=3).fit(texts, labels)
    assert list(model.classes_) == ["hr", "hw", "net"]
    assert model.classes_[model.predict_proba(["the vpn is down again"]).argmax()] == "net"


def test_saved_model_predicts_the_same_after_attach(tmp_path, demo_rows: list[dict]) -> None:
    train_x, train_y, test_x, _ = _demo_split(demo_rows, "priority")
    embedder = HashingEmbedder()
    model = EnsembleClassifier(embedder, folds=3).fit(train_x, train_y)
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    assert loaded.embedder is None and not hasattr(loaded, "oof_proba_")
    with pytest.raises(RuntimeError, match="attach"):
        loaded.predict_proba(test_x[:2])
    assert np.allclose(loaded.attach(embedder).predict_proba(test_x), model.predict_proba(test_x))


def test_threshold_is_the_lowest_that_reaches_the_target() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    correct = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    choice = choose_threshold(confidence, correct, target=0.9, min_support=1)
    assert choice.threshold == pytest.approx(0.2)  # 9 right of 10 at >= 0.2
    assert choice.precision == pytest.approx(0.9) and choice.coverage == pytest.approx(10 / 12)
    never = choose_threshold(confidence, ~correct, target=0.9, min_support=1)
    assert never.threshold == NEVER and never.coverage == 0.0


def test_the_llm_budget_lowers_the_threshold_until_at_most_that_share_falls_under_it() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.0, 1.0, 2000)
    correct = rng.uniform(0.0, 1.0, 2000) < confidence  # calibrated: right with probability = confidence
    choice = choose_threshold(confidence, correct, target=0.9)
    under_abstention = float(np.mean(confidence < choice.threshold))
    assert under_abstention > 0.5  # the precision target alone would send most tickets to the LLM
    for share in (0.1, 0.3, 0.5):
        capped = budgeted_threshold(choice, share)
        assert capped < choice.threshold
        assert np.mean(confidence < capped) == pytest.approx(share, abs=0.01)
    assert budgeted_threshold(choice, 0.0) == pytest.approx(confidence.min(), abs=1e-6)  # nothing goes under it
    assert budgeted_threshold(choice, 0.99) == choice.threshold  # the budget is wider than the abstention band
    assert budgeted_threshold(choice, 1.0) == choice.threshold
    with pytest.raises(ValueError, match="max_share"):
        budgeted_threshold(choice, 1.5)


def test_models_saved_without_quantiles_keep_the_abstention_threshold() -> None:
    old = ThresholdChoice(threshold=0.7, target_precision=0.9, precision=0.91, coverage=0.6, support=100)
    assert budgeted_threshold(old, 0.3) == 0.7


def test_ties_are_kept_together_on_the_curve() -> None:
    thresholds, precision, coverage = precision_coverage_curve(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1]))
    assert list(thresholds) == [0.9, 0.5]
    assert list(precision) == [0.5, pytest.approx(2 / 3)]
    assert list(coverage) == [pytest.approx(2 / 3), 1.0]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_fast_scores_equal_sklearns_own(demo_rows: list[dict], n_classes: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from agents.classical.scores import linear_scores, log_proba
    from agents.classical.text_models import tfidf_features, transform

    rows = [r for r in demo_rows if r["category"] in sorted({r["category"] for r in demo_rows})[:n_classes]]
    texts, labels = [f"{r['title']} {r['body']}" for r in rows], [r["category"] for r in rows]
    features = tfidf_features().fit(texts)
    X = transform(features, texts)
    assert (features.transform(texts) != X).nnz == 0  # the same matrix as the FeatureUnion's own
    svm = LinearSVC().fit(X, labels)
    np.testing.assert_allclose(linear_scores(svm, X), svm.decision_function(X), rtol=1e-10, atol=1e-12)
    lr = LogisticRegression(max_iter=2000).fit(X, labels)
    np.testing.assert_allclose(log_proba(lr, X), np.log(lr.predict_proba(X) + 1e-9), rtol=1e-8, atol=1e-10)
