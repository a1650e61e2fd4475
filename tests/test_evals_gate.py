"""The regression gate: passes within tolerance, fails on drops, missing metrics, partial runs; the baseline is real."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agents.errors import DataError
from agents.settings import PROJECT_DIR
from evals.gate import compare, flatten, read_summary, run_gate


def summary(accuracy: float = 0.8, ece: float = 0.05, partial: bool = False) -> dict[str, Any]:
    return {
        "partial": partial,
        "datasets": {
            "demo.v1": {
                "status": "ok",
                "results": {
                    "category": {"classical": {"accuracy": accuracy, "ece": ece, "latency_ms_p50": 9.0}},
                    "runbook": {"hybrid": {"recall_at_1": 0.7, "mrr": 0.8}},
                },
            }
        },
    }


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_only_quality_metrics_are_gated_never_latency() -> None:
    assert flatten(summary()) == {
        "demo.v1/category/classical/accuracy": 0.8,
        "demo.v1/category/classical/ece": 0.05,
        "demo.v1/runbook/hybrid/recall_at_1": 0.7,
        "demo.v1/runbook/hybrid/mrr": 0.8,
    }


@pytest.mark.parametrize(
    ("current", "passes"),
    [
        (summary(), True),
        (summary(accuracy=0.795), True),  # within tolerance
        (summary(accuracy=0.95), True),  # better is fine
        (summary(accuracy=0.78), False),
        (summary(ece=0.08), False),  # calibration error: lower is better (tolerance doubled: 0.02)
        (summary(ece=0.01), True),
        (summary(partial=True), False),
    ],
)
def test_gate_passes_and_fails(tmp_path: Path, current: dict[str, Any], passes: bool) -> None:
    code, lines = run_gate(write(tmp_path, "b.json", summary()), write(tmp_path, "c.json", current), 0.01)
    assert (code == 0) is passes
    assert lines[-1].startswith("PASSED" if passes else "FAILED")


def test_a_metric_missing_from_the_current_run_fails() -> None:
    current = copy.deepcopy(summary())
    del current["datasets"]["demo.v1"]["results"]["runbook"]
    bad = [f for f in compare(summary(), current) if f.problem]
    assert [f.key for f in bad] == ["demo.v1/runbook/hybrid/mrr", "demo.v1/runbook/hybrid/recall_at_1"]
    assert bad[0].problem == "missing in current run"


def test_tolerance_is_respected() -> None:
    assert not [f for f in compare(summary(), summary(accuracy=0.75), tolerance=0.06) if f.problem]
    assert [f for f in compare(summary(), summary(accuracy=0.75), tolerance=0.04) if f.problem]


def test_ece_gets_twice_the_tolerance_the_same_number_of_tickets() -> None:
    base = summary(ece=0.05)
    assert not [f for f in compare(base, summary(ece=0.08), tolerance=0.02) if f.problem]  # one ticket: up to 2/N
    failed = [f for f in compare(base, summary(ece=0.10), tolerance=0.02) if f.problem]
    assert [f.key.rsplit("/", 1)[1] for f in failed] == ["ece"] and "tolerance 0.04" in (failed[0].problem or "")


def test_unreadable_or_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such summary file"):
        read_summary(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        read_summary(tmp_path / "x.json")
    with pytest.raises(DataError, match="not an eval summary"):
        read_summary(write(tmp_path, "y.json", {"accuracy": 1}))


def test_an_empty_baseline_fails_rather_than_passing_vacuously(tmp_path: Path) -> None:
    code, lines = run_gate(write(tmp_path, "b.json", {"datasets": {}}), write(tmp_path, "c.json", summary()))
    assert code == 1 and "holds no gated metrics" in lines[0]


def test_an_optional_data_set_absent_from_this_machine_is_skipped_and_said_so(tmp_path: Path) -> None:
    absent = {"datasets": {"demo.v1": {"status": "skipped", "reason": "corpus folder is not on this machine"}}}
    code, lines = run_gate(write(tmp_path, "b.json", summary()), write(tmp_path, "c.json", absent))
    assert code == 0 and lines[0] == "SKIP demo.v1: corpus folder is not on this machine"
    broken = {"datasets": {"demo.v1": {"status": "error", "reason": "boom"}}}
    assert run_gate(write(tmp_path, "b.json", summary()), write(tmp_path, "e.json", broken))[0] == 1


def test_a_run_with_another_embedder_is_not_compared(tmp_path: Path) -> None:
    base = write(tmp_path, "b.json", {**summary(), "embedder": "sentence-transformers/all-MiniLM-L6-v2"})
    code, lines = run_gate(base, write(tmp_path, "c.json", {**summary(), "embedder": "hashing-512-3"}))
    assert code == 1 and "measured with embedder" in lines[0] and "'hashing-512-3'" in lines[0]
    same = write(tmp_path, "s.json", {**summary(), "embedder": "sentence-transformers/all-MiniLM-L6-v2"})
    assert run_gate(base, same)[0] == 0


def test_the_committed_demo_baseline_is_a_complete_real_run() -> None:
    for name, embedder in [
        ("demo.v1.json", "sentence-transformers/all-MiniLM-L6-v2"),  # torch and minilm-onnx
        ("demo.v1.minilm-int8.json", "sentence-transformers/all-MiniLM-L6-v2+onnx-int8"),  # the default
    ]:
        path = PROJECT_DIR / "evals" / "baselines" / name
        baseline = read_summary(path)
        assert not baseline["partial"]
        assert baseline["embedder"] == embedder
        keys = flatten(baseline)
        for field in ("category", "priority", "team"):
            for backend in ("classical", "service", "tfidf_lr"):
                assert f"demo_tickets.v1/{field}/{backend}/accuracy" in keys
        assert run_gate(path, path)[0] == 0
