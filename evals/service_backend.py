"""The whole TriageService (classical policy) as an eval backend: rules, routing, similar tickets, SOP search."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.settings import Settings
from evals.outputs import Prediction, RowOutput
from evals.specs import Table
from retrieval.embedders import Embedder

FIELDS = ("category", "priority", "team")


def build_service_from(
    rows: list[dict[str, Any]],
    embedder: Embedder,
    settings: Settings,
    *,
    folds: int = 5,
) -> Any:
    """A classical TriageService over the settings' knowledge base, trained in memory on `rows` (nothing saved).

    The LLM policies are evaluated by evals/llm_eval.py (the `llm` and `cascade` backends).
    """
    from agents.classical.training import train_models
    from agents.classify import ClassicalClassifier
    from agents.llm.factory import template_replies
    from agents.route import Router
    from agents.service import TriageService
    from kb.loader import load_kb
    from retrieval.corpus import load_chunks
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    kb = load_kb(settings.kb_dir)
    models = train_models(rows, embedder, kb, target=settings.precision_target, folds=folds, members=settings.members)
    index = SopIndex.build(load_chunks(settings.kb_dir / "sops"), embedder)
    classifier = ClassicalClassifier(models.fields["category"], models.fields["priority"])
    replies = template_replies(settings, kb, embedder)
    return TriageService(kb, models, embedder, classifier, Router(kb), HybridSearcher(index), reply_writer=replies)


class ServiceBackend:
    """Trains the service on the training rows; scores category, priority (after the rules) and team (routing)."""

    name = "service"
    batch_size = 64

    def __init__(self, embedder: Embedder, settings: Settings, *, folds: int = 5) -> None:
        self.embedder = embedder
        self.settings = settings
        self.folds = folds
        self.thresholds: dict[str, float] = {}
        self.service: Any = None

    def fit(self, train: Table, vectors: np.ndarray | None) -> None:
        rows = [{**r, "id": str(r.get("id") or f"train-{i}")} for i, r in enumerate(train.rows)]
        for i, row in enumerate(rows):
            row.update({f: train.labels[f][i] for f in train.labels})
        self.service = build_service_from(rows, self.embedder, self.settings, folds=self.folds)
        self.thresholds = {f: c.threshold for f, c in self.service.models.thresholds.items() if f in train.labels}

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        from agents.types import Ticket

        tickets = [
            Ticket(title=str(r.get("title") or ""), body=str(r.get("body") or t))
            for r, t in zip(rows, texts, strict=True)
        ]
        return [
            RowOutput(
                {
                    f: Prediction(getattr(res, f), float(res.confidence[f]), res.backend[f])
                    for f in FIELDS
                    if f in self.thresholds
                }
            )
            for res in self.service.triage_batch(tickets)
        ]
