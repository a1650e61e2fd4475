"""Text classifiers behind one interface: TF-IDF, sentence embeddings, and their calibrated ensemble."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from agents.calibration import ThresholdChoice, choose_threshold
from agents.errors import DataError
from retrieval.embedders import Embedder


class TextClassifier(Protocol):
    """fit on texts (and optional precomputed embeddings); probabilities in the order of classes_."""

    classes_: np.ndarray

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> Any: ...

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray: ...


def check_labels(labels: list[str]) -> np.ndarray:
    classes = np.unique(np.asarray(labels, dtype=object).astype(str))
    if len(classes) < 2:
        raise DataError("labels", f"need at least 2 classes to learn from, got {len(classes)}: {list(classes)}")
    return classes


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def transform(features: FeatureUnion, texts: list[str]) -> Any:
    """`features.transform(texts)` without the FeatureUnion's joblib dispatch (same matrix, a millisecond less)."""
    return sparse.hstack([t.transform(texts) for _, t in features.transformer_list]).tocsr()


def linear_scores(head: Any, X: Any) -> np.ndarray:
    """A fitted linear model's `decision_function(X)` without sklearn's per-call input checks (same numbers)."""
    scores = np.asarray(X @ head.coef_.T) + head.intercept_
    return scores.ravel() if scores.shape[1] == 1 else scores


def log_proba(head: LogisticRegression, X: Any) -> np.ndarray:
    """log of `predict_proba(X) + 1e-9` for a fitted logistic regression, computed from `linear_scores`."""
    scores = linear_scores(head, X)
    if scores.ndim == 1:  # binary: sklearn's probability of the positive class is the logistic of the score
        positive = 1.0 / (1.0 + np.exp(-scores))
        return np.log(np.column_stack([1.0 - positive, positive]) + 1e-9)
    return np.log(softmax(scores) + 1e-9)


def _expand(scores: np.ndarray, model_classes: np.ndarray, classes: np.ndarray, fill: float) -> np.ndarray:
    """Put a model's columns in the order of `classes`; classes it never saw get `fill`."""
    if scores.ndim == 1:  # binary decision_function: one column for the positive class
        scores = np.column_stack([-scores, scores])
    out = np.full((scores.shape[0], len(classes)), fill, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for j, cls in enumerate(model_classes):
        out[:, index[cls]] = scores[:, j]
    return out


def tfidf_features(max_features: int = 300_000) -> FeatureUnion:
    """Word 1-2 grams and character 2-5 grams, sublinear TF-IDF."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, max_features=max_features
                ),
            ),
        ]
    )


class TfidfClassifier:
    """TF-IDF word + char n-grams and a linear SVM; probabilities are a softmax of the margins."""

    name = "tfidf"

    def __init__(self, C: float = 0.5, max_features: int = 300_000) -> None:
        self.C = C
        self.max_features = max_features

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> TfidfClassifier:
        check_labels(labels)
        self.features_ = tfidf_features(self.max_features).fit(texts)
        self.head_ = LinearSVC(C=self.C).fit(self.features_.transform(texts), np.asarray(labels, dtype=str))
        self.classes_ = self.head_.classes_
        return self

    def decision(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        return _expand(self.head_.decision_function(self.features_.transform(texts)), self.classes_, self.classes_, 0.0)

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        return softmax(self.decision(texts) * 5.0)


class EmbeddingClassifier:
    """Sentence embeddings (any Embedder) + logistic regression; vectors may be passed in."""

    name = "embedding"

    def __init__(self, embedder: Embedder | None, C: float = 20.0) -> None:
        self.embedder = embedder
        self.C = C

    def _vectors(self, texts: list[str], vectors: np.ndarray | None) -> np.ndarray:
        if vectors is not None:
            return vectors
        if self.embedder is None:
            raise RuntimeError("EmbeddingClassifier has no embedder: call attach() after loading")
        return self.embedder.embed(texts)

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> EmbeddingClassifier:
        check_labels(labels)
        self.head_ = LogisticRegression(C=self.C, max_iter=3000).fit(
            self._vectors(texts, vectors), np.asarray(labels, dtype=str)
        )
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.head_.predict_proba(self._vectors(texts, vectors)))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "embedder": None}  # weights are never pickled


def _nll(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


class EnsembleClassifier:
    """TF-IDF/SVM margins and embedding/LR log-probabilities, stacked as softmax(a*z1 + b*z2).

    The two scales are fitted on out-of-fold scores (every row scored by models that never saw it),
    which also calibrates the result. fit() keeps those held-out probabilities in `oof_proba_` so
    abstention thresholds are chosen on unseen rows; then both members are refitted on all rows.
    TF-IDF vocabulary and IDF are learned once on all training texts (no labels involved).
    """

    name = "ensemble"

    def __init__(
        self,
        embedder: Embedder | None,
        folds: int = 5,
        seed: int = 42,
        svm_C: float = 0.5,
        embedding_C: float = 20.0,
        max_features: int = 300_000,
        features: FeatureUnion | None = None,
    ) -> None:
        self.embedder = embedder
        self.features = features  # a TF-IDF featuriser already fitted on the same texts, shared between fields
        self.folds = folds
        self.seed = seed
        self.svm_C = svm_C
        self.embedding_C = embedding_C
        self.max_features = max_features

    def _heads(self) -> list[Callable[[], Any]]:
        return [lambda: LinearSVC(C=self.svm_C), lambda: LogisticRegression(C=self.embedding_C, max_iter=3000)]

    @staticmethod
    def _scores(head: Any, X: Any, classes: np.ndarray) -> np.ndarray:
        if isinstance(head, LogisticRegression):
            return _expand(log_proba(head, X), head.classes_, classes, np.log(1e-9))
        return _expand(linear_scores(head, X), head.classes_, classes, -10.0)

    def _matrices(self, texts: list[str], vectors: np.ndarray | None, X: Any = None) -> list[Any]:
        if vectors is None:
            if self.embedder is None:
                raise RuntimeError("EnsembleClassifier has no embedder: call attach() after loading")
            vectors = self.embedder.embed(texts)
        return [transform(self.features_, texts) if X is None else X, vectors]

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> EnsembleClassifier:
        self.classes_ = check_labels(labels)
        y_text = np.asarray(labels, dtype=object).astype(str)
        y = np.searchsorted(self.classes_, y_text)
        self.features_ = self.features if self.features is not None else tfidf_features(self.max_features).fit(texts)
        matrices = self._matrices(texts, vectors)
        oof = [np.zeros((len(texts), len(self.classes_))) for _ in matrices]
        n_splits = int(max(2, min(self.folds, np.bincount(y).max())))
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.seed)
        for train, test in splitter.split(np.zeros(len(y)), y):
            for view, (make, X) in enumerate(zip(self._heads(), matrices, strict=True)):
                if len(np.unique(y[train])) < 2:
                    continue
                head = make().fit(X[train], y_text[train])
                oof[view][test] = self._scores(head, X[test], self.classes_)
        result = minimize(
            lambda ab: _nll(ab[0] * oof[0] + ab[1] * oof[1], y),
            x0=np.array([1.0, 1.0]),
            bounds=[(0.0, 100.0), (0.0, 10.0)],
            method="L-BFGS-B",
        )
        self.scales_ = [float(v) for v in result.x]
        self.oof_proba_ = softmax(self.scales_[0] * oof[0] + self.scales_[1] * oof[1])
        self.heads_ = [make().fit(X, y_text) for make, X in zip(self._heads(), matrices, strict=True)]
        return self

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None, X: Any = None) -> np.ndarray:
        """Probabilities; `X` is `features_.transform(texts)` when the caller already computed it."""
        matrices = self._matrices(texts, vectors, X)
        logits = sum(
            scale * self._scores(head, X, self.classes_)
            for scale, head, X in zip(self.scales_, self.heads_, matrices, strict=True)
        )
        return softmax(np.asarray(logits))

    def oof_threshold(self, labels: list[str], target: float) -> ThresholdChoice:
        """The abstention threshold for `target` precision, chosen on the out-of-fold predictions of fit(labels)."""
        predicted = self.classes_[self.oof_proba_.argmax(axis=1)]
        return choose_threshold(self.oof_proba_.max(axis=1), predicted == np.asarray(labels, dtype=str), target)

    def attach(self, embedder: Embedder) -> EnsembleClassifier:
        """Give a loaded model its embedder back (it is never pickled)."""
        self.embedder = embedder
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "embedder": None}
        state.pop("oof_proba_", None)
        return state
