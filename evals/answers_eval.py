"""`triage eval answers`: retrieval recall@5, owner accuracy, citations and abstention of `ask` on a question set."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.answers.answer import Answerer, AskResult
from agents.settings import Settings
from evals.metrics import latency_summary

KINDS = ("howto", "owner", "unanswerable")


def _answerable(row: dict[str, Any]) -> bool:
    return row.get("kind") != "unanswerable"


def ask_all(answerer: Answerer, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per question; a question that raises is kept as a failure (scored wrong), never dropped."""
    out = []
    for row in rows:
        started = time.perf_counter()
        try:
            result: AskResult | None = answerer.ask(str(row.get("question") or ""))
            error = None
        except Exception as exc:  # noqa: BLE001 - an eval counts crashes, it does not stop on them
            result, error = None, f"{type(exc).__name__}: {exc}"[:300]
        out.append({"row": row, "result": result, "error": error, "ms": (time.perf_counter() - started) * 1000})
    return out


def score(records: Sequence[dict[str, Any]], k: int = 5) -> dict[str, Any]:
    """The metrics of a list of ask_all records (pure: no answerer needed)."""
    answerable = [r for r in records if _answerable(r["row"])]
    unanswerable = [r for r in records if not _answerable(r["row"])]
    with_docs = sum(1 for r in answerable if r["row"].get("expected_docs"))  # an owner-only set names no SOPs
    found, owner_ok, cites, relevant, grounded = 0, 0, 0, 0, 0
    by_kind: dict[str, list[bool]] = {}
    for rec in answerable:
        res: AskResult | None = rec["result"]
        expected = set(rec["row"].get("expected_docs") or [])
        retrieved = list(dict.fromkeys(ref.split("#", 1)[0] for ref in (res.retrieved if res else [])))[:k]
        found += bool(expected & set(retrieved))
        ok = bool(res and res.owner and res.owner.team == rec["row"].get("owner_team"))
        owner_ok += ok
        by_kind.setdefault(str(rec["row"].get("kind")), []).append(ok)
    for rec in records:
        res = rec["result"]
        if res is None or res.abstained:
            continue
        expected = set(rec["row"].get("expected_docs") or [])
        for c in res.citations:
            cites += 1
            relevant += c.doc_id in expected
            grounded += c.ref in res.retrieved
    abstained = lambda rec: rec["result"] is None or rec["result"].abstained  # noqa: E731 - a crash answers nothing
    n_ans, n_un = len(answerable), len(unanswerable)
    recall = {"retrieval_recall_at_5": found / with_docs} if with_docs else {}
    return {
        **recall,
        "owner_accuracy": owner_ok / n_ans if n_ans else 0.0,
        "owner_accuracy_by_kind": {kind: float(np.mean(oks)) for kind, oks in sorted(by_kind.items())},
        "citation_precision": relevant / cites if cites else 0.0,
        "citation_grounding": grounded / cites if cites else 0.0,
        "citations": cites,
        "abstain_recall": sum(map(abstained, unanswerable)) / n_un if n_un else 0.0,
        "false_abstain_rate": sum(map(abstained, answerable)) / n_ans if n_ans else 0.0,
        "failures": [r["row"].get("id") for r in records if r["error"]],
        "n": len(records),
        "n_answerable": n_ans,
        "n_unanswerable": n_un,
        **latency_summary([r["result"].latency_ms for r in records if r["result"]]),
    }


def choose_threshold(confidence: Sequence[float], unanswerable: Sequence[bool]) -> dict[str, float]:
    """The cut that maximises abstain recall minus false-abstain rate (Youden's J); among equally good cuts the
    middle one, and each cut lies halfway between two neighbouring confidences."""
    conf = np.asarray(confidence, dtype=float)
    bad = np.asarray(unanswerable, dtype=bool)
    values = np.unique(conf)
    cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    rows = []
    for cut in cuts:
        recall = float((conf[bad] < cut).mean()) if bad.any() else 0.0
        far = float((conf[~bad] < cut).mean()) if (~bad).any() else 0.0
        rows.append((recall - far, float(cut), recall, far))
    best = max(r[0] for r in rows)
    ties = [r for r in rows if r[0] >= best - 1e-12]
    j, cut, recall, far = ties[len(ties) // 2]
    return {"threshold": round(cut, 4), "j": round(j, 4), "abstain_recall": recall, "false_abstain_rate": far}


def folds(rows: Sequence[dict[str, Any]], n: int = 2, seed: int = 0) -> list[list[int]]:
    """n folds of row positions, stratified by question kind, in a seeded random order."""
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(n)]
    for kind in sorted({str(r.get("kind")) for r in rows}):
        idx = [i for i, r in enumerate(rows) if str(r.get("kind")) == kind]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            out[j % n].append(i)
    return [sorted(f) for f in out]


def with_threshold(answerer: Answerer, threshold: float) -> Answerer:
    clone = copy.copy(answerer)
    clone.threshold = threshold
    return clone


def evaluate_answers(
    answerer: Answerer, rows: Sequence[dict[str, Any]], *, n_folds: int = 2, seed: int = 0
) -> dict[str, Any]:
    """Metrics at the answerer's own threshold, plus an honest estimate of choosing the threshold on the data:
    for each fold, the threshold is chosen on the other folds and the metrics are measured on this one."""
    rows = list(rows)
    probe = ask_all(with_threshold(answerer, 0.0), rows)  # confidences do not depend on the threshold
    conf = [r["result"].confidence if r["result"] else 0.0 for r in probe]
    unans = [not _answerable(r) for r in rows]
    cv: list[dict[str, Any]] = []
    for i, held in enumerate(folds(rows, n_folds, seed)):
        tune = [j for j in range(len(rows)) if j not in set(held)]
        choice = choose_threshold([conf[j] for j in tune], [unans[j] for j in tune])
        held_rows = [rows[j] for j in held]
        held_out = score(ask_all(with_threshold(answerer, choice["threshold"]), held_rows))
        cv.append({"fold": i, "n_tune": len(tune), "n_held_out": len(held), "choice": choice, "held_out": held_out})
    full = choose_threshold(conf, unans)
    final = ask_all(answerer, rows)
    metrics = score(final)
    keys = ("retrieval_recall_at_5", "owner_accuracy", "citation_precision", "abstain_recall", "false_abstain_rate")
    metrics.update(
        {
            "threshold": answerer.threshold,
            "threshold_chosen_on_all_questions": full,
            "cross_validation": {
                "folds": cv,
                "held_out_mean": {
                    key: float(np.mean([f["held_out"][key] for f in cv])) for key in keys if key in metrics
                },
                "rule": "Youden's J (abstain recall - false-abstain rate) on the tuning folds, middle of the ties",
                "seed": seed,
            },
            "by_variant": _by_variant(final),
            "backend": sorted({r["result"].backend for r in final if r["result"]}),
        }
    )
    metrics["questions"] = [_row_summary(r) for r in final]
    return metrics


def _by_variant(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    variants = sorted({str(r["row"].get("variant")) for r in records})
    out = {}
    for v in variants:
        sub = score([r for r in records if str(r["row"].get("variant")) == v])
        out[v] = {"n": sub["n"], "n_unanswerable": sub["n_unanswerable"]}
        if sub["n_answerable"]:
            out[v].update(
                {k: sub[k] for k in ("retrieval_recall_at_5", "owner_accuracy", "false_abstain_rate") if k in sub}
            )
        if sub["n_unanswerable"]:
            out[v]["abstain_recall"] = sub["abstain_recall"]

    return out


def _row_summary(rec: dict[str, Any]) -> dict[str, Any]:
    res: AskResult | None = rec["result"]
    row = rec["row"]
    return {
        "id": row.get("id"),
        "kind": row.get("kind"),
        "variant": row.get("variant"),
        "expected_docs": row.get("expected_docs"),
        "owner_team": row.get("owner_team"),
        "retrieved": res.retrieved if res else [],
        "cited": [c.doc_id for c in res.citations] if res else [],
        "owner": res.owner.team if res and res.owner else None,
        "confidence": res.confidence if res else None,
        "abstained": res.abstained if res else None,
        "latency_ms": res.latency_ms if res else None,
        "error": rec["error"],
    }


def spec_rows(spec: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as `ask` questions: the spec's text columns joined into `question`, and `owner_team` read from the
    column its labels name (`labels: {owner_team: team}`), so a set written for another purpose can be scored."""
    owner_column = spec.labels.get("owner_team", "owner_team")
    return [
        {
            **row,
            "question": " ".join(str(row.get(c) or "") for c in spec.text_columns).strip(),
            "owner_team": row.get(owner_column),
        }
        for row in rows
    ]


def run_spec(spec: Any, rows: list[dict[str, Any]], *, settings: Settings, embedder: Any) -> dict[str, Any]:
    """The hook `triage eval run` calls for a spec of kind `answers` (see evals/commands.py)."""
    from agents.app import build_answerer

    metrics = evaluate_answers(build_answerer(settings, embedder=embedder, in_memory=True), spec_rows(spec, rows))
    metrics.pop("questions", None)
    return metrics
