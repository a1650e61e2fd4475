"""`triage eval classify` on our demo tickets: the classical figures, and the LLM policies on the same split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai_server import fake_openai

from agents.cli.main import main
from agents.settings import DEMO_TICKETS

BASE = [
    "eval",
    "classify",
    "--data",
    str(DEMO_TICKETS),
    "--text-col",
    "title",
    "--text-col",
    "body",
    "--label-col",
    "category",
    "--embedder",
    "hashing",
    "--folds",
    "3",
]


@pytest.fixture
def no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run where no .env can leak settings in, with no LLM configured unless a test sets one."""
    monkeypatch.chdir(tmp_path)
    for name in ("TRIAGE_LLM_BASE_URL", "TRIAGE_LLM_MODEL", "TRIAGE_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(out: Path, *extra: str) -> dict:
    assert main([*BASE, *extra, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_classical_figures_sit_beside_the_baseline_on_one_split(no_dotenv: Path) -> None:
    m = run(no_dotenv / "classical")
    assert m["n_train"] + m["n_test"] == 460 and m["n_test"] == 92
    assert m["split"] == "stratified 0.2 seed 42"
    for key in ("accuracy", "macro_f1", "weighted_f1", "baseline_accuracy", "baseline_macro_f1", "latency_ms_p50"):
        assert 0.0 <= m[key] <= (1.0 if "latency" not in key else 10_000.0), key
    assert 0.0 < m["coverage_at_threshold"] <= 1.0 and "llm" not in m and "cascade" not in m


def test_members_come_from_the_flag_or_the_setting(no_dotenv: Path, monkeypatch) -> None:
    assert run(no_dotenv / "flag", "--members", "svm,knn10")["ensemble_members"] == ["svm", "knn10"]
    monkeypatch.setenv("TRIAGE_MEMBERS", "lr,knn30")
    m = run(no_dotenv / "setting")
    assert m["ensemble_members"] == ["lr", "knn30"] and len(m["ensemble_scales"]) == 2
    assert main([*BASE, "--members", "svm,gpt", "--out", str(no_dotenv / "bad")]) == 2


def test_cascade_asks_the_llm_within_its_budget_and_records_who_decided(no_dotenv: Path, monkeypatch) -> None:
    with fake_openai() as server:
        server.answers = {"category": "hardware"}  # always the same label: taken only among the classical top 2
        monkeypatch.setenv("TRIAGE_LLM_BASE_URL", server.url)
        monkeypatch.setenv("TRIAGE_LLM_MODEL", "fake-model")
        monkeypatch.setenv("TRIAGE_CASCADE_MAX_SHARE", "0.2")
        m = run(no_dotenv / "cascade", "--backend", "cascade")
        asked = [r for r in server.requests if r["path"].endswith("/chat/completions")]
    cascade = m["cascade"]["cascade"]
    n = m["cascade"]["n_test"]
    assert n == m["n_test"] and not m["cascade"]["partial"] and m["cascade"]["max_share"] == 0.2
    assert len(asked) == cascade["stats"]["llm_tickets"]  # one request per ticket sent, no re-ask needed
    assert 0 < cascade["tickets_to_llm_per_100"] <= 35  # budget 20 % of training rows; the test rows vary
    decided = cascade["category"]["decided_by"]
    assert sum(decided.values()) == n and decided.get("classical:ensemble", 0) >= n * 0.6
    assert set(decided) <= {"classical:ensemble", "classical:ensemble (llm outside top 2)", "llm:fake-model"}
    assert cascade["json_valid_first_try"] == 1.0 and cascade["fallback_rate"] == 0.0


def test_llm_first_falls_back_on_every_ticket_when_the_endpoint_fails(no_dotenv: Path, monkeypatch) -> None:
    with fake_openai() as server:
        server.scenario = "500"
        monkeypatch.setenv("TRIAGE_LLM_BASE_URL", server.url)
        monkeypatch.setenv("TRIAGE_LLM_MODEL", "fake-model")
        m = run(no_dotenv / "llm", "--backend", "llm")
    llm_first, alone = m["llm"]["llm_first"], m["llm"]["llm_alone"]
    assert llm_first["fallback_rate"] == 1.0  # failed, or skipped by the open breaker: never a crash
    assert llm_first["category"]["accuracy"] == pytest.approx(m["accuracy"], abs=1e-4)  # the classical answers
    assert alone["category"]["accuracy"] == 0.0  # the LLM alone answered nothing: every ticket counted wrong


def test_an_llm_backend_with_no_endpoint_is_a_clear_error(no_dotenv: Path, capsys) -> None:
    assert main([*BASE, "--backend", "cascade", "--out", str(no_dotenv / "x")]) == 2
    assert "no LLM configured" in capsys.readouterr().err
