"""Which ensemble members help: out-of-fold stacking of TF-IDF/SVM, MiniLM/LR and MiniLM kNN votes on one spec's split.

    .venv/bin/python scripts/stack_members.py evals/datasets/it_service_tickets.v1.yaml category 3 \\
        svm,lr_emb,knn10,knn30

An experiment, not part of the service: for every combination of the named members it fits the stacking scales on
out-of-fold scores (as EnsembleClassifier does for its two members), chooses the abstention threshold on them, and
prints test accuracy, precision and coverage at that threshold, and the best coverage any threshold reaches on the
test rows. Embeddings are cached in /tmp/stack_members/. Results of 2026-12-02 are in evals/reports/members.md.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.calibration import choose_threshold  # noqa: E402
from agents.text_models import _expand, _nll, linear_scores, log_proba, softmax, tfidf_features, transform  # noqa: E402
from evals.specs import load_spec, load_split  # noqa: E402
from retrieval.embedders import make_embedder  # noqa: E402


def knn_log_votes(fit: np.ndarray, fit_y: np.ndarray, query: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """log of the k nearest neighbours' votes (cosine, weighted by exp(10 * similarity)), smoothed."""
    index = faiss.IndexFlatIP(fit.shape[1])
    index.add(np.ascontiguousarray(fit, dtype=np.float32))
    sims, ids = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
    votes = np.full((len(query), n_classes), 1e-3)
    for j in range(k):
        np.add.at(votes, (np.arange(len(query)), fit_y[ids[:, j]]), np.exp(10 * sims[:, j]))
    return np.log(votes / votes.sum(axis=1, keepdims=True))


def main(spec_path: str, field: str, folds: int, names: list[str]) -> None:
    spec = load_spec(spec_path, ROOT)
    data = load_split(spec)
    train, test = data.train, data.test
    cache = Path("/tmp/stack_members") / f"{spec.id}.npz"
    if cache.exists():
        saved = np.load(cache)
        v_train, v_test = saved["train"], saved["test"]
    else:
        embedder = make_embedder("minilm", "auto")
        v_train = embedder.embed([t or " " for t in train.texts])
        v_test = embedder.embed([t or " " for t in test.texts])
        cache.parent.mkdir(exist_ok=True)
        np.savez(cache, train=v_train, test=v_test)
    y_train, y_test = np.array(train.labels[field], dtype=str), np.array(test.labels[field], dtype=str)
    classes = np.unique(y_train)
    y = np.searchsorted(classes, y_train)
    features = tfidf_features().fit(train.texts)
    views = {"tfidf": (transform(features, train.texts), transform(features, test.texts)), "emb": (v_train, v_test)}
    heads = {
        "svm": (lambda: LinearSVC(C=0.5), "tfidf"),
        "lr_emb": (lambda: LogisticRegression(C=20.0, max_iter=3000), "emb"),
    }

    def scores(head, X):  # type: ignore[no-untyped-def]
        if isinstance(head, LogisticRegression):
            return _expand(log_proba(head, X), head.classes_, classes, np.log(1e-9))
        return _expand(linear_scores(head, X), head.classes_, classes, -10.0)

    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=42).split(np.zeros(len(y)), y))
    oof: dict[str, np.ndarray] = {}
    on_test: dict[str, np.ndarray] = {}
    for name in names:
        started = time.perf_counter()
        oof[name] = np.zeros((len(y), len(classes)))
        if name.startswith("knn"):
            k = int(name[3:] or 10)
            for a, b in splits:
                oof[name][b] = knn_log_votes(v_train[a], y[a], v_train[b], k, len(classes))
            on_test[name] = knn_log_votes(v_train, y, v_test, k, len(classes))
        else:
            make, view = heads[name]
            X_train, X_test = views[view]
            for a, b in splits:
                oof[name][b] = scores(make().fit(X_train[a], y_train[a]), X_train[b])
            on_test[name] = scores(make().fit(X_train, y_train), X_test)
        accuracy = (classes[on_test[name].argmax(1)] == y_test).mean()
        print(f"{name}: alone {accuracy:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    for r in range(1, len(names) + 1):
        for combo in itertools.combinations(names, r):
            z = [oof[m] for m in combo]
            fit = minimize(
                lambda s: _nll(sum(si * zi for si, zi in zip(s, z, strict=True)), y),  # noqa: B023
                x0=np.ones(len(z)),
                bounds=[(0.0, 100.0)] * len(z),
                method="L-BFGS-B",
            )
            p_oof = softmax(sum(si * zi for si, zi in zip(fit.x, z, strict=True)))
            p_test = softmax(sum(si * on_test[m] for si, m in zip(fit.x, combo, strict=True)))
            choice = choose_threshold(p_oof.max(1), classes[p_oof.argmax(1)] == y_train, 0.9)
            correct = classes[p_test.argmax(1)] == y_test
            kept = p_test.max(1) >= choice.threshold
            precision = correct[kept].mean() if kept.any() else 0.0
            best = choose_threshold(p_test.max(1), correct, 0.9, min_support=1)
            print(
                f"{'+'.join(combo):24s} acc {correct.mean():.4f} precision {precision:.3f} coverage {kept.mean():.3f} "
                f"best coverage {best.coverage:.3f} scales {np.round(fit.x, 2).tolist()}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","))
