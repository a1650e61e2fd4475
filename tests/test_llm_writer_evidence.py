"""Under llm_first the LLM writes a summary or a reply only where its writers' evidence says it writes better, for
this model; without such evidence both stay extractive, and the start log says why and how to measure it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, fake_openai
from llm_kit import write_writers_evidence
from serverkit import fresh_data_dir

from agents.app import build_service
from agents.llm.evidence import EvidenceInvalid
from agents.settings import Settings
from agents.types import Ticket
from agents.workers.config import FAST, LLM
from agents.workers.runtime import WorkerRuntime

MODEL = "fake-model"
TICKET = Ticket(title="Outlook keeps asking for my password", body="Since this morning, every five minutes.")


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        yield srv


@pytest.fixture
def data_dir(served_data_dir: Path, tmp_path: Path) -> Path:
    return fresh_data_dir(served_data_dir, tmp_path / "data")


def settings(data_dir: Path, url: str, **kw: object) -> Settings:
    return Settings(
        data_dir=data_dir, embedder="hashing", _env_file=None, policy="llm_first", llm_base_url=url, llm_model=MODEL,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def writer_requests(server: FakeOpenAI) -> list[str]:
    """The writers asked: the system prompts of the chat requests that were not classification."""
    prompts = [r["body"]["messages"][0]["content"] for r in server.requests if r["path"].endswith("completions")]
    return [p for p in prompts if "summary" in p.lower() or "reply" in p.lower()]


@pytest.mark.parametrize(
    ("verdicts", "summary", "reply"),
    [
        ({"summary": "helps", "reply": "hurts"}, "llm:fake-model", "classical:template"),
        ({"summary": "no evidence", "reply": "helps"}, "classical:extractive", "llm:fake-model"),
        ({"summary": "helps", "reply": "helps"}, "llm:fake-model", "llm:fake-model"),
        ({}, "classical:extractive", "classical:template"),
    ],
)
def test_the_llm_writes_only_what_the_evidence_says_it_writes_better(
    data_dir: Path, server: FakeOpenAI, caplog, verdicts: dict[str, str], summary: str, reply: str
) -> None:
    write_writers_evidence(data_dir / "llm_writers_evidence.json", MODEL, verdicts)
    with caplog.at_level(logging.INFO, logger="agents.llm.writer_evidence"):
        result = build_service(settings(data_dir, server.url)).triage(TICKET)
    assert (result.backend["summary"], result.backend["reply"]) == (summary, reply)
    for name, verdict in verdicts.items():
        assert f"{name}: llm helps" in caplog.text if verdict == "helps" else f"{name}: {verdict} (" in caplog.text
    assert result.summary and result.suggested_reply


@pytest.mark.parametrize("measured_with", [None, "another-model"])
def test_without_evidence_for_this_model_summaries_and_replies_stay_extractive(
    data_dir: Path, server: FakeOpenAI, caplog, measured_with: str | None
) -> None:
    path = data_dir / "llm_writers_evidence.json"
    if measured_with:
        write_writers_evidence(path, measured_with, {"summary": "helps", "reply": "helps"})
    with caplog.at_level(logging.WARNING, logger="agents.llm.writer_evidence"):
        result = build_service(settings(data_dir, server.url)).triage(TICKET)
    assert (result.backend["summary"], result.backend["reply"]) == ("classical:extractive", "classical:template")
    assert str(path) in caplog.text and "summaries, replies and answers stay extractive" in caplog.text
    assert "python -m evals.summaries_eval --llm" in caplog.text and "TRIAGE_LLM_WRITERS_EVIDENCE" in caplog.text
    assert "triage eval answers" in caplog.text and "--llm-evidence FILE" in caplog.text
    assert writer_requests(server) == []


def test_the_setting_names_an_evidence_file_elsewhere(data_dir: Path, server: FakeOpenAI, tmp_path: Path) -> None:
    path = write_writers_evidence(tmp_path / "elsewhere.json", MODEL, {"summary": "helps"})
    result = build_service(settings(data_dir, server.url, llm_writers_evidence=path)).triage(TICKET)
    assert result.backend["summary"] == "llm:fake-model" and result.backend["reply"] == "classical:template"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1, 2", "cannot be read as JSON"),
        ('{"format": "llm_evidence.v1"}', "has format 'llm_evidence.v1', expected 'llm_writers_evidence.v2'"),
        ('{"format": "llm_writers_evidence.v2", "model": "m"}', "is not valid (embedder: Field required)"),
    ],
)
def test_a_malformed_writers_evidence_file_stops_the_start_with_a_clear_error(
    data_dir: Path, server: FakeOpenAI, text: str, words: str
) -> None:
    (data_dir / "llm_writers_evidence.json").write_text(text, encoding="utf-8")
    with pytest.raises(EvidenceInvalid, match="evals.summaries_eval") as caught:
        build_service(settings(data_dir, server.url))
    assert words in str(caught.value) and str(data_dir / "llm_writers_evidence.json") in str(caught.value)


# ---- `ask`: the LLM answers only with evidence, and `triage eval answers --llm-evidence` measures it --------------


class CitesTheFirstSop(dict):  # type: ignore[type-arg]
    """The fake server's `answers` for an `ask` request: a short answer citing the first SOP section it was shown."""

    def __init__(self, server: FakeOpenAI) -> None:
        super().__init__()
        self.server = server

    def __contains__(self, key: object) -> bool:
        return key == "answer"

    def __getitem__(self, key: str) -> str:
        user = self.server.requests[-1]["body"]["messages"][-1]["content"]
        ref = re.search(r'<sop id="([^"]+)"', user)
        return f"Follow the steps of the guide [{ref.group(1) if ref else 'nothing'}]."

    def __bool__(self) -> bool:
        return True


def ask_backend(data_dir: Path, url: str, question: str) -> str:
    from agents.app import build_answerer

    return build_answerer(settings(data_dir, url)).ask(question).backend


def test_ask_uses_the_llm_writer_only_with_evidence_for_answers(data_dir: Path, server: FakeOpenAI) -> None:
    server.answers = CitesTheFirstSop(server)
    question = "How do I connect to the VPN from home?"
    path = data_dir / "llm_writers_evidence.json"
    write_writers_evidence(path, MODEL, {"summary": "helps", "answer": "no evidence"})
    assert ask_backend(data_dir, server.url, question) == "classical:extractive"
    write_writers_evidence(path, MODEL, {"answer": "helps"})
    assert ask_backend(data_dir, server.url, question) == "llm:fake-model"


def test_eval_answers_writes_the_answer_verdict_beside_the_other_writers(
    data_dir: Path, server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.cli.main import main
    from agents.llm.writer_evidence import read_writers_evidence

    server.answers = CitesTheFirstSop(server)
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"id": "q1", "question": "How do I connect to the VPN from home?", "kind": "howto",
         "expected_docs": ["sop-vpn-connect"], "owner_team": "network"},
        {"id": "q2", "question": "The printer on floor 2 jams, how do I fix it?", "kind": "howto",
         "expected_docs": ["sop-printer-not-printing"], "owner_team": "workplace"},
        {"id": "q3", "question": "What is the canteen menu on Friday?", "kind": "unanswerable"},
        {"id": "q4", "question": "Who owns the VPN?", "kind": "owner", "owner_team": "network"},
    ]  # fmt: skip
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    evidence = write_writers_evidence(tmp_path / "writers.json", MODEL, {"summary": "hurts"})
    for name, value in {"TRIAGE_LLM_BASE_URL": server.url, "TRIAGE_LLM_MODEL": MODEL}.items():
        monkeypatch.setenv(name, value)
    args = ["eval", "answers", "--data", str(questions), "--out", str(tmp_path / "out"), "--in-memory"]
    code = main([*args, "--data-dir", str(data_dir), "--embedder", "hashing", "--llm-evidence", str(evidence)])
    assert code == 0
    written = read_writers_evidence(evidence)
    assert written is not None and [r.field for r in written.results] == ["summary", "answer"]  # summary kept
    answer = written.find("answer")
    assert answer is not None and answer.n == 3  # the owner-only question names no SOP: not judged
    assert answer.data.path == str(questions) and answer.data.rows == 4 and answer.llm_failures == 0
    assert answer.verdict == "no evidence" and answer.fixed + answer.broken <= 3
    asked = [r for r in server.requests if r["path"].endswith("completions")]
    assert asked  # the LLM arm did ask the loopback model


def test_a_workers_llm_queue_writes_what_the_writers_evidence_lets_it_and_its_fast_queue_never(
    data_dir: Path, server: FakeOpenAI
) -> None:
    write_writers_evidence(data_dir / "llm_writers_evidence.json", MODEL, {"reply": "helps"})
    runtime = WorkerRuntime(settings(data_dir, server.url), processes=1)
    try:
        llm, fast = runtime.service(LLM).triage(TICKET), runtime.service(FAST).triage(TICKET)
    finally:
        runtime.close()
    assert (llm.backend["summary"], llm.backend["reply"]) == ("classical:extractive", "llm:fake-model")
    assert (fast.backend["summary"], fast.backend["reply"]) == ("classical:extractive", "classical:template")
