"""Text classifiers behind one interface: TF-IDF, sentence embeddings, and their calibrated, stacked ensemble."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from agents.classical.calibration import ThresholdChoice, choose_threshold
from agents.classical.members import Member, Views, parse_members
from agents.classical.scores import check_labels, expand, softmax
from agents.settings import DEFAULT_MEMBERS
from retrieval.embedders import Embedder


def transform(features: FeatureUnion, texts: list[str]) -> Any:
    """`features.transform(texts)` without the FeatureUnion's joblib dispatch (same matrix, a millisecond less)."""
    return sparse.hstack([t.transform(texts) for _, t in features.transformer_list]).tocsr()


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
        return expand(self.head_.decision_function(self.features_.transform(texts)), self.classes_, self.classes_, 0.0)

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


def stack(weights: list[float], scores: list[np.ndarray]) -> np.ndarray:
    """sum w_i * scores_i: the ensemble's logits."""
    return np.asarray(np.sum([w * z for w, z in zip(weights, scores, strict=True)], axis=0))


def fit_scales(scores: list[np.ndarray], y: np.ndarray, bounds: list[float]) -> list[float]:
    """Weights w minimising the log-loss of softmax(sum w_i * scores_i): stacking and calibration in one."""
    result = minimize(
        lambda w: _nll(stack(list(w), scores), y),
        x0=np.ones(len(scores)),
        bounds=[(0.0, b) for b in bounds],
        method="L-BFGS-B",
    )
    return [float(v) for v in result.x]


def holdout_rows(y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows): stratified; classes with fewer than 2 rows stay on the fit side."""
    counts = np.bincount(y)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for cls in np.flatnonzero(counts >= 2):
        rows = rng.permutation(np.flatnonzero(y == cls))
        held.extend(rows[: max(1, int(round(share * len(rows))))])
    held_rows = np.sort(np.array(held, dtype=int))
    return np.setdiff1d(np.arange(len(y)), held_rows), held_rows


class EnsembleClassifier:
    """Members (TF-IDF/SVM, MiniLM/LR, optionally kNN votes and a fine-tuned MiniLM) stacked as softmax(sum w_i z_i).

    The weights are fitted on held-out scores (every row scored by models that never saw it), which also
    calibrates the result; fit() keeps those held-out probabilities in `oof_proba_` (for the rows `oof_rows_`) so
    abstention thresholds are chosen on unseen rows. Cheap members are cross-fitted over `folds` folds and then
    refitted on all rows. A costly member (fine-tuning) is trained once on all rows but a stratified `holdout`
    share; stacking and thresholds then use only that held-out share. The TF-IDF vocabulary and IDF are learned
    once on all training texts (no labels involved).
    """

    name = "ensemble"

    def __init__(
        self,
        embedder: Embedder | None,
        folds: int = 5,
        seed: int = 42,
        max_features: int = 300_000,
        features: FeatureUnion | None = None,
        members: str = DEFAULT_MEMBERS,
        holdout: float = 0.15,
    ) -> None:
        self.embedder = embedder
        self.features = features  # a TF-IDF featuriser already fitted on the same texts, shared between fields
        self.folds = folds
        self.seed = seed
        self.max_features = max_features
        self.members = members  # e.g. "svm,lr,knn10,ft1": see agents.members.parse_members
        self.holdout = holdout

    def _views(self, texts: list[str], vectors: np.ndarray | None, X: Any = None) -> Views:
        if vectors is None:
            if self.embedder is None:
                raise RuntimeError("EnsembleClassifier has no embedder: call attach() after loading")
            vectors = self.embedder.embed([t or " " for t in texts])
        return Views(texts, transform(self.features_, texts) if X is None else X, vectors)

    def fit(self, texts: list[str], labels: list[str], vectors: np.ndarray | None = None) -> EnsembleClassifier:
        self.classes_ = check_labels(labels)
        members = parse_members(self.members)
        y_text = np.asarray(labels, dtype=object).astype(str)
        y = np.searchsorted(self.classes_, y_text)
        self.features_ = self.features if self.features is not None else tfidf_features(self.max_features).fit(texts)
        views = self._views(texts, vectors)
        all_rows = np.arange(len(texts))
        fit_rows, held = holdout_rows(y, self.holdout, self.seed) if any(m.costly for m in members) else (all_rows,) * 2
        n_splits = int(max(2, min(self.folds, np.bincount(y).max())))
        folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.seed).split(all_rows, y))
        held_out: list[np.ndarray] = []
        self.members_: list[Member] = []
        for member in members:
            if member.costly:  # one fit on the fit rows, scored on the held-out rows; kept as it is
                fitted = member.fit(views.rows(fit_rows), y_text[fit_rows])
                held_out.append(fitted.scores(views.rows(held), self.classes_))
                self.members_.append(fitted)
                continue
            oof = np.zeros((len(texts), len(self.classes_)))
            for train, test in folds:
                if len(np.unique(y[train])) >= 2:
                    fold_model = copy.deepcopy(member).fit(views.rows(train), y_text[train])
                    oof[test] = fold_model.scores(views.rows(test), self.classes_)
            held_out.append(oof[held])
            self.members_.append(member.fit(views, y_text))
        self.scales_ = fit_scales(held_out, y[held], [m.max_scale for m in members])
        self.oof_rows_ = held
        self.oof_proba_ = softmax(stack(self.scales_, held_out))
        return self

    def predict_proba(self, texts: list[str], vectors: np.ndarray | None = None, X: Any = None) -> np.ndarray:
        """Probabilities; `X` is `features_.transform(texts)` when the caller already computed it."""
        views = self._views(texts, vectors, X)
        return softmax(stack(self.scales_, [m.scores(views, self.classes_) for m in self.members_]))

    def oof_threshold(self, labels: list[str], target: float) -> ThresholdChoice:
        """The abstention threshold for `target` precision, chosen on the held-out predictions of fit(labels)."""
        predicted = self.classes_[self.oof_proba_.argmax(axis=1)]
        truth = np.asarray(labels, dtype=str)[self.oof_rows_]
        return choose_threshold(self.oof_proba_.max(axis=1), predicted == truth, target, predicted=predicted)

    def attach(self, embedder: Embedder) -> EnsembleClassifier:
        """Give a loaded model its embedder back (it is never pickled)."""
        self.embedder = embedder
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "embedder": None}
        state.pop("oof_proba_", None)
        state.pop("oof_rows_", None)
        return state
