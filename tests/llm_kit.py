"""Helpers shared by the LLM tests: a ticket context from the session's trained service, a settable clock, and an
LLM evidence file (the service lets the LLM classify only the fields such a file says it helps with)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.classify import TicketContext
from agents.types import Ticket


def context_for(service, ticket: Ticket, deadline: float | None = None) -> TicketContext:  # type: ignore[no-untyped-def]
    """What the service would hand a classifier for this ticket: its vector, neighbours and SOP hits."""
    vector = service.embedder.embed([ticket.text])[0]
    return TicketContext(
        text=ticket.text,
        vector=vector,
        neighbours=service.memory.search(vector, 5),
        kb_hits=service.searcher.search(ticket.text, k=3, vector=vector),
        deadline=deadline,
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def measured(verdict: str, n: int, base: float, changed: tuple[int, int]) -> dict[str, Any]:
    """The measured part of one verdict on `n` rows: `changed` (fixed, broken) for "helps", swapped for "hurts",
    as many fixed as broken (not significant) for "no evidence"."""
    fixed, broken = changed if verdict == "helps" else changed[::-1] if verdict == "hurts" else (5, 5)
    significant = 0.013 if fixed != broken else 1.0
    return {
        "n": n,
        "classical_accuracy": base,
        "policy_accuracy": base + (fixed - broken) / n,
        "fixed": fixed,
        "broken": broken,
        "p_value": significant,
        "llm_share": 1.0,
        "llm_latency_ms_p50": 40.0,
        "verdict": verdict,
    }


def write_evidence(path: Path, model: str, verdicts: dict[str, str] | None = None) -> Path:
    """An LLM evidence file (agents/llm/evidence.py) measured with `model`: the LLM helps with category and priority
    under both policies (what a start needs before the LLM may classify), except where `verdicts` ("policy:field"
    -> "hurts" or "no evidence") says otherwise."""
    from datetime import UTC, datetime

    from agents.llm.evidence import EvidenceData, EvidenceSplit, FieldEvidence, LlmEvidence

    results = []
    for policy in ("llm_first", "cascade"):
        for name in ("category", "priority"):
            verdict = (verdicts or {}).get(f"{policy}:{name}", "helps")
            results.append(FieldEvidence(field=name, policy=policy, **measured(verdict, 100, 0.8, (12, 2))))
    evidence = LlmEvidence(
        model=model,
        created_at=datetime.now(UTC),
        data=EvidenceData(path="tickets.jsonl", sha256="0" * 64, rows=500, fields=["category", "priority"]),
        split=EvidenceSplit(test_size=0.2, seed=42, stratify="category", n_train=400, n_test=100),
        embedder="hashing-512-3",
        cascade_top_k=2,
        cascade_max_share=0.3,
        results=results,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(evidence.model_dump_json(indent=2), encoding="utf-8")
    return path


def write_writers_evidence(path: Path, model: str, verdicts: dict[str, str]) -> Path:
    """An LLM writers' evidence file (agents/llm/writer_evidence.py) measured with `model`: writer ("summary",
    "reply", "answer") -> "helps", "hurts" or "no evidence"; a writer not named has no evidence."""
    from datetime import UTC, datetime

    from agents.llm.evidence import EvidenceData
    from agents.llm.writer_evidence import WriterEvidence, WritersEvidence

    results = []
    for name, verdict in verdicts.items():
        data = EvidenceData(path="facts.jsonl", sha256="0" * 64, rows=20, fields=[name])
        results.append(WriterEvidence(field=name, policy="llm_first", data=data, **measured(verdict, 20, 0.5, (9, 0))))
    evidence = WritersEvidence(model=model, updated_at=datetime.now(UTC), embedder="hashing-512-3", results=results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(evidence.model_dump_json(indent=2), encoding="utf-8")
    return path


def isolate_llm_env(mp: pytest.MonkeyPatch, url: str | None, model: str, folds: int) -> None:
    """No setting leaks in from the environment; TRIAGE_TRAIN_FOLDS `folds`; the loopback LLM at `url` serving
    `model` when `url` is given, else none."""
    for name in ("LLM_API_KEY", "CONFIG_DIR", "TRAINING_DATA", "POLICY", "LLM_BASE_URL", "LLM_MODEL"):
        mp.delenv(f"TRIAGE_{name}", raising=False)
    mp.delenv("OPENAI_API_KEY", raising=False)
    mp.setenv("TRIAGE_TRAIN_FOLDS", str(folds))
    if url is not None:
        mp.setenv("TRIAGE_LLM_BASE_URL", url)
        mp.setenv("TRIAGE_LLM_MODEL", model)
