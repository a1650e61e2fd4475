"""Ensemble members: each scores texts from one view (TF-IDF, sentence vectors, neighbours, a fine-tuned encoder)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import faiss
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from agents.classical.field_tokens import found_tokens, one_hot
from agents.classical.finetune import FineTunedClassifier
from agents.classical.scores import expand, linear_scores, log_proba
from agents.errors import DataError


@dataclass
class Views:
    """The same rows seen three ways: raw texts, their TF-IDF matrix, their sentence vectors."""

    texts: list[str]
    tfidf: Any  # scipy CSR matrix, one row per text
    vectors: np.ndarray

    def rows(self, index: np.ndarray) -> Views:
        return Views([self.texts[i] for i in index], self.tfidf[index], self.vectors[index])


class Member(Protocol):
    """fit on some rows, then score any rows: one column per class of the ensemble, larger is likelier.

    `costly` members (a fine-tuned encoder) are trained once on a hold-out split instead of once per fold.
    `max_scale` bounds the stacking weight the ensemble may give this member.
    """

    name: str
    costly: bool
    max_scale: float

    def fit(self, views: Views, labels: np.ndarray) -> Member: ...

    def scores(self, views: Views, classes: np.ndarray) -> np.ndarray: ...


def title_of(text: str) -> str:
    """The first line of `title\nbody` (ticket_text); '' for a text of one line (no title, or no body)."""
    return text.split("\n", 1)[0] if "\n" in text else ""


class SvmMember:
    """Linear SVM margins over the TF-IDF word + char n-grams; `svmt` adds a word 1-2 gram block of the title alone."""

    costly = False
    max_scale = 100.0

    def __init__(self, C: float = 0.5, title: bool = False) -> None:
        self.C = C
        self.title = title
        self.name = "svmt" if title else "svm"

    def _matrix(self, views: Views) -> Any:
        block: TfidfVectorizer | None = getattr(self, "title_", None)
        if block is None:
            return views.tfidf
        return sparse.hstack([views.tfidf, block.transform([title_of(t) for t in views.texts])]).tocsr()

    def fit(self, views: Views, labels: np.ndarray) -> SvmMember:
        titles = [title_of(t) for t in views.texts]
        self.title_: TfidfVectorizer | None = None
        if self.title and any(re.search(r"\w\w", t) for t in titles):
            self.title_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(titles)
        self.head_ = LinearSVC(C=self.C).fit(self._matrix(views), labels)
        return self

    def scores(self, views: Views, classes: np.ndarray) -> np.ndarray:
        return expand(linear_scores(self.head_, self._matrix(views)), self.head_.classes_, classes, -10.0)


class LogRegMember:
    """Logistic regression over the sentence vectors, plus one-hot columns for any intake-field tokens the
    training texts carry (field_tokens.py; none for plain tickets); scores are log-probabilities."""

    costly = False
    max_scale = 10.0

    def __init__(self, C: float = 20.0) -> None:
        self.C = C
        self.name = "lr"

    def _matrix(self, views: Views) -> np.ndarray:
        vocabulary = getattr(self, "fields_", [])  # models saved before intake fields have none
        return np.hstack([views.vectors, one_hot(views.texts, vocabulary)]) if vocabulary else views.vectors

    def fit(self, views: Views, labels: np.ndarray) -> LogRegMember:
        self.fields_ = found_tokens(views.texts)
        self.head_ = LogisticRegression(C=self.C, max_iter=3000).fit(self._matrix(views), labels)
        return self

    def scores(self, views: Views, classes: np.ndarray) -> np.ndarray:
        return expand(log_proba(self.head_, self._matrix(views)), self.head_.classes_, classes, np.log(1e-9))


class KnnMember:
    """A vote of the k most similar training texts (cosine of sentence vectors), weighted by exp(sharpness x sim)."""

    costly = False
    max_scale = 10.0

    def __init__(self, k: int = 10, sharpness: float = 10.0) -> None:
        self.k = k
        self.sharpness = sharpness
        self.name = f"knn{k}"

    def fit(self, views: Views, labels: np.ndarray) -> KnnMember:
        self.vectors_ = np.ascontiguousarray(views.vectors, dtype=np.float32)
        self.labels_ = np.asarray(labels, dtype=str)
        self._index: Any = None
        return self

    def _search(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:  # built on first use: FAISS indexes are not pickled, the vectors are
            self._index = faiss.IndexFlatIP(self.vectors_.shape[1])
            self._index.add(self.vectors_)
        k = min(self.k, len(self.labels_))
        sims, ids = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return sims, ids

    def scores(self, views: Views, classes: np.ndarray) -> np.ndarray:
        sims, ids = self._search(views.vectors)
        votes = np.full((len(views.texts), len(classes)), 1e-3)
        column = np.searchsorted(classes, self.labels_)  # the ensemble's classes include every training label
        rows = np.arange(len(views.texts))
        for j in range(ids.shape[1]):
            hit = ids[:, j] >= 0
            np.add.at(votes, (rows[hit], column[ids[hit, j]]), np.exp(self.sharpness * sims[hit, j]))
        return np.log(votes / votes.sum(axis=1, keepdims=True))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_index": None}


class FineTunedMember:
    """MiniLM fine-tuned end to end on the labels (classical/finetune.py); costly: trained once on a hold-out split."""

    costly = True
    max_scale = 10.0

    def __init__(self, epochs: float = 1.0) -> None:
        self.epochs = epochs
        self.name = f"ft{epochs:g}"

    def fit(self, views: Views, labels: np.ndarray) -> FineTunedMember:
        self.model_ = FineTunedClassifier(epochs=self.epochs).fit(views.texts, list(labels))
        return self

    def scores(self, views: Views, classes: np.ndarray) -> np.ndarray:
        return expand(self.model_.decision(views.texts), self.model_.classes_, classes, np.log(1e-9))


_MEMBER = re.compile(r"(svmt|svm|lr|knn|ft)(\d+(?:\.\d+)?)?")


def parse_members(spec: str) -> list[Member]:
    """'svm,lr,knn10,ft1' -> fresh, unfitted members; svmt is svm plus a title block, knnK takes K neighbours,
    ftE fine-tunes for E epochs."""
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise DataError("members", "name at least one ensemble member, e.g. 'svm,lr'")
    members: list[Member] = []
    for name in names:
        match = _MEMBER.fullmatch(name)
        if match is None:
            raise DataError(
                "members", f"unknown member {name!r}: expected svm, svmt, lr, knnK (e.g. knn10) or ftE (ft1)"
            )
        kind, number = match.group(1), match.group(2)
        if kind in ("svm", "svmt", "lr") and number:
            raise DataError("members", f"{kind} takes no number, got {name!r}")
        if kind in ("svm", "svmt"):
            members.append(SvmMember(title=kind == "svmt"))
        elif kind == "lr":
            members.append(LogRegMember())
        elif kind == "knn":
            members.append(KnnMember(int(float(number or 10))))
        else:
            members.append(FineTunedMember(float(number or 1)))
    if len({m.name for m in members}) != len(members):
        raise DataError("members", f"a member is named twice in {spec!r}")
    return members
