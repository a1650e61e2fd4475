"""Cluster abstained tickets by meaning and describe each cluster: size, growth, distinctive words, examples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from agents.digest.models import NO_TEAM
from agents.digest.themes import TOKEN, clip, top_terms
from agents.novelty.models import (
    DEFAULT_DISTANCE,
    GROWTH_DAYS,
    HASHING_DISTANCE,
    MIN_SIZE,
    AbstainedTicket,
    Example,
    NewCategory,
)

Algorithm = Literal["agglomerative", "hdbscan"]
ALGORITHMS: tuple[Algorithm, ...] = ("agglomerative", "hdbscan")
TITLE_CHARS = 80


def default_distance(embedder_name: str) -> float:
    """The clustering distance for an embedder's vectors: the hashing embedder's, else MiniLM's."""
    return HASHING_DISTANCE if embedder_name.startswith("hashing") else DEFAULT_DISTANCE


def cluster_groups(
    vectors: np.ndarray,
    *,
    min_size: int = MIN_SIZE,
    algorithm: Algorithm = "agglomerative",
    distance: float = DEFAULT_DISTANCE,
) -> list[np.ndarray]:
    """Row numbers of each cluster of at least `min_size` rows, biggest first (ties: earliest row first).

    agglomerative: average linkage on cosine distance, merged while under `distance` (as the digest's themes);
    hdbscan: density-based, `min_size` is its smallest cluster and `distance` is not used."""
    if min_size < 2:
        raise ValueError(f"min_size must be at least 2 (a category of one ticket is not a category), got {min_size}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown clustering algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    if len(vectors) < min_size:
        return []
    if algorithm == "hdbscan":
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN(min_cluster_size=min_size, metric="cosine", copy=True).fit_predict(vectors)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(
            n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
        ).fit_predict(vectors)
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels) if label >= 0]
    return sorted((g for g in groups if len(g) >= min_size), key=lambda g: (-len(g), int(g[0])))


def distinctive_words(
    texts: Sequence[str], groups: list[np.ndarray], background: Sequence[str] = (), k: int = 3
) -> list[list[str]]:
    """Per group of `texts`, the `k` terms its tickets use far more than all the other tickets (the rest of `texts`
    and `background`): the themes' top terms, weighted by how much more often the group uses each."""
    if not groups:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = [*texts, *background]
    vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), token_pattern=TOKEN, sublinear_tf=True)
    try:
        tfidf = vectorizer.fit_transform(corpus).tocsr()
    except ValueError:  # nothing but stop words and numbers
        return [[] for _ in groups]
    vocabulary = vectorizer.get_feature_names_out()
    having = np.asarray((tfidf > 0).sum(axis=0)).ravel()
    out = []
    for rows in groups:
        block = tfidf[rows].toarray()
        present = block > 0
        others = max(len(corpus) - len(rows), 1)
        outside = (having - present.sum(axis=0)) / others
        out.append(top_terms(block, present, vocabulary, k, background=outside))
    return out


def nearest_centre(vectors: np.ndarray, rows: np.ndarray, n: int) -> list[int]:
    """The `n` rows of a group closest (cosine) to the group's mean direction: its most typical members."""
    block = vectors[rows].astype(np.float64)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    block = block / np.where(norms == 0, 1.0, norms)
    centre = block.mean(axis=0)
    order = np.argsort(-(block @ centre), kind="stable")
    return [int(rows[i]) for i in order[:n]]


def growth(created: Sequence[datetime], now: datetime, days: int = GROWTH_DAYS) -> tuple[int, int]:
    """(tickets in the last `days` up to `now`, tickets in the `days` before those)."""
    window = timedelta(days=days)
    recent = sum(now - window < c <= now for c in created)
    previous = sum(now - 2 * window < c <= now - window for c in created)
    return recent, previous


def find_new_categories_in(
    tickets: Sequence[AbstainedTicket],
    vectors: np.ndarray,
    *,
    now: datetime,
    background: Sequence[str] = (),
    min_size: int = MIN_SIZE,
    algorithm: Algorithm = "agglomerative",
    distance: float = DEFAULT_DISTANCE,
    growth_days: int = GROWTH_DAYS,
    words: int = 3,
    examples: int = 3,
) -> list[NewCategory]:
    """Clusters of at least `min_size` abstained tickets, biggest first, each described.

    `vectors` are the tickets' embeddings (row i is ticket i); `background` is the text of the period's other
    tickets, against which a cluster's words are distinctive. A cluster is growing when more of its tickets came in
    the last `growth_days` (to `now`) than in the `growth_days` before."""
    if len(vectors) != len(tickets):
        raise ValueError(f"{len(tickets)} tickets but {len(vectors)} vectors: one vector per ticket")
    groups = cluster_groups(np.asarray(vectors), min_size=min_size, algorithm=algorithm, distance=distance)
    texts = [t.text for t in tickets]
    terms = distinctive_words(texts, groups, background, words)
    found = []
    for rows, group_words in zip(groups, terms, strict=True):
        members = sorted((tickets[i] for i in rows), key=lambda t: (t.created_at, t.id), reverse=True)
        recent, previous = growth([t.created_at for t in members], now, growth_days)
        typical = [tickets[i] for i in nearest_centre(vectors, rows, examples)]
        found.append(
            NewCategory(
                size=len(rows),
                recent=recent,
                previous=previous,
                growing=recent > previous,
                growth_days=growth_days,
                words=group_words,
                examples=[Example(id=t.id, title=clip(t.title or t.text, TITLE_CHARS)) for t in typical],
                ticket_ids=[t.id for t in members],
                teams=dict(Counter(t.team or NO_TEAM for t in members).most_common()),
            )
        )
    return found
