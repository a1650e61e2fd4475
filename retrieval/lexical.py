"""BM25 lexical index over chunk texts, as one sparse matrix so a query is a single product."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

TOKEN_PATTERN = r"(?u)\b\w[\w\-]*\w\b|\b\w\b"


class Bm25Index:
    """Okapi BM25 (k1, b) with the usual idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b

    def fit(self, texts: list[str]) -> Bm25Index:
        self.vectorizer_ = CountVectorizer(token_pattern=TOKEN_PATTERN, lowercase=True, dtype=np.float32)
        if not texts:  # no documents (a helpdesk with no SOPs yet): every query scores nothing
            self.vectorizer_.vocabulary_ = {}
            self.weights_ = sparse.csr_matrix((0, 0), dtype=np.float32)
            return self
        tf = sparse.csr_matrix(self.vectorizer_.fit_transform(texts), dtype=np.float32)
        n_docs = tf.shape[0]
        df = np.bincount(tf.indices, minlength=tf.shape[1])
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        norm = self.k1 * (1 - self.b + self.b * lengths / max(lengths.mean(), 1e-9))
        weights = tf.copy()
        rows = np.repeat(np.arange(n_docs), np.diff(tf.indptr))
        weights.data = tf.data * (self.k1 + 1) / (tf.data + norm[rows]) * idf[tf.indices]
        self.weights_ = weights.T.tocsr()  # terms x docs: a query selects rows
        return self

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for the query (zeros when no term is known)."""
        vocab = self.vectorizer_.vocabulary_
        analyse = self.vectorizer_.build_analyzer()
        terms = sorted({vocab[t] for t in analyse(query) if t in vocab})
        if not terms:
            return np.zeros(self.weights_.shape[1], dtype=np.float32)
        return np.asarray(self.weights_[terms].sum(axis=0)).ravel()
