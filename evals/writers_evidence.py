"""The LLM writers' evidence: per row right or wrong, the extractive writer against the LLM, exact McNemar."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.llm.evidence import EvidenceData, verdict
from agents.llm.writer_evidence import WriterEvidence, WritersEvidence
from agents.models.versions import file_digest
from evals.facts import cites_rightly, keeps_all_facts
from evals.mcnemar import PairedCounts

# per writer of the summaries eval: the extractive system it is held against, and the start of the LLM system's name
SYSTEMS = {
    "summary": ("v2 extractive (200 chars)", "llm summarise."),
    "reply": ("v2 template (whole steps)", "llm reply."),
}
EVIDENCE_FILE = "writers_evidence.json"


def judged_evidence(
    writer: str, judged: Sequence[tuple[bool, bool]], data: Path, rows: int, llm: Sequence[dict[str, Any]]
) -> WriterEvidence:
    """One writer's evidence from (extractive right, LLM right) per row; `llm` holds the LLM's outputs, each with
    its `ms` and, when it fell back or failed, a backend ending in "(fallback)" or an `error`."""
    n = len(judged)
    pair = PairedCounts.of_outcomes([a for a, _ in judged], [b for _, b in judged])
    fixed, broken = pair.c, pair.b
    base, mine = (sum(a for a, _ in judged) / n, sum(b for _, b in judged) / n) if n else (0.0, 0.0)
    p_value = pair.p_value
    failed = [o for o in llm if o.get("error") or str(o.get("backend", "")).endswith("(fallback)")]
    return WriterEvidence(
        field=writer,
        policy="llm_first",
        n=n,
        classical_accuracy=round(base, 4),
        policy_accuracy=round(mine, 4),
        fixed=fixed,
        broken=broken,
        p_value=float(f"{p_value:.4g}"),
        llm_share=1.0,
        llm_failures=len(failed),
        llm_latency_ms_p50=round(statistics.median(o["ms"] for o in llm), 1) if llm else None,
        verdict=verdict(base, mine, p_value),
        data=EvidenceData(path=str(data), sha256=file_digest(data), rows=rows, fields=[writer]),
    )


def summaries_evidence(
    rows: Sequence[dict[str, Any]], outputs: dict[str, list[dict[str, Any]]], sop_ids: set[str], data: Path
) -> list[WriterEvidence]:
    """Per writer of a summaries run, the extractive system against the run's LLM system, on the rows both wrote
    for: a summary is right when it keeps every stated fact, a reply when it cites rightly (or not at all)."""
    results = []
    for writer, (base, prefix) in SYSTEMS.items():
        llm_name = next((name for name in outputs if name.startswith(prefix)), None)
        if llm_name is None or base not in outputs:
            continue
        by_id = {name: {o["id"]: o for o in outputs[name]} for name in (base, llm_name)}
        judged, llm = [], []
        for row in rows:
            if row["id"] not in by_id[base] or row["id"] not in by_id[llm_name]:
                continue
            a, b = by_id[base][row["id"]]["text"], by_id[llm_name][row["id"]]["text"]
            llm.append(by_id[llm_name][row["id"]])
            if writer == "summary":
                pair = (keeps_all_facts(row, a), keeps_all_facts(row, b))
                if pair[0] is not None and pair[1] is not None:
                    judged.append((bool(pair[0]), bool(pair[1])))
            else:
                judged.append((cites_rightly(row, a, sop_ids), cites_rightly(row, b, sop_ids)))
        results.append(judged_evidence(writer, judged, data, len(rows), llm))
    return results


def writers_evidence(model: str, base_url: str | None, embedder: str, results: list[WriterEvidence]) -> WritersEvidence:
    return WritersEvidence(
        model=model, base_url=base_url, updated_at=datetime.now(UTC), embedder=embedder, results=results
    )


def answer_right(record: dict[str, Any]) -> bool | None:
    """An `ask` answer is right when it abstains on an unanswerable question, or answers and cites an expected SOP;
    None for a question that names no SOP (an owner-only question says nothing about the writer)."""
    row, result = record["row"], record["result"]
    if row.get("kind") == "unanswerable":
        return bool(result is None or result.abstained)
    expected = set(row.get("expected_docs") or [])
    if not expected:
        return None
    return bool(result and not result.abstained and expected & {c.doc_id for c in result.citations})


def answers_evidence(
    extractive: Sequence[dict[str, Any]], llm: Sequence[dict[str, Any]], data: Path, rows: int
) -> WriterEvidence:
    """The `ask` writer: records of evals.answers_eval.ask_all for the same questions, extractive and LLM."""
    judged = [
        (bool(a), bool(b))
        for x, y in zip(extractive, llm, strict=True)
        if (a := answer_right(x)) is not None and (b := answer_right(y)) is not None
    ]
    outputs = [
        {"ms": r["ms"], "error": r["error"], "backend": r["result"].backend if r["result"] else "error"} for r in llm
    ]
    return judged_evidence("answer", judged, data, rows, outputs)
