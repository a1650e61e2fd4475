"""The cascade and LLM backends plug in by name: scored with a scripted chat model, skipped with a reason otherwise."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agents.errors import BackendUnavailable
from agents.llm.chat import ScriptedChat
from agents.settings import DEMO_TICKETS, Settings
from evals.outputs import Skipped
from evals.registry import make_backend
from evals.runner import EvalRunner
from evals.specs import load_spec, load_split
from retrieval.embedders import HashingEmbedder


@pytest.fixture
def demo_spec(tmp_path: Path) -> Path:
    """The demo spec over the first 100 demo tickets (kb: true, fields category, priority, team)."""
    data = tmp_path / "demo.jsonl"
    data.write_text("".join(DEMO_TICKETS.read_text(encoding="utf-8").splitlines(keepends=True)[:100]), "utf-8")
    spec = tmp_path / "minidemo.v1.yaml"
    spec.write_text(
        f"name: minidemo\nversion: 1\npath: {data}\nkb: true\ntext_columns: [title, body]\n"
        "labels: {category: category, priority: priority, team: team}\n"
        "split: {test_size: 0.2, seed: 42, stratify: category}\nfolds: 2\nlicence: MIT\nsource: the project\n",
        encoding="utf-8",
    )
    return spec


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "state", _env_file=None, **kw)


def run(tmp_path: Path, spec: Path, backends: list[str], chat: Any = None) -> dict[str, Any]:
    embedder = HashingEmbedder()
    factory = partial(make_backend, settings=settings(tmp_path), embedder=embedder, chat=chat)
    summary = EvalRunner(embedder, factory, progress=False, latency_sample=3).run([load_spec(spec)], backends)
    return summary["datasets"]["minidemo.v1"]


def always_network(messages: list[dict[str, str]], schema: dict[str, Any] | None) -> dict[str, Any]:
    return {"category": "network", "priority": "P3", "confidence": 0.8}


def test_the_llm_backend_is_scored_with_calls_and_tokens_and_failures_count_wrong(
    tmp_path: Path, demo_spec: Path
) -> None:
    def network_unless_printer(messages: list[dict[str, str]], schema: dict[str, Any] | None) -> Any:
        ticket = messages[-1]["content"].rsplit("<ticket", 1)[-1].lower()
        if "print" in ticket:
            return BackendUnavailable("llm:scripted", "connection refused")
        return always_network(messages, schema)

    chat = ScriptedChat(fn=network_unless_printer, name="llm:scripted")
    ds = run(tmp_path, demo_spec, ["llm"], chat)
    test = load_split(load_spec(demo_spec)).test
    failing = [i for i, t in enumerate(test.texts) if "print" in t.lower()]
    llm = ds["results"]["category"]["llm"]
    assert llm["n_scored"] == len(test) and llm["failures"] == len(failing) > 0  # failed rows kept, scored wrong
    network = sum(1 for i, y in enumerate(test.labels["category"]) if y == "network" and i not in failing)
    assert llm["accuracy"] == pytest.approx(network / len(test))
    assert llm["decided_by"] == {"llm:scripted": len(test) - len(failing)}
    assert ds["backends"]["llm"]["llm_calls_per_ticket"] == pytest.approx((len(test) - len(failing)) / len(test))
    assert ds["backends"]["llm"]["tokens_per_ticket"] > 0
    assert "connection refused" in ds["backends"]["llm"]["failure_examples"][0]


def test_the_cascade_asks_the_llm_only_when_unsure(tmp_path: Path, demo_spec: Path) -> None:
    chat = ScriptedChat(fn=always_network)
    ds = run(tmp_path, demo_spec, ["cascade"], chat)
    cascade = ds["backends"]["cascade"]
    assert cascade["status"] == "ok" and cascade["n_scored"] == ds["data"]["n_test"]
    assert 0.0 <= cascade["llm_calls_per_ticket"] <= 1.0
    assert len(chat.calls) == round(cascade["llm_calls_per_ticket"] * cascade["n_scored"])
    decided = ds["results"]["category"]["cascade"]["decided_by"]
    assert sum(decided.values()) == ds["data"]["n_test"]


def test_without_an_llm_the_backends_are_skipped_with_the_reason(tmp_path: Path, demo_spec: Path) -> None:
    spec = load_spec(demo_spec)
    for name in ("llm", "cascade"):
        backend = make_backend(name, spec, settings=settings(tmp_path, llm_model=None), embedder=HashingEmbedder())
        assert isinstance(backend, Skipped) and "no LLM configured" in backend.reason
    bad_url = settings(tmp_path, llm_model="m", llm_base_url="ftp://x")
    backend = make_backend("llm", spec, settings=bad_url, embedder=HashingEmbedder())
    assert isinstance(backend, Skipped) and "not an http(s) URL" in backend.reason


def test_outside_the_demo_taxonomy_the_llm_backend_runs_but_the_service_backend_says_why_not(
    tmp_path: Path, demo_spec: Path
) -> None:
    foreign = demo_spec.read_text(encoding="utf-8").replace("kb: true\n", "")
    demo_spec.write_text(foreign, encoding="utf-8")
    backend = make_backend(
        "cascade", load_spec(demo_spec), settings=settings(tmp_path), embedder=HashingEmbedder(), chat=ScriptedChat()
    )
    assert not isinstance(backend, Skipped)  # evals/llm_eval.py builds its label set from the spec's own labels
    ds = run(tmp_path, demo_spec, ["service"])
    assert "kb: true" in ds["skipped_backends"]["service"]
    assert json.dumps(ds)  # the record stays serialisable
