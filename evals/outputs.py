"""What an eval backend returns for one ticket, and the interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from evals.specs import Table

REFERENCE = "tfidf_lr"


@dataclass
class Prediction:
    label: str
    confidence: float
    decided_by: str  # the backend that answered this field (e.g. classical:ensemble, llm:qwen)
    ranked: tuple[str, ...] = ()  # the classical model's most likely labels, best first (the cascade's top-k guard)


@dataclass
class RowOutput:
    """One ticket's answer: a prediction per field, and what it cost. A missing field counts as a failure."""

    fields: dict[str, Prediction] = field(default_factory=dict)
    llm_calls: int = 0
    tokens: int = 0
    error: str | None = None


class EvalBackend(Protocol):
    """What the runner scores. `thresholds` (field -> abstention threshold) must be chosen on training rows only.

    The names `llm` and `cascade` come from evals/llm_eval.py; a BackendUnavailable there reports them as skipped.
    """

    name: str
    batch_size: int

    @property
    def thresholds(self) -> dict[str, float]: ...

    def fit(self, train: Table, vectors: np.ndarray | None) -> None: ...

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]: ...


@dataclass
class Skipped:
    reason: str
