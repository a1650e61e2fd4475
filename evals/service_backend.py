"""The whole TriageService as an eval backend, classifying classically, by cascade, or by the LLM alone."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from evals.backends import Prediction, RowOutput
from evals.specs import Table
from retrieval.embedders import Embedder

Policy = Literal["classical", "cascade", "llm"]
FIELDS = ("category", "priority", "team")


def build_service_from(
    rows: list[dict[str, Any]],
    embedder: Embedder,
    settings: Any,
    *,
    policy: Policy = "classical",
    chat: Any = None,
    folds: int = 5,
) -> Any:
    """A TriageService over the settings' knowledge base, trained in memory on `rows` (nothing is saved).

    cascade: the classical answer, and the LLM for fields under their threshold (agents.policy.CascadeClassifier);
    llm: the LLM alone for category and priority, so its failures stay failures (no fallback hides them).
    """
    from agents.classify import ClassicalClassifier
    from agents.route import Router
    from agents.service import TriageService
    from agents.training import train_models
    from kb.loader import load_kb
    from retrieval.corpus import load_chunks
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    kb = load_kb(settings.kb_dir)
    models = train_models(rows, embedder, kb, target=settings.precision_target, folds=folds)
    index = SopIndex.build(load_chunks(settings.kb_dir / "sops"), embedder)
    classifier: Any = ClassicalClassifier(models.fields["category"], models.fields["priority"])
    if policy != "classical":
        from agents.llm_classify import ExampleBank, LlmClassifier
        from agents.policy import CascadeClassifier, CircuitBreaker

        llm = LlmClassifier(chat, kb.taxonomy, examples=ExampleBank.from_rows(rows))
        if policy == "llm":
            classifier = llm
        else:
            thresholds = {f: models.thresholds[f].threshold for f in ("category", "priority")}
            breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
            classifier = CascadeClassifier(classifier, llm, thresholds, breaker=breaker)
    budget = settings.llm_timeout if policy != "classical" else None
    return TriageService(kb, models, embedder, classifier, Router(kb), HybridSearcher(index), llm_budget=budget)


class ServiceBackend:
    """Trains the service on the training rows; scores category, priority (after the rules) and team (routing)."""

    def __init__(
        self, embedder: Embedder, settings: Any, *, policy: Policy = "classical", chat: Any = None, folds: int = 5
    ) -> None:
        self.embedder = embedder
        self.folds = folds
        self.settings = settings
        self.policy = policy
        self.chat = chat
        self.name: str = "service" if policy == "classical" else policy
        self.batch_size = 64 if policy == "classical" else 1  # one LLM ticket at a time: its latency is the row's
        self.thresholds: dict[str, float] = {}
        self.service: Any = None

    def fit(self, train: Table, vectors: np.ndarray | None) -> None:
        rows = [{**r, "id": str(r.get("id") or f"train-{i}")} for i, r in enumerate(train.rows)]
        for i, row in enumerate(rows):
            row.update({f: train.labels[f][i] for f in train.labels})
        self.service = build_service_from(
            rows, self.embedder, self.settings, policy=self.policy, chat=self.chat, folds=self.folds
        )
        self.thresholds = {f: c.threshold for f, c in self.service.models.thresholds.items() if f in train.labels}

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        from agents.types import Ticket

        tickets = [
            Ticket(title=str(r.get("title") or ""), body=str(r.get("body") or t))
            for r, t in zip(rows, texts, strict=True)
        ]
        out = []
        for res in self.service.triage_batch(tickets):
            calls = [c for c in res.llm_calls if c.task == "classify"]
            fields = {
                f: Prediction(getattr(res, f), float(res.confidence[f]), res.backend[f])
                for f in FIELDS
                if f in self.thresholds
            }
            tokens = sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in calls)
            out.append(RowOutput(fields, llm_calls=len(calls), tokens=tokens))
        return out
