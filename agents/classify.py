"""The classify interface (category and priority) and its classical implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.classical.text_models import EnsembleClassifier
from agents.redact import Redacted, prepare
from agents.types import Deadline, FieldDecision, LlmCall, SimilarTicket, Ticket
from retrieval.hybrid import Hit


@dataclass
class TicketContext:
    """What every backend may use: the text, its embedding, similar past tickets and SOP hits."""

    text: str
    vector: np.ndarray
    neighbours: list[SimilarTicket] = field(default_factory=list)
    kb_hits: list[Hit] = field(default_factory=list)
    tfidf: Any = None  # the shared TF-IDF row of `text`, when the models share one featuriser
    proba: dict[str, np.ndarray] = field(default_factory=dict)  # classical probabilities per field, computed in batch
    classes: dict[str, list[str]] = field(default_factory=dict)  # per field, the labels in the order of `proba`
    deadline: Deadline | None = None  # by when every LLM call for this ticket must be done

    def classical_probability(self, field_name: str, label: str) -> float | None:
        """The classical model's probability of `label` for the field, when the batch computed it (else None)."""
        proba, classes = self.proba.get(field_name), self.classes.get(field_name)
        if proba is None or not classes or label not in classes:
            return None
        return round(float(proba[classes.index(label)]), 4)

    @cached_property
    def redacted(self) -> Redacted:
        """The text as it may leave for an LLM: cut and redacted once, shared by every LLM call of the ticket."""
        return prepare(self.text)


class Classification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: FieldDecision
    priority: FieldDecision
    llm_calls: list[LlmCall] = []


class Classifier(Protocol):
    """One interface, many backends: classical, LLM, fallback and cascade all look like this."""

    name: str

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification: ...


def decide(
    model: EnsembleClassifier, context: TicketContext, backend: str, field_name: str = "", top: int = 3
) -> FieldDecision:
    proba = context.proba.get(field_name)
    if proba is None:
        proba = model.predict_proba([context.text], context.vector.reshape(1, -1), context.tfidf)[0]
    order = np.argsort(-proba)
    alternatives = {str(model.classes_[i]): round(float(proba[i]), 4) for i in order[:top]}
    best = int(order[0])
    return FieldDecision(
        label=str(model.classes_[best]),
        confidence=round(float(proba[best]), 4),
        backend=backend,
        alternatives=alternatives,
    )


class ClassicalClassifier:
    """TF-IDF + MiniLM ensembles, calibrated; needs no LLM."""

    name = "classical:ensemble"

    def __init__(self, category: EnsembleClassifier, priority: EnsembleClassifier) -> None:
        self.category = category
        self.priority = priority

    def classify(self, ticket: Ticket, context: TicketContext) -> Classification:
        return Classification(
            category=decide(self.category, context, self.name, "category"),
            priority=decide(self.priority, context, self.name, "priority"),
        )
