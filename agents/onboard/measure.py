"""Train the service's models on a stratified training split and measure every field on the held-out rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.onboard.derive import FIELDS, Derived
from agents.onboard.export import Export, OnboardSpec
from agents.onboard.summary import ReferenceFigures, SweepPoint, ThresholdFigures, ValueFigures
from agents.settings import DEFAULT_MEMBERS
from agents.types import ticket_text
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

SWEEP = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05, 0.10, ..., 0.95
REFERENCE = "tfidf+logreg"


@dataclass
class Predictions:
    """One field on its held-out rows: truth, the service's label and confidence, the reference's label."""

    truth: list[str]
    predicted: list[str]
    confidence: np.ndarray
    reference: list[str] | None  # None for a field with one label


@dataclass
class Measured:
    """What the held-out evaluation found, per field, and how it was drawn."""

    n_train: int
    evaluated: int
    sampled: bool
    fields: dict[str, Predictions]
    thresholds: dict[str, Any]  # field -> ThresholdChoice of the models trained on the split
    single_label: dict[str, str]
    seconds: dict[str, float]


def stratified(indices: list[int], strata: list[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """(taken, rest): `share` of each stratum, rounded, at least one row of any stratum with two or more; seeded."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, stratum in zip(indices, strata, strict=True):
        groups.setdefault(stratum, []).append(i)
    taken: list[int] = []
    for stratum in sorted(groups):
        rows = list(rng.permutation(groups[stratum]))
        k = 0 if len(rows) < 2 else min(len(rows) - 1, max(1, int(round(share * len(rows)))))
        taken.extend(int(i) for i in rows[:k])
    chosen = set(taken)
    return sorted(taken), [i for i in indices if i not in chosen]


def reference(train_x: list[str], train_y: list[str], test_x: list[str]) -> list[str]:
    """The plain reference, as in the eval harness: word TF-IDF (sublinear) and logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000))
    model.fit(train_x, train_y)
    return [str(p) for p in model.predict(test_x)]


def measure(
    export: Export,
    derived: Derived,
    spec: OnboardSpec,
    embedder: Embedder,
    kb: KnowledgeBase,
    *,
    target: float = 0.9,
    folds: int = 5,
    members: str = DEFAULT_MEMBERS,
    progress: bool = False,
) -> Measured:
    """Split the rows (stratified by category, seeded), train the service's models on the training rows usable for
    every field (as the served models are), and predict each field on its held-out rows as the service does:
    category and priority from their models, team from the router (team model, similar tickets)."""
    from agents.classical.field_tokens import read_text
    from agents.classical.text_models import transform
    from agents.classical.training import NEIGHBOURS, train_models
    from agents.route import Router

    started = time.perf_counter()
    pool = list(range(len(export.records)))
    strata = [export.records[i].labels.get("category") or "<empty>" for i in pool]
    sampled = spec.sample is not None and spec.sample < len(pool)
    if sampled:
        pool, _ = stratified(pool, strata, (spec.sample or 0) / len(pool), spec.seed)
        strata = [export.records[i].labels.get("category") or "<empty>" for i in pool]
    test, train = stratified(pool, strata, spec.holdout, spec.seed)
    rows = []
    for i in train:
        ids = derived.ids[i]
        if all(ids[name] for name in FIELDS):
            record = export.records[i]
            rows.append(record.training_row(ids))
    models = train_models(
        rows,
        embedder,
        kb,
        target=target,
        folds=folds,
        seed=spec.seed,
        members=members,
        intake_fields=list(spec.intake),
        progress=progress,
    )
    trained = time.perf_counter()
    held_out = [export.records[i] for i in test]
    texts = [ticket_text(r.title, r.body) for r in held_out]
    read = [read_text(r.title, r.body, r.intake, models.intake_fields) for r in held_out]
    vectors = embedder.embed([t or " " for t in read])
    tfidf = transform(models.fields["team"].features_, read)
    proba = {name: m.predict_proba(read, vectors, tfidf) for name, m in models.fields.items()}
    router = Router(kb)
    labels: dict[str, list[str]] = {}
    confidence: dict[str, list[float]] = {}
    for name in ("category", "priority"):
        classes = models.fields[name].classes_
        labels[name] = [str(classes[j]) for j in proba[name].argmax(axis=1)]
        confidence[name] = [float(p) for p in proba[name].max(axis=1)]
    labels["team"], confidence["team"] = [], []
    team_classes = models.fields["team"].classes_
    for k, i in enumerate(test):
        neighbours = models.memory.search(vectors[k], NEIGHBOURS, exclude_id=export.records[i].id)
        decision, _ = router.decide(texts[k], dict(zip(team_classes, proba["team"][k], strict=True)), neighbours)
        labels["team"].append(decision.label)
        confidence["team"].append(decision.confidence)
    train_texts = [ticket_text(r["title"], r["body"]) for r in rows]
    fields: dict[str, Predictions] = {}
    for name in FIELDS:
        keep = [k for k, i in enumerate(test) if derived.ids[i][name]]
        truth = [str(derived.ids[test[k]][name]) for k in keep]
        train_y = [str(r[name]) for r in rows]
        ref = None
        if len(set(train_y)) > 1:
            ref = reference(train_texts, train_y, [texts[k] for k in keep]) if keep else []
        fields[name] = Predictions(
            truth=truth,
            predicted=[labels[name][k] for k in keep],
            confidence=np.array([confidence[name][k] for k in keep], dtype=float),
            reference=ref,
        )
    done = time.perf_counter()
    return Measured(
        n_train=len(rows),
        evaluated=len(pool),
        sampled=sampled,
        fields=fields,
        thresholds=dict(models.thresholds),
        single_label=dict(models.info.get("single_label", {})),
        seconds={"train": round(trained - started, 1), "held_out": round(done - trained, 1)},
    )


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    if not truth:
        return 0.0
    return float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0))


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean(np.array(truth) == np.array(predicted))) if truth else 0.0


def sweep(p: Predictions) -> list[SweepPoint]:
    """For each threshold 0.05..0.95: shares correct, wrong and without a prediction (sum 1)."""
    right = np.array(p.truth) == np.array(p.predicted)
    n = max(len(p.truth), 1)
    points = []
    for t in SWEEP:
        answered = p.confidence >= t
        correct, wrong = int((answered & right).sum()), int((answered & ~right).sum())
        points.append(
            SweepPoint(threshold=t, correct=correct / n, wrong=wrong / n, no_prediction=(n - correct - wrong) / n)
        )
    return points


def threshold_figures(p: Predictions, choice: Any) -> ThresholdFigures:
    answered = p.confidence >= choice.threshold
    right = np.array(p.truth) == np.array(p.predicted)
    return ThresholdFigures(
        value=choice.threshold,
        target_precision=choice.target_precision,
        chosen_on="training rows, out-of-fold predictions",
        train_precision=choice.precision,
        train_coverage=choice.coverage,
        held_out_precision=float(right[answered].mean()) if answered.any() else None,
        held_out_coverage=float(answered.mean()) if len(answered) else 0.0,
    )


def per_value(p: Predictions, threshold: float) -> dict[str, ValueFigures]:
    """Per value: held-out support, and at the threshold the precision of that value and the share answered."""
    truth, predicted = np.array(p.truth), np.array(p.predicted)
    answered = p.confidence >= threshold
    out = {}
    for value in sorted(set(p.truth) | set(p.predicted)):
        mine, given = truth == value, (predicted == value) & answered
        support, n_given = int(mine.sum()), int(given.sum())
        out[value] = ValueFigures(
            support=support,
            predicted_at_threshold=n_given,
            precision_at_threshold=float((truth[given] == value).mean()) if n_given else None,
            coverage_at_threshold=float(answered[mine].mean()) if support else None,
        )
    return out


def reference_figures(p: Predictions) -> ReferenceFigures:
    if p.reference is None:
        return ReferenceFigures(name=REFERENCE, accuracy=None, macro_f1=None)
    return ReferenceFigures(
        name=REFERENCE, accuracy=accuracy(p.truth, p.reference), macro_f1=macro_f1(p.truth, p.reference)
    )
