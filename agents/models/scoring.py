"""Per-field accuracy of a model set on labelled rows, deciding each field as the service's classical path does."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.classical.text_models import transform
from agents.classical.training import FIELDS, NEIGHBOURS, TriageModels, row_text
from agents.priority_rules import PriorityRules
from agents.route import Router
from agents.types import FieldDecision, ticket_text
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder


class CachedEmbedder:
    """An embedder that remembers the vector of every text it embedded: the gate trains several model sets on
    overlapping rows, and embedding is the costly step. Same name and vector space as the one it wraps."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self.inner.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


def predict_fields(
    models: TriageModels, rows: list[dict[str, Any]], kb: KnowledgeBase, embedder: Embedder
) -> dict[str, list[str]]:
    """Per field, the label the classical path gives each row: the category model's best label, the priority
    model's after the taxonomy's priority rules, and the team after routing (service mentions, similar tickets)."""
    if not rows:
        return {name: [] for name in FIELDS}
    texts = [ticket_text(r.get("title"), r.get("body")) for r in rows]
    read = [row_text(r, models.intake_fields) for r in rows]  # with the intake tokens the models were trained on
    vectors = embedder.embed([t or " " for t in read])
    tfidf = transform(models.fields["team"].features_, read)
    proba = {name: m.predict_proba(read, vectors, tfidf) for name, m in models.fields.items()}
    classes = {name: [str(c) for c in m.classes_] for name, m in models.fields.items()}
    rules, router = PriorityRules(kb.taxonomy), Router(kb)
    out: dict[str, list[str]] = {name: [] for name in FIELDS}
    for i, row in enumerate(rows):
        out["category"].append(classes["category"][int(np.argmax(proba["category"][i]))])
        top = np.argsort(-proba["priority"][i])[:3]
        priority = FieldDecision(
            label=classes["priority"][int(top[0])],
            confidence=round(float(proba["priority"][i][top[0]]), 4),
            backend="classical:ensemble",
            alternatives={classes["priority"][int(j)]: round(float(proba["priority"][i][j]), 4) for j in top},
        )
        out["priority"].append(rules.apply(texts[i], priority).label)
        neighbours = models.memory.search(vectors[i], NEIGHBOURS, exclude_id=str(row.get("id")))
        team_proba = dict(zip(classes["team"], (float(p) for p in proba["team"][i]), strict=True))
        out["team"].append(router.decide(texts[i], team_proba, neighbours)[0].label)
    return out


def field_accuracy(
    models: TriageModels, rows: list[dict[str, Any]], kb: KnowledgeBase, embedder: Embedder
) -> dict[str, float]:
    """Per field, the share of rows whose label the classical path gets right (0.0 for no rows)."""
    predicted = predict_fields(models, rows, kb, embedder)
    return {
        name: float(np.mean([p == str(r[name]) for p, r in zip(predicted[name], rows, strict=True)])) if rows else 0.0
        for name in FIELDS
    }
