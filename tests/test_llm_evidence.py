"""Evidence before use: McNemar's test, `triage eval llm` against a loopback LLM that is right about the category and
wrong about the priority, and a service that lets the LLM classify only the fields the evidence says it helps with."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_openai_server import FakeOpenAI, fake_openai
from llm_kit import isolate_llm_env, write_evidence
from serverkit import fresh_data_dir

from agents.app import build_service
from agents.cli.main import main
from agents.llm.evidence import EvidenceInvalid, LlmEvidence, verdict
from agents.policy import CascadeClassifier
from agents.redact import prepare
from agents.settings import DEMO_TICKETS, Settings
from agents.types import Ticket, ticket_text
from evals.mcnemar import PairedCounts, mcnemar_exact

MODEL = "fake-model"
WRONG_PRIORITY = {"P1": "P2", "P2": "P3", "P3": "P4", "P4": "P1"}
N_TEST = 60
VAGUE = [Ticket(title="Something is wrong"), Ticket(title="need help please")]  # the classical model is unsure


# ---- McNemar: known values ------------------------------------------------------------------------------------------


def test_mcnemar_exact_on_known_values() -> None:
    assert mcnemar_exact(0, 0) == mcnemar_exact(5, 5) == 1.0  # nothing, or as much fixed as broken: no difference
    assert mcnemar_exact(1, 5) == mcnemar_exact(5, 1) == 0.21875  # the cascade: 1 fixed, 5 broken is chance
    assert mcnemar_exact(0, 5) == 0.0625  # 2 / 2**5: five one-sided changes are not enough...
    assert mcnemar_exact(0, 6) == 0.03125  # ...six are (at 0.05)
    assert mcnemar_exact(0, 10) == 2 / 1024
    assert mcnemar_exact(2, 12) == pytest.approx(0.0129394531, abs=1e-9)


def test_mcnemar_is_the_two_sided_binomial_test_even_for_thousands_of_pairs() -> None:
    from scipy.stats import binomtest

    pairs = [(b, c) for b in range(0, 31, 3) for c in range(0, 31, 4) if b + c] + [(600, 700), (1500, 1400), (0, 2000)]
    for b, c in pairs:
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9, abs=1e-300)
    with pytest.raises(ValueError, match="cannot be negative"):
        mcnemar_exact(-1, 3)


def test_paired_counts_are_the_labels_fixed_and_broken() -> None:
    truth = ["a", "b", "c", "d", "e"]
    classical = ["a", "b", "x", "x", "x"]
    policy = ["a", "x", "c", "d", "y"]  # broke b, fixed c and d, both wrong on e
    counts = PairedCounts.of(truth, classical, policy)
    assert (counts.b, counts.c) == (1, 2) and counts.p_value == 1.0
    with pytest.raises(ValueError, match="one length"):
        PairedCounts.of(truth, classical, policy[:4])


def test_paired_counts_of_outcomes_are_the_rows_fixed_and_broken() -> None:
    before = [True, True, False, False, False]
    after = [True, False, True, True, False]  # broke row 2, fixed rows 3 and 4
    counts = PairedCounts.of_outcomes(before, after)
    assert (counts.b, counts.c) == (1, 2) and counts.p_value == 1.0
    with pytest.raises(ValueError, match="one length"):
        PairedCounts.of_outcomes(before, after[:4])


def test_the_verdict_needs_a_more_accurate_policy_and_p_under_005() -> None:
    assert verdict(0.80, 0.85, 0.01) == "helps"
    assert verdict(0.80, 0.85, 0.20) == "no evidence"  # better, but it could be chance
    assert verdict(0.85, 0.82, 0.22) == "no evidence"
    assert verdict(0.85, 0.70, 0.001) == "hurts"
    assert verdict(0.80, 0.80, 0.0) == "no evidence"


# ---- `triage eval llm` against a loopback LLM that knows the category and gets the priority wrong -------------------


class ByTicket(dict):  # type: ignore[type-arg]
    """The fake server's `answers` for the ticket in the request being answered (requests come one at a time): its
    true category and a wrong priority; a ticket it does not know gets network and P3."""

    def __init__(self, server: FakeOpenAI, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.server = server
        self.truth = {prepare(ticket_text(r["title"], r["body"])).text.strip(): r for r in rows}

    def __contains__(self, key: object) -> bool:
        return key in ("category", "priority")

    def __getitem__(self, key: str) -> str:
        row = self.truth.get(self.server.ticket_text(self.server.requests[-1]["body"]), {})
        return str(row.get("category", "network")) if key == "category" else WRONG_PRIORITY[row.get("priority", "P2")]

    def __bool__(self) -> bool:
        return True


@pytest.fixture
def server(demo_rows) -> Iterator[FakeOpenAI]:  # type: ignore[no-untyped-def]
    with fake_openai() as srv:
        srv.answers = ByTicket(srv, demo_rows)
        yield srv


@dataclass
class Measured:
    code: int
    out: Path
    evidence: LlmEvidence
    classify_requests: int
    printed: str


def llm_env(mp: pytest.MonkeyPatch, url: str | None) -> None:
    isolate_llm_env(mp, url, MODEL, folds=3)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory, demo_rows) -> Measured:  # type: ignore[no-untyped-def]
    """`triage eval llm` once for the module: the demo tickets, 60 held-out rows, the hashing embedder."""
    root = tmp_path_factory.mktemp("eval-llm")
    out = root / "out"
    printed = io.StringIO()
    with fake_openai() as srv, pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        srv.answers = ByTicket(srv, demo_rows)
        mp.chdir(root)  # no .env leaks in
        llm_env(mp, srv.url)
        argv = ["eval", "llm", "--out", str(out), "--test", str(N_TEST), "--embedder", "hashing"]
        code = main([*argv, "--data-dir", str(root / "data")])
        asked = sum(r["path"].endswith("/chat/completions") for r in srv.requests)
    evidence = LlmEvidence.model_validate_json((out / "evidence.json").read_text(encoding="utf-8"))
    return Measured(code, out, evidence, asked, printed.getvalue())


def test_eval_llm_writes_evidence_with_the_right_verdicts(measured: Measured) -> None:
    assert measured.code == 0
    ev = measured.evidence
    assert ev.format == "llm_evidence.v1" and ev.model == MODEL and ev.data.path == str(DEMO_TICKETS)
    assert ev.split.n_test == N_TEST and ev.split.seed == 42 and ev.split.n_train + ev.split.n_test <= ev.data.rows
    assert {(r.policy, r.field) for r in ev.results} == {
        (p, f) for p in ("llm_first", "cascade") for f in ("category", "priority", "team")
    }
    category, priority, team = (ev.find("llm_first", f) for f in ("category", "priority", "team"))
    assert category and priority and team
    # always right about the category: it fixes every classical mistake and breaks nothing
    assert category.policy_accuracy == 1.0 and category.broken == 0
    assert category.fixed == round(N_TEST * (1 - category.classical_accuracy)) >= 6
    assert category.p_value < 0.05 and category.verdict == "helps"
    # always wrong about the priority: it breaks every classical hit
    assert priority.policy_accuracy == 0.0 and priority.fixed == 0 and priority.verdict == "hurts"
    assert priority.broken == round(N_TEST * priority.classical_accuracy)
    # teams are routed from the catalogue: the LLM is never asked
    assert team.llm_share == 0.0 and team.fixed == team.broken == 0 and team.verdict == "no evidence"
    assert category.llm_share == priority.llm_share == 1.0 and category.llm_latency_ms_p50 is not None
    for r in ev.results:  # the cascade too: each verdict is the rule applied to its own figures
        assert r.verdict == verdict(r.classical_accuracy, r.policy_accuracy, r.p_value)
        assert r.p_value == pytest.approx(mcnemar_exact(r.broken, r.fixed), rel=1e-3)
    cascade_category, cascade_priority = ev.find("cascade", "category"), ev.find("cascade", "priority")
    assert cascade_category and cascade_priority
    assert cascade_category.broken == 0 and cascade_priority.fixed == 0
    assert cascade_category.llm_share < 1.0  # only the tickets the classical model is unsure of


def test_eval_llm_asks_once_per_ticket_and_writes_a_report(measured: Measured) -> None:
    assert measured.classify_requests == N_TEST  # the cascade replays llm_first's answer to the same prompt
    replies = (measured.out / "replies.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(replies) == N_TEST  # kept: a run stopped half-way resumes where it stopped
    report = (measured.out / "report.md").read_text(encoding="utf-8")
    assert "| category | llm_first | 60 |" in report and "**helps**" in report and "**hurts**" in report
    assert "triage eval llm --data" in report and "--test 60" in report
    assert "category  llm_first llm helps, +" in measured.printed and "priority  llm_first hurts (" in measured.printed
    assert "TRIAGE_LLM_EVIDENCE=" in measured.printed


def test_eval_llm_without_an_llm_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    llm_env(monkeypatch, None)
    assert main(["eval", "llm", "--out", str(tmp_path / "out"), "--embedder", "hashing"]) == 2
    assert "no LLM configured" in capsys.readouterr().err
    assert main(["eval", "llm", "--out", str(tmp_path / "out"), "--test-size", "1.5"]) == 2
    assert "--test-size must be between 0 and 1" in capsys.readouterr().err


# ---- the service follows the evidence ------------------------------------------------------------------------------


@pytest.fixture
def data_dir(served_data_dir: Path, tmp_path: Path) -> Path:
    return fresh_data_dir(served_data_dir, tmp_path / "data")


def settings(data_dir: Path, policy: str, url: str, **kw: Any) -> Settings:
    return Settings(
        data_dir=data_dir, embedder="hashing", _env_file=None, policy=policy, llm_base_url=url, llm_model=MODEL, **kw
    )


def classify_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [r for r in server.requests if "labels" in json.dumps(r["body"].get("response_format", ""))]


def test_a_service_with_the_evidence_lets_the_llm_decide_the_helping_field_only(
    measured: Measured, data_dir: Path, server: FakeOpenAI, demo_rows, caplog
) -> None:
    shutil.copy(measured.out / "evidence.json", data_dir / "llm_evidence.json")
    row = demo_rows[3]
    with caplog.at_level(logging.INFO, logger="agents.llm.evidence"):
        service = build_service(settings(data_dir, "llm_first", server.url))
    assert "category: llm helps, +" in caplog.text and "priority: hurts (" in caplog.text
    result = service.triage(Ticket(id=row["id"], title=row["title"], body=row["body"]))
    assert result.backend["category"] == "llm:fake-model" and result.category == row["category"]
    assert result.backend["priority"] == "classical:ensemble"  # the LLM said a wrong priority: not taken
    assert result.backend["summary"] == "classical:extractive"  # no writers evidence: the LLM does not write
    assert len(classify_requests(server)) == 1


def test_the_cascade_asks_the_llm_only_about_fields_with_evidence(
    tmp_path: Path, data_dir: Path, server: FakeOpenAI, demo_rows, caplog
) -> None:
    path = write_evidence(tmp_path / "elsewhere" / "evidence.json", MODEL, {"cascade:priority": "no evidence"})
    both = {"cascade_fields": ["category", "priority"], "cascade_max_share": 1.0, "cascade_top_k": 0}
    with caplog.at_level(logging.INFO, logger="agents.llm.evidence"):
        service = build_service(settings(data_dir, "cascade", server.url, llm_evidence=path, **both))
    assert isinstance(service.classifier, CascadeClassifier) and set(service.classifier.thresholds) == {"category"}
    assert "category: llm helps, +10.0 points, p=0.013" in caplog.text
    assert "priority: no evidence (+0.0 points, p=1): classical" in caplog.text
    assert "measured with top_k 2 and max_share 0.3, it runs with 0 and 1.0: measure it again" in caplog.text
    results = [service.triage(t) for t in [*VAGUE, *(Ticket(title=r["title"], body=r["body"]) for r in demo_rows[:10])]]
    assert all(r.backend["priority"] == "classical:ensemble" for r in results)  # never the LLM's (wrong) priority
    by_llm = [r for r in results if r.backend["category"] == "llm:fake-model"]
    assert by_llm and len(by_llm) == len(classify_requests(server))  # asked only where the category was unsure


@pytest.mark.parametrize(
    ("policy", "measured_with", "words"),
    [
        ("llm_first", None, "no LLM evidence at "),
        ("cascade", None, "no LLM evidence at "),
        ("llm_first", "another-model", "was measured with model 'another-model', not 'fake-model'"),
    ],
)
def test_without_evidence_for_this_model_the_llm_classifies_nothing_and_the_log_says_how(
    data_dir: Path, server: FakeOpenAI, demo_rows, caplog, policy: str, measured_with: str | None, words: str
) -> None:
    path = data_dir / "llm_evidence.json"
    if measured_with:
        write_evidence(path, measured_with)
    with caplog.at_level(logging.WARNING, logger="agents.llm.evidence"):
        service = build_service(settings(data_dir, policy, server.url, cascade_max_share=1.0))
    assert words in caplog.text and str(path) in caplog.text and "classification stays classical" in caplog.text
    assert "triage eval llm --out DIR" in caplog.text and "TRIAGE_LLM_EVIDENCE" in caplog.text
    for ticket in [*VAGUE, *(Ticket(title=r["title"], body=r["body"]) for r in demo_rows[:5])]:
        result = service.triage(ticket)
        assert result.backend["category"] == result.backend["priority"] == "classical:ensemble"
    assert classify_requests(server) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"format": "llm_evidence.v0"}', "has format 'llm_evidence.v0'"),
        ('{"format": "llm_evidence.v1", "model": "fake-model"}', "is not valid (embedder: Field required)"),
    ],
)
def test_a_malformed_evidence_file_stops_the_start_with_a_clear_error(
    data_dir: Path, server: FakeOpenAI, text: str, words: str
) -> None:
    (data_dir / "llm_evidence.json").write_text(text, encoding="utf-8")
    with pytest.raises(EvidenceInvalid, match="triage eval llm") as caught:
        build_service(settings(data_dir, "cascade", server.url))
    assert words in str(caught.value) and str(data_dir / "llm_evidence.json") in str(caught.value)
