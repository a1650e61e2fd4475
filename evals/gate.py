"""`triage eval gate`: compare a run's summary.json with a committed baseline; any drop beyond tolerance fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.errors import DataError

HIGHER_IS_BETTER = frozenset(
    {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "precision_at_threshold",
        "coverage_at_threshold",
        "oracle_coverage",
        "recall_at_1",
        "recall_at_5",
        "mrr",
        "same_name_recall_at_1",
        "owner_accuracy",
        "citation_precision",
        "abstain_recall",
        "retrieval_recall_at_5",
    }
)
LOWER_IS_BETTER = frozenset({"ece", "false_abstain_rate", "failure_rate"})
# A ticket that crosses a confidence-bin edge changes two bins' gaps, so it moves the expected calibration error by
# up to 2/N where it moves an accuracy by 1/N: ECE gets twice the tolerance, the same number of tickets.
TOLERANCE_SCALE = {"ece": 2.0}
# Latency and throughput depend on the machine: reported, never gated.


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    baseline: float | None
    current: float | None
    change: float | None
    problem: str | None = None  # None: within tolerance


def flatten(summary: dict[str, Any]) -> dict[str, float]:
    """dataset/field/backend/metric -> value for every gated metric in a summary."""
    out: dict[str, float] = {}
    for ds_id, ds in summary.get("datasets", {}).items():
        for field, by_backend in (ds.get("results") or {}).items():
            for backend, metrics in by_backend.items():
                for name, value in metrics.items():
                    if name in HIGHER_IS_BETTER | LOWER_IS_BETTER and isinstance(value, int | float):
                        out[f"{ds_id}/{field}/{backend}/{name}"] = float(value)
    return out


def read_summary(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such summary file: run `triage eval run ... --out DIR` first")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"is not valid JSON ({exc.msg})") from None
    if "datasets" not in data:
        raise DataError(str(path), "is not an eval summary (no 'datasets')")
    return data


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerance: float = 0.01) -> list[Finding]:
    """Every baseline metric must be present in the current run and must not be worse by more than tolerance."""
    base, cur = flatten(baseline), flatten(current)
    findings = []
    for key, old in sorted(base.items()):
        new = cur.get(key)
        if new is None:
            findings.append(Finding(key=key, baseline=old, current=None, change=None, problem="missing in current run"))
            continue
        change = new - old
        metric = key.rsplit("/", 1)[1]
        worse = -change if metric in HIGHER_IS_BETTER else change
        allowed = tolerance * TOLERANCE_SCALE.get(metric, 1.0)
        problem = f"worse by {worse:.4f} (tolerance {allowed:g})" if worse > allowed + 1e-12 else None
        findings.append(Finding(key=key, baseline=old, current=new, change=round(change, 6), problem=problem))
    return findings


def run_gate(baseline_path: Path | str, current_path: Path | str, tolerance: float = 0.01) -> tuple[int, list[str]]:
    """(exit code, lines to print): 1 when anything regressed, is missing, or the current run is partial."""
    baseline, current = read_summary(baseline_path), read_summary(current_path)
    # an optional data set that is not on this machine (shared data outside the project) is skipped, and said so
    skipped = {k: d.get("reason", "") for k, d in current.get("datasets", {}).items() if d.get("status") == "skipped"}
    kept = {k: d for k, d in baseline.get("datasets", {}).items() if k not in skipped}
    findings = compare({**baseline, "datasets": kept}, current, tolerance)
    lines, failed = [f"SKIP {name}: {reason}" for name, reason in sorted(skipped.items())], False
    if current.get("partial"):
        failed = True
        lines.append("FAIL the current run is partial (interrupted)")
    if baseline.get("embedder") and current.get("embedder") != baseline["embedder"]:
        failed = True  # another vector space: a difference would say nothing about the code
        lines.append(
            f"FAIL the baseline was measured with embedder {baseline['embedder']!r}, this run with "
            f"{current.get('embedder')!r}: compare with a baseline of the same embedder"
        )
    if not findings and not skipped:
        failed = True
        lines.append(f"FAIL the baseline {baseline_path} holds no gated metrics")
    for f in findings:
        failed = failed or f.problem is not None
        status = "FAIL" if f.problem else "ok  "
        cur = "missing" if f.current is None else f"{f.current:.4f}"
        lines.append(f"{status} {f.key}: {f.baseline:.4f} -> {cur}" + (f"  ({f.problem})" if f.problem else ""))
    bad = sum(1 for f in findings if f.problem)
    lines.append(f"{'FAILED' if failed else 'PASSED'}: {len(findings)} metrics compared, {bad} regressions")
    return (1 if failed else 0), lines
