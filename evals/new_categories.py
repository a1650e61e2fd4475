"""Held-out labels: train without a few whole labels, then measure how their tickets abstain and cluster."""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.classical.label_model import train_label_model
from agents.errors import DataError
from agents.novelty.clusters import Algorithm, cluster_groups
from retrieval.embedders import Embedder

# the clustering settings compared on the development seed before the reported seeds run (agglomerative: distance)
SWEEP: tuple[tuple[Algorithm, float], ...] = (
    ("agglomerative", 0.25),
    ("agglomerative", 0.3),
    ("agglomerative", 0.35),
    ("agglomerative", 0.4),
    ("agglomerative", 0.5),
    ("hdbscan", 0.0),
)


class MemoEmbedder:
    """An embedder that embeds each distinct text once for the whole experiment (every seed reuses the vectors)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            self.vectors.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self.vectors[t] for t in texts])


@dataclass
class Split:
    texts: list[str]
    labels: list[str]


def pick_held_out(labels: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` whole labels chosen at random (seeded) among the training labels, sorted."""
    names = sorted(set(labels))
    if not 1 <= n < len(names):
        raise DataError("labels", f"cannot hold out {n} of {len(names)} labels: at least one must stay known")
    return sorted(random.Random(seed).sample(names, n))


def cluster_figures(groups: list[np.ndarray], truth: np.ndarray, unknown: np.ndarray, n_unknown: int) -> dict[str, Any]:
    """Figures of clusters over abstained rows: `truth` their labels, `unknown` whether each is held out, and
    `n_unknown` the held-out rows of the whole test set (abstained or not)."""
    rows = np.concatenate(groups) if groups else np.array([], dtype=int)
    per_cluster, majority_unknown, novel_rows = [], 0, 0
    found: set[str] = set()
    for g in groups:
        held = Counter(truth[g][unknown[g]].tolist())
        top, top_n = held.most_common(1)[0] if held else ("", 0)
        majority_unknown += top_n
        is_novel = bool(unknown[g].mean() > 0.5)
        if is_novel:
            novel_rows += top_n
            found.add(top)
        label, label_n = Counter(truth[g].tolist()).most_common(1)[0]
        per_cluster.append(
            {"size": len(g), "held_out": int(unknown[g].sum()), "majority": label, "majority_share": label_n / len(g)}
        )
    novel = sum(c["held_out"] * 2 > c["size"] for c in per_cluster)
    in_novel = sum(c["size"] for c in per_cluster if c["held_out"] * 2 > c["size"])
    return {
        "clusters": len(groups),
        "tickets_in_clusters": len(rows),
        "unknown_in_clusters": round(int(unknown[rows].sum()) / n_unknown, 4) if n_unknown else None,
        "purity": round(majority_unknown / len(rows), 4) if len(rows) else None,
        "novel_clusters": novel,
        "purity_of_novel": round(novel_rows / in_novel, 4) if in_novel else None,
        "false_alarms": len(groups) - novel,
        "held_out_labels_found": len(found),
        "held_out_in_clusters": dict(sorted(Counter(truth[rows][unknown[rows]].tolist()).items())),
        "per_cluster": per_cluster,
    }


def run_seed(
    train: Split,
    test: Split,
    embedder: Embedder,
    held_out: list[str],
    *,
    targets: Sequence[float],
    settings: Sequence[tuple[Algorithm, float]],
    min_size: int,
    members: str,
    folds: int,
) -> dict[str, Any]:
    """Train on every label but `held_out`; per precision target, abstention on the test set and clusters of it."""
    keep = [i for i, label in enumerate(train.labels) if label not in held_out]
    known_texts, known_labels = [train.texts[i] for i in keep], [train.labels[i] for i in keep]
    started = time.perf_counter()
    model = train_label_model(known_texts, known_labels, embedder, members=members, folds=folds, target=targets[0])
    seconds = time.perf_counter() - started
    vectors = embedder.embed([t or " " for t in test.texts])
    proba = model.model.predict_proba(test.texts, vectors)
    confidence = proba.max(axis=1)
    truth = np.asarray(test.labels, dtype=object)
    predicted = model.model.classes_[proba.argmax(axis=1)].astype(object)
    unknown = np.isin(truth, held_out)
    known, right = ~unknown, predicted == truth
    out: dict[str, Any] = {
        "held_out": held_out,
        "n_train_known": len(keep),
        "n_test_known": int(known.sum()),
        "n_test_unknown": int(unknown.sum()),
        "test_per_held_out_label": {label: int((truth == label).sum()) for label in held_out},
        "train_seconds": round(seconds, 1),
        "known_accuracy": round(float(right[known].mean()), 4) if known.any() else None,
        "targets": [],
    }
    for target in targets:
        choice = model.model.oof_threshold(known_labels, target)
        abstain = confidence < choice.threshold
        answered_known = known & ~abstain
        rows = np.flatnonzero(abstain)
        row: dict[str, Any] = {
            "target": target,
            "threshold": round(choice.threshold, 4),
            "held_out_precision": round(choice.precision, 4),
            "known_accuracy": out["known_accuracy"],
            "known_accuracy_answered": round(float(right[answered_known].mean()), 4) if answered_known.any() else None,
            "known_coverage": round(float(answered_known.sum() / max(known.sum(), 1)), 4),
            "unknown_recall": round(float(abstain[unknown].mean()), 4) if unknown.any() else None,
            "precision_answered": round(float(right[~abstain].mean()), 4) if (~abstain).any() else None,
            "abstained": len(rows),
            "abstained_unknown": int(abstain[unknown].sum()),
            "abstained_per_held_out_label": {label: int((abstain & (truth == label)).sum()) for label in held_out},
            "clusters": {},
        }
        for algorithm, distance in settings:
            groups = cluster_groups(vectors[rows], min_size=min_size, algorithm=algorithm, distance=distance)
            figures = cluster_figures(groups, truth[rows], unknown[rows], int(unknown.sum()))
            row["clusters"][setting_name(algorithm, distance)] = figures
        out["targets"].append(row)
    return out


def setting_name(algorithm: Algorithm, distance: float) -> str:
    return algorithm if algorithm == "hdbscan" else f"{algorithm}@{distance:g}"


FIGURES = (
    "threshold",
    "known_accuracy",
    "known_accuracy_answered",
    "known_coverage",
    "unknown_recall",
    "precision_answered",
)
CLUSTER_FIGURES = (
    "clusters",
    "unknown_in_clusters",
    "purity",
    "purity_of_novel",
    "false_alarms",
    "held_out_labels_found",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per target (as text), the median over runs of each figure, and of each clustering's figures."""
    out: dict[str, Any] = {}
    for i, first in enumerate(runs[0]["targets"]):
        rows = [run["targets"][i] for run in runs]
        entry: dict[str, Any] = {k: _median([r[k] for r in rows]) for k in FIGURES}
        entry["clusters"] = {
            name: {k: _median([r["clusters"][name][k] for r in rows]) for k in CLUSTER_FIGURES}
            for name in first["clusters"]
        }
        out[f"{first['target']:g}"] = entry
    return out


def _median(values: list[Any]) -> float | None:
    numbers = [v for v in values if v is not None]
    return round(float(statistics.median(numbers)), 4) if numbers else None


def run_experiment(
    train: Split,
    test: Split,
    embedder: Embedder,
    *,
    seeds: Sequence[int],
    n_held_out: int = 10,
    fixed: Sequence[str] = (),
    targets: Sequence[float] = (0.9, 0.98),
    setting: tuple[Algorithm, float] = ("agglomerative", 0.3),
    compare: Sequence[tuple[Algorithm, float]] = (("hdbscan", 0.0),),
    dev_seed: int | None = None,
    min_size: int = 5,
    members: str = "svm,lr",
    folds: int = 5,
    progress: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Every seed (or the `fixed` labels once), the medians, and on `dev_seed` (not reported as a result) the sweep
    of clustering settings the default was chosen by."""
    unknown_labels = sorted(set(fixed) - set(train.labels))
    if unknown_labels:
        raise DataError("--hold-out", f"labels not in the training data: {', '.join(unknown_labels)}")
    memo = MemoEmbedder(embedder)
    settings = list(dict.fromkeys([setting, *compare]))
    dev = None
    if dev_seed is not None:
        progress(f"dev seed {dev_seed}: sweeping {len(SWEEP)} clustering settings")
        held = pick_held_out(train.labels, n_held_out, dev_seed)
        figures = run_seed(
            train, test, memo, held, targets=targets, settings=SWEEP, min_size=min_size, members=members, folds=folds
        )
        dev = {"seed": dev_seed, **figures}
    runs = []
    for seed in [None] if fixed else seeds:  # a fixed list is one run: the seed only picks the labels
        held = sorted(fixed) if seed is None else pick_held_out(train.labels, n_held_out, seed)
        progress(f"seed {seed}: holding out {', '.join(held)}")
        figures = run_seed(
            train, test, memo, held, targets=targets, settings=settings, min_size=min_size, members=members, folds=folds
        )
        runs.append({"seed": seed, **figures})
    return {
        "setting": setting_name(*setting),
        "compared": [setting_name(*s) for s in settings],
        "targets": list(targets),
        "min_size": min_size,
        "members": members,
        "folds": folds,
        "embedder": embedder.name,
        "n_train": len(train.texts),
        "n_test": len(test.texts),
        "labels": len(set(train.labels)),
        "dev": dev,
        "runs": runs,
        "median": medians(runs),
    }
