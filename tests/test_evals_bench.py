"""`triage bench` on a slice of the demo tickets with the hashing embedder: every figure beside its reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.cli.main import main
from agents.settings import DEMO_TICKETS


def test_bench_measures_ours_beside_a_reference(tmp_path: Path, tiny_corpus: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(DEMO_TICKETS.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    out = tmp_path / "bench.json"
    argv = ["bench", "--data", str(data), "--kb", str(tiny_corpus), "-n", "5", "--folds", "2"]
    argv += ["--embedder", "hashing", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    names = [r["name"] for r in result["results"]]
    assert names == ["single_ticket", "batch", "index_build", "dense_search", "hybrid_search"]
    for r in result["results"]:
        assert r["ours_median_ms"] > 0 and r["reference_median_ms"] > 0
        assert r["ratio"] == pytest.approx(r["ours_median_ms"] / r["reference_median_ms"], abs=0.01)
    batch = result["results"][1]
    assert batch["ours_tickets_per_s"] > 0 and result["tickets"] == 40
    printed = capsys.readouterr().out
    assert "single_ticket" in printed and "ratio" in printed and "tickets/s" in printed
