"""The eval backends by name: classical, the full service, the LLM policies and the TF-IDF + LR reference."""

from __future__ import annotations

from typing import Any

from agents.errors import BackendUnavailable
from agents.settings import Settings
from evals.backends import ClassicalBackend, TfidfLrBackend
from evals.llm_eval import make_backend as make_llm_backend
from evals.outputs import REFERENCE, EvalBackend, Skipped
from evals.service_backend import FIELDS, ServiceBackend
from evals.specs import DatasetSpec
from retrieval.embedders import Embedder


def _llm_backend(name: str, settings: Settings, embedder: Embedder, chat: Any) -> EvalBackend | Skipped:
    """`cascade` and `llm` (evals/llm_eval.py); without an LLM, or one that does not answer, they are skipped."""
    if chat is None and not settings.llm_model:
        return Skipped("no LLM configured: set TRIAGE_LLM_MODEL (and TRIAGE_LLM_BASE_URL for a local server)")
    try:
        backend: EvalBackend = make_llm_backend(name, settings=settings, embedder=embedder, chat=chat)
    except BackendUnavailable as exc:  # the endpoint is down or misconfigured
        return Skipped(str(exc))
    return backend


def _service(spec: DatasetSpec, settings: Settings, embedder: Embedder, folds: int | None) -> EvalBackend | Skipped:
    missing = set(FIELDS) - set(spec.labels)
    if not spec.kb or missing:
        return Skipped(f"the full service needs demo-taxonomy labels (spec kb: true) for {', '.join(FIELDS)}")
    return ServiceBackend(embedder, settings, folds=folds or spec.folds)


BACKEND_NAMES = ("classical", "service", "cascade", "llm", REFERENCE)


def make_backend(
    name: str,
    spec: DatasetSpec,
    *,
    settings: Settings,
    embedder: Embedder,
    folds: int | None = None,
    chat: Any = None,
) -> EvalBackend | Skipped:
    """The named backend for one data set, or the reason it cannot run there (never a stand-in)."""
    if name == "classical":
        return ClassicalBackend(
            embedder, folds=folds or spec.folds, target=settings.precision_target, members=settings.members
        )
    if name == REFERENCE:
        return TfidfLrBackend()
    if name == "service":
        return _service(spec, settings, embedder, folds)
    if name in ("cascade", "llm"):
        return _llm_backend(name, settings, embedder, chat)
    raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKEND_NAMES)}")
