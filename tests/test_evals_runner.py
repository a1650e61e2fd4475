"""The eval runner on small synthetic data sets: figures, bad data, failures, interruption, report and CLI."""

from __future__ import annotations

import csv
import json
import random
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agents.cli.main import main
from agents.settings import Settings
from evals.backends import ClassicalBackend
from evals.outputs import Prediction, RowOutput
from evals.registry import make_backend
from evals.report import write_report
from evals.runner import EvalRunner
from evals.specs import DatasetSpec, load_spec, load_split
from retrieval.embedders import HashingEmbedder

WORDS = {
    "printer": "printer toner paper jam tray print queue scanner",
    "vpn": "vpn tunnel remote connect globalconnect disconnect home network",
    "password": "password reset locked account login expired keygate sign",
    "email": "outlook mailbox email calendar inbox send receive folder",
}
FILLER = ["please", "help", "thanks", "today", "urgent", "hi", "again", "since", "morning"]


def synthetic(n_per_class: int, seed: int, classes: list[str] | None = None) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for cls in classes or list(WORDS):
        for i in range(n_per_class):
            words = rng.sample(WORDS[cls].split(), 4) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            out.append({"text": " ".join(words), "category": cls, "priority": "P2" if i % 3 else "P3"})
    rng.shuffle(out)
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category", "priority"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_spec(tmp_path: Path, data: Path, name: str = "synth", extra: str = "") -> Path:
    path = tmp_path / f"{name}.v1.yaml"
    path.write_text(
        f"name: {name}\nversion: 1\npath: {data}\ntext_columns: [text]\n"
        "labels:\n  category: category\n  priority: priority\n"
        "split:\n  test_size: 0.2\n  seed: 42\nfolds: 3\nlicence: MIT\nsource: generated in the test\n"
        "anchors:\n  - {field: category, metric: accuracy, value: 0.5, label: a guess, source: this test}\n"
        "targets:\n  - {field: category, metric: accuracy, min: 0.8}\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "state", llm_base_url=None, llm_model=None, _env_file=None)


def runner(settings: Settings, **kwargs: Any) -> EvalRunner:
    embedder = HashingEmbedder()
    factory = partial(make_backend, settings=settings, embedder=embedder)
    return EvalRunner(embedder, kwargs.pop("factory", factory), progress=False, latency_sample=5, **kwargs)


def test_every_field_and_backend_gets_its_figures_and_a_report(tmp_path: Path, settings: Settings) -> None:
    spec = load_spec(write_spec(tmp_path, write_csv(tmp_path / "d.csv", synthetic(30, 1))))
    summary = runner(settings).run([spec], ["classical", "llm"])
    ds = summary["datasets"]["synth.v1"]
    assert ds["status"] == "ok" and not summary["partial"]
    assert ds["skipped_backends"]["llm"]  # with its reason, never faked
    assert set(ds["backends"]) == {"classical", "tfidf_lr"}
    cat = ds["results"]["category"]["classical"]
    assert cat["n_scored"] == ds["data"]["n_test"] == 24
    assert cat["accuracy"] >= 0.9  # the classes have disjoint vocabularies
    assert set(cat["per_class"]) == set(WORDS)
    assert sum(map(sum, cat["confusion"]["matrix"])) == 24
    assert 0.0 <= cat["ece"] <= 1.0 and cat["reliability"]
    assert cat["precision_coverage"][0]["coverage"] <= cat["precision_coverage"][-1]["coverage"]
    assert 0.0 <= cat["coverage_at_threshold"] <= 1.0 and "threshold" in cat
    assert "threshold" not in ds["results"]["category"]["tfidf_lr"]  # the reference chose none on held-out rows
    assert ds["backends"]["classical"]["latency_ms_p50"] > 0
    paths = write_report(summary, tmp_path / "out")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| synth.v1 | category | classical | 24 |" in md
    assert "0.5 (a guess; this test)" in md and "target >= 0.80 (met: yes)" in md
    assert "Backend `llm` skipped" in md
    assert (tmp_path / "out" / "plots" / "synth.v1__category_pc.png").stat().st_size > 1000
    assert "<table>" in paths["html"].read_text(encoding="utf-8")
    assert json.loads(paths["summary"].read_text(encoding="utf-8"))["datasets"]["synth.v1"]["status"] == "ok"


def test_an_empty_data_set_is_reported_and_the_next_one_still_runs(tmp_path: Path, settings: Settings) -> None:
    empty = write_csv(tmp_path / "empty.csv", [])
    good = write_csv(tmp_path / "good.csv", synthetic(10, 2))
    specs = [load_spec(write_spec(tmp_path, empty, "empty")), load_spec(write_spec(tmp_path, good, "good"))]
    summary = runner(settings).run(specs, ["classical"])
    assert summary["datasets"]["empty.v1"]["status"] == "error"
    assert "has no rows" in summary["datasets"]["empty.v1"]["reason"]
    assert summary["datasets"]["good.v1"]["status"] == "ok"


def test_a_field_with_one_class_is_skipped_with_the_reason(tmp_path: Path, settings: Settings) -> None:
    rows = [{**r, "priority": "P3"} for r in synthetic(10, 3)]
    spec = load_spec(write_spec(tmp_path, write_csv(tmp_path / "d.csv", rows)))
    ds = runner(settings).run([spec], ["classical"])["datasets"]["synth.v1"]
    assert ds["status"] == "ok"
    assert "one class only" in ds["fields"]["priority"]["error"]
    assert set(ds["results"]) == {"category"}


def test_test_classes_unseen_in_training_are_counted_and_scored_wrong(tmp_path: Path, settings: Settings) -> None:
    train = write_csv(tmp_path / "train.csv", synthetic(15, 4, ["printer", "vpn", "password"]))
    test_rows = synthetic(5, 5)  # includes "email", never seen in training
    test = write_csv(tmp_path / "test.csv", test_rows)
    extra = f"split:\n  test_path: {test}\n"
    spec_path = write_spec(tmp_path, train)
    spec_path.write_text(spec_path.read_text().replace("split:\n  test_size: 0.2\n  seed: 42\n", extra))
    ds = runner(settings).run([load_spec(spec_path)], ["classical"])["datasets"]["synth.v1"]
    unseen = ds["fields"]["category"]["test_classes_unseen_in_train"]
    assert unseen == {"count": 1, "rows": 5, "labels": ["email"]}
    cat = ds["results"]["category"]["classical"]
    assert cat["per_class"]["email"]["recall"] == 0.0
    assert cat["accuracy"] <= 15 / 20


class FlakyBackend(ClassicalBackend):
    """The classical backend, except that it cannot answer tickets mentioning the VPN (like a dead endpoint)."""

    name = "flaky"
    batch_size = 1

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        if "vpn" in texts[0]:
            raise ConnectionResetError("endpoint went away")
        out = super().predict(rows, texts)
        out[0].fields["category"] = Prediction(out[0].fields["category"].label, 1.0, "flaky")
        return out


def test_failures_are_scored_as_wrong_never_dropped(tmp_path: Path, settings: Settings) -> None:
    spec = load_spec(write_spec(tmp_path, write_csv(tmp_path / "d.csv", synthetic(20, 6))))

    def factory(name: str, spec: DatasetSpec) -> Any:
        return (
            FlakyBackend(HashingEmbedder(), folds=3)
            if name == "flaky"
            else make_backend(name, spec, settings=settings, embedder=HashingEmbedder())
        )

    ds = runner(settings, factory=factory).run([spec], ["flaky"])["datasets"]["synth.v1"]
    cat = ds["results"]["category"]["flaky"]
    vpn_rows = sum(1 for text in load_split(spec).test.texts if "vpn" in text)
    assert cat["n_scored"] == 16 and cat["failures"] == vpn_rows > 0
    assert cat["per_class"]["vpn"]["recall"] < 1.0
    assert cat["accuracy"] <= 1 - vpn_rows / 16
    assert ds["backends"]["flaky"]["failed_rows"] == vpn_rows
    assert "endpoint went away" in ds["backends"]["flaky"]["failure_examples"][0]


@pytest.mark.parametrize("how", ["callback", "signal"])
def test_ctrl_c_leaves_partial_results_marked_partial(tmp_path: Path, settings: Settings, how: str) -> None:
    specs = [
        load_spec(write_spec(tmp_path, write_csv(tmp_path / "a.csv", synthetic(25, 7)), "first")),
        load_spec(write_spec(tmp_path, write_csv(tmp_path / "b.csv", synthetic(25, 8)), "second")),
    ]

    def factory(name: str, spec: DatasetSpec) -> Any:
        backend = make_backend(name, spec, settings=settings, embedder=HashingEmbedder())
        backend.batch_size = 4
        return backend

    def on_row(i: int) -> None:
        if i == 9:
            if how == "signal":
                signal.raise_signal(signal.SIGINT)  # a real SIGINT through Python's handler, as Ctrl-C sends
            else:
                raise KeyboardInterrupt

    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and Python then keeps it
    # ignored: install the handler an interactive terminal would give, as Ctrl-C is what this test is about.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = runner(settings, factory=factory, on_row=on_row).run(specs, ["classical"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert summary["partial"] is True
    first = summary["datasets"]["first.v1"]
    assert first["status"] == "partial"
    assert first["backends"]["classical"]["status"] == "partial"
    assert 0 < first["results"]["category"]["classical"]["n_scored"] < first["data"]["n_test"]
    assert "second.v1" not in summary["datasets"]
    md = write_report(summary, tmp_path / "out")["markdown"].read_text(encoding="utf-8")
    assert "PARTIAL RESULTS" in md


def test_retrieval_specs_score_every_search_mode(tmp_path: Path, settings: Settings, tiny_corpus: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    queries = {"GlobalConnect VPN tunnel drops": "vpn.md", "printer jams on floor 2": "printer.md"}
    pairs.write_text("".join(json.dumps({"q": q, "doc": d}) + "\n" for q, d in queries.items()), encoding="utf-8")
    spec_path = tmp_path / "search.v1.yaml"
    spec_path.write_text(
        f"name: search\nversion: 1\nkind: retrieval\npath: {pairs}\ncorpus: {tiny_corpus}\n"
        "text_columns: [q]\nlabels: {doc: doc}\nlicence: MIT\nsource: test\n",
        encoding="utf-8",
    )
    ds = runner(settings).run([load_spec(spec_path)], ["classical"])["datasets"]["search.v1"]
    assert ds["status"] == "ok"
    assert set(ds["results"]["doc"]) == {"lexical", "dense", "hybrid", "hybrid-documents"}  # both fusions gated
    assert ds["results"]["doc"]["lexical"]["recall_at_1"] == 1.0


def test_cli_run_then_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, write_csv(tmp_path / "d.csv", synthetic(20, 9)))
    out = tmp_path / "run"
    missing = tmp_path / "missing.v1.yaml"
    argv = ["eval", "run", str(spec), str(missing), "--embedder", "hashing", "--backends", "classical"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 1  # the missing spec is an error; the other still ran
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["datasets"]["synth.v1"]["status"] == "ok"
    assert "no such spec file" in summary["datasets"][str(missing)]["reason"]
    gate = ["eval", "gate", "--baseline", str(out / "summary.json"), "--current", str(out / "summary.json")]
    assert main(gate) == 0
    summary["datasets"]["synth.v1"]["results"]["category"]["classical"]["accuracy"] += 0.05
    better = tmp_path / "better.json"
    better.write_text(json.dumps(summary), encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "gate", "--baseline", str(better), "--current", str(out / "summary.json")]) == 1
    assert "synth.v1/category/classical/accuracy" in capsys.readouterr().out
    summary["datasets"] = {"other.v1": summary["datasets"]["synth.v1"]}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(summary), encoding="utf-8")
    assert main(["eval", "report", str(out / "summary.json"), str(other), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text(encoding="utf-8"))
    assert list(merged["datasets"]) == ["synth.v1", str(missing), "other.v1"]
    assert "| other.v1 | category | classical |" in (tmp_path / "merged" / "report.md").read_text(encoding="utf-8")
