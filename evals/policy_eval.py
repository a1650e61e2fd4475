"""One LLM policy (llm_first or cascade) scored on a held-out split, with the figures the policy report quotes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agents.classical.calibration import ThresholdChoice
from agents.classical.text_models import EnsembleClassifier
from agents.llm.chat import ChatModel
from agents.policy import CircuitBreaker
from evals.backends import ClassicalBackend
from evals.llm_eval import LlmPolicyBackend
from evals.metrics import classification_report, latency_summary
from evals.outputs import RowOutput
from evals.specs import Table
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder
from retrieval.hybrid import HybridSearcher


def policy_figures(name: str, outputs: list[RowOutput], test: Table, latency: list[float], stats: dict) -> dict:
    """Accuracy and macro-F1 per field, who decided, latency, and (for LLM policies) calls, fallbacks, JSON validity."""
    n = len(outputs)
    out: dict[str, Any] = {"policy": name, "n": n, **latency_summary(latency)}
    out["latency_ms_mean"] = round(sum(latency) / n, 1) if n else None
    for field in test.labels:
        pred = [o.fields[field].label if field in o.fields else "<failed>" for o in outputs]
        report = classification_report(test.labels[field][:n], pred)
        out[field] = {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4)}
        decided = [o.fields[field].decided_by for o in outputs if field in o.fields]
        out[field]["decided_by"] = {b: decided.count(b) for b in sorted(set(decided))}
    if stats:
        answered = stats.get("valid_first_try", 0) + stats.get("valid_after_reask", 0) + stats.get("invalid", 0)
        out.update(
            tickets_to_llm_per_100=round(100 * stats.get("llm_tickets", 0) / n, 1) if n else 0,
            llm_calls_per_100=round(100 * stats.get("llm_requests", 0) / n, 1) if n else 0,
            fallback_rate=round(stats.get("fallbacks", 0) / n, 4) if n else 0,
            json_valid_first_try=round(stats.get("valid_first_try", 0) / answered, 4) if answered else None,
            json_valid_after_reask=round((answered - stats.get("invalid", 0)) / answered, 4) if answered else None,
            stats=dict(stats),
        )
    return out


def alone(outputs: list[RowOutput]) -> list[RowOutput]:
    """The LLM without its fallback: a ticket the LLM failed on is a failed row (scored wrong)."""
    return [RowOutput() if any("(fallback)" in p.decided_by for p in o.fields.values()) else o for o in outputs]


def evaluate_policy(
    policy: str,
    chat: ChatModel,
    train: Table,
    test: Table,
    embedder: Embedder,
    *,
    model: EnsembleClassifier,
    choice: ThresholdChoice,
    train_vectors: Any,
    kb: KnowledgeBase | None = None,
    searcher: HybridSearcher | None = None,
    top_k: int = 2,
    max_share: float = 0.3,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score `policy` ("llm": llm_first, plus the LLM alone; or "cascade") with an already fitted classical model.

    `train` and `test` hold one label field, the one `model` was fitted on. Ctrl-C stops early: the tickets scored
    so far are reported, with `partial` true.
    """
    if policy not in ("llm", "cascade") or len(train.labels) != 1:
        raise ValueError(f"policy must be llm or cascade with one label field, got {policy!r}, {list(train.labels)}")
    field = next(iter(train.labels))
    classical = ClassicalBackend(embedder, target=choice.target_precision)
    classical.models[field], classical.choices[field] = model, choice
    cascade = policy == "cascade"
    backend = LlmPolicyBackend(
        "cascade" if cascade else "llm_first",
        chat,
        embedder,
        kb=kb,
        searcher=searcher,
        classical=classical,
        breaker=CircuitBreaker(),
        top_k=top_k if cascade else 0,
        max_share=max_share if cascade else 1.0,
    )
    backend.fit(train, train_vectors)
    outputs: list[RowOutput] = []
    started = time.perf_counter()
    try:
        for i, (row, text) in enumerate(zip(test.rows, test.texts, strict=True), 1):
            outputs.extend(backend.predict([row], [text]))
            if progress is not None:
                progress(i, len(test))
    except KeyboardInterrupt:
        pass
    n = len(outputs)
    name = "cascade" if cascade else "llm_first"
    result: dict[str, Any] = {
        "policy": name,
        "model": chat.name,
        "n_test": n,
        "partial": n < len(test),
        "seconds": round(time.perf_counter() - started, 1),
        "cascade_threshold": backend.cascade_thresholds.get(field) if cascade else None,
        "top_k": backend.top_k,
        "max_share": backend.max_share,
        name: policy_figures(name, outputs, test, backend.latency_ms[:n], backend.stats),
    }
    if not cascade:
        result["llm_alone"] = policy_figures("llm_alone", alone(outputs), test, backend.latency_ms[:n], {})
    return result
