"""Model versions and the retrain gate, with real models trained on demo tickets, a real SQLite store and real
feedback written through Review.feedback: versions are saved, listed, promoted and rolled back; a crash while
saving leaves the pointer as it was; a legacy folder still loads; honest corrections are promoted and poisoned ones
rejected with the figures; bad input is one clear line."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agents.classical.training import TriageModels, load_or_train, save_models
from agents.cli.main import main
from agents.errors import DataError
from agents.jsonl import read_jsonl
from agents.models.gate import Retrainer, RetrainOptions, is_held_out, split_recent
from agents.models.records import NoPreviousVersion, UnknownVersion
from agents.models.reviewed import reviewed_tickets
from agents.models.scoring import predict_fields
from agents.models.versions import VersionStore, current_model_dir, file_digest, write_atomically
from agents.settings import Settings
from agents.store.records import FeedbackIn
from agents.store.review import Review
from agents.store.tickets import Store
from agents.types import Ticket
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import HashingEmbedder


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def settings_for(data_dir: Path, data: Path, folds: int = 3) -> Settings:
    return Settings(data_dir=data_dir, training_data=data, embedder="hashing", train_folds=folds, _env_file=None)


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, demo_rows: list[dict], kb: KnowledgeBase) -> Path:
    """A folder with tickets.jsonl (58 demo tickets, every class) and data/, whose first start saved v0001."""
    root = tmp_path_factory.mktemp("tiny")
    data = write_rows(demo_rows[::8], root / "tickets.jsonl")
    load_or_train(settings_for(root / "data", data), HashingEmbedder(), kb)
    return root


@pytest.fixture
def home(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `tiny` for one test; CLI commands there use the hashing embedder and 3 folds."""
    shutil.copytree(tiny, tmp_path / "home")
    monkeypatch.setenv("TRIAGE_EMBEDDER", "hashing")
    monkeypatch.setenv("TRIAGE_TRAIN_FOLDS", "3")
    return tmp_path / "home"


def cli(home: Path, *args: str) -> int:
    return main([*args, "--data-dir", str(home / "data")])


# --- versions ----------------------------------------------------------------------------------------------------


def test_the_first_start_saves_a_current_version_that_the_next_start_loads(home: Path, kb: KnowledgeBase) -> None:
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    record = versions.record(first)
    assert versions.current_id() == first and first.startswith("v0001-")
    assert record.source == "first-start" and record.data.source_rows == 58 and record.embedder == "hashing-512-3"
    assert Path(record.data.source_file or "").name == "tickets.jsonl"  # (written where `tiny` was made)
    assert record.data.source_sha256 == file_digest(home / "tickets.jsonl")
    assert set(record.figures) == {"category", "priority", "team"}
    assert all(0.0 <= f.coverage <= 1.0 and f.support > 0 for f in record.figures.values())
    trained_at = json.loads((versions.model_dir(first) / "manifest.json").read_text())["info"]["trained_at"]
    models = load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb)
    assert models.info["trained_at"] == trained_at and versions.ids() == [first]  # loaded, not trained again


def test_train_list_promote_and_rollback(home: Path, kb: KnowledgeBase, capsys: pytest.CaptureFixture[str]) -> None:
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    smaller = write_rows(read_jsonl(home / "tickets.jsonl")[:40], home / "s.jsonl")
    assert cli(home, "train", "--data", str(smaller), "--quiet") == 0
    out = capsys.readouterr().out
    second = versions.current_id()
    assert second is not None and second.startswith("v0002-") and f"saved as version {second}, now current" in out
    assert versions.record(second).source == "train" and versions.record(second).data.source_rows == 40

    assert cli(home, "models", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"* {second}") and "train" in line and "40+0" in line for line in lines)
    assert any(line.startswith(f"  {first}") and "first-start" in line and "58+0" in line for line in lines)
    assert cli(home, "models", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["id"], v["current"]) for v in listed] == [(first, False), (second, True)]

    settings = settings_for(home / "data", home / "tickets.jsonl")
    assert load_or_train(settings, HashingEmbedder(), kb).info["n_train"] == 40
    assert cli(home, "models", "promote", "v0001") == 0  # an unambiguous start of the id
    assert f"{first} is now current (was {second})" in capsys.readouterr().out
    assert load_or_train(settings, HashingEmbedder(), kb).info["n_train"] == 58  # the next start serves it
    assert cli(home, "models", "rollback") == 0
    assert f"{second} is current again (was {first})" in capsys.readouterr().out
    assert versions.current_id() == second
    assert cli(home, "models", "rollback") == 0  # each rollback goes one step further back
    assert versions.current_id() == first
    with pytest.raises(NoPreviousVersion, match="nothing to roll back to"):
        versions.rollback()
    assert versions.ids() == [first, second]  # every version kept


def test_a_crash_while_saving_a_version_leaves_no_version_and_the_pointer_as_it_was(
    home: Path, kb: KnowledgeBase
) -> None:
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    pointer = versions.pointer_path.read_bytes()
    models = load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb)

    def crash_after_the_models(folder: Path) -> None:
        save_models(models, folder)  # the models are written in full, then the process "dies"
        raise OSError(28, "No space left on device")

    record = versions.record(first).model_copy(update={"source": "train"})
    with pytest.raises(OSError, match="No space left"):
        versions.create(crash_after_the_models, record, make_current=True)
    assert versions.ids() == [first] and versions.pointer_path.read_bytes() == pointer
    assert not [p for p in (home / "data" / "models" / "versions").iterdir() if p.name.startswith(".")]

    with pytest.raises(TypeError):  # the pointer's own write fails half-way: readers still see the old pointer
        write_atomically(versions.pointer_path, None)  # type: ignore[arg-type]
    assert versions.pointer_path.read_bytes() == pointer and versions.current_id() == first
    (versions.root / ".current.json.abc.tmp").write_text('{"current": "v00', encoding="utf-8")  # a crash's leftover
    assert versions.current_id() == first
    assert load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb).info == models.info


def test_a_models_folder_saved_before_versions_still_loads_and_becomes_the_first_version(
    home: Path, tmp_path: Path, kb: KnowledgeBase
) -> None:
    models = load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb)
    legacy = tmp_path / "legacy" / "models"
    save_models(models, legacy)  # what machines have today: manifest.json and models.joblib at the top
    assert current_model_dir(legacy) == legacy  # read in place by whoever only looks (`triage serve`'s first check)
    from agents.cli.serve import train_first

    settings = settings_for(legacy.parent, home / "tickets.jsonl")
    assert train_first(settings) is False  # usable models: nothing trained
    loaded = load_or_train(settings, HashingEmbedder(), kb)
    assert loaded.info == models.info  # the same models, not retrained
    versions = VersionStore(legacy)
    (adopted,) = versions.ids()
    record = versions.record(adopted)
    assert versions.current_id() == adopted and record.source == "legacy" and record.data.source_rows == 58
    assert record.figures["team"].precision == models.thresholds["team"].precision
    assert not (legacy / "manifest.json").exists() and (versions.model_dir(adopted) / "models.joblib").is_file()
    assert load_or_train(settings, HashingEmbedder(), kb).info == models.info and versions.ids() == [adopted]


# --- bad input ---------------------------------------------------------------------------------------------------


def test_promoting_an_unknown_version_names_the_known_ones(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (first,) = VersionStore(home / "data" / "models").ids()
    assert cli(home, "models", "promote", "v0042") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no model version 'v0042'" in err and first in err
    with pytest.raises(UnknownVersion) as raised:
        VersionStore(home / "data" / "models").resolve("x1")
    assert raised.value.known == [first] and raised.value.ref == "x1"


def test_rolling_back_with_no_previous_version_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (first,) = VersionStore(home / "data" / "models").ids()
    assert cli(home, "models", "rollback") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"triage: nothing to roll back to: no version was current before {first}; " + (
        f"`triage models promote ID` picks any of {first}"
    )
    empty = VersionStore(home / "nothing")
    with pytest.raises(NoPreviousVersion, match="no version is current yet"):
        empty.rollback()


def test_damaged_records_and_pointers_are_named_and_can_be_repaired(
    home: Path, kb: KnowledgeBase, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    assert cli(home, "train", "--data", str(home / "tickets.jsonl"), "--quiet") == 0
    second = versions.current_id()
    capsys.readouterr()
    (versions.folder(first) / "version.json").write_text('{"format": "triage-version.v1", "id": ', encoding="utf-8")
    assert cli(home, "models", "list") == 0  # one damaged record does not hide the others
    out = capsys.readouterr().out
    assert f"{first} unreadable: version.json is not a valid version record" in out and f"* {second}" in out
    assert cli(home, "models", "promote", first) == 2
    err = capsys.readouterr().err
    assert str(versions.folder(first) / "version.json") in err and versions.current_id() == second

    versions.pointer_path.write_text("{not json", encoding="utf-8")
    settings = settings_for(home / "data", home / "tickets.jsonl")
    with pytest.raises(
        DataError, match="current.json: is damaged: name the version to serve with `triage models promote ID`"
    ):
        load_or_train(settings, HashingEmbedder(), kb)
    assert cli(home, "models", "promote", str(second)) == 0  # promote rewrites a damaged pointer
    assert load_or_train(settings, HashingEmbedder(), kb).info["n_train"] == 58

    other = versions.root / "versions" / "v0009-20261204T000000Z"
    shutil.copytree(versions.folder(str(second)), other)
    manifest = other / "model" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("hashing-512-3", "hashing-256-3"), encoding="utf-8")
    capsys.readouterr()
    assert cli(home, "models", "promote", "v0009") == 2  # another embedder than the service's: refused
    assert "trained with embedder 'hashing-256-3' but the service uses 'hashing-512-3'" in capsys.readouterr().err


# --- the retrain gate --------------------------------------------------------------------------------------------

GATE_FOLDS = 2  # each run trains three model sets: two folds keep the gate tests short
EXPENSES = ["mileage claim", "receipt upload", "per diem request", "expense report", "reimbursement", "card statement"]
EXPENSES += ["travel advance"]
STATES = ["stuck in", "missing from", "rejected by", "pending for weeks in", "with a wrong amount in", "duplicated in"]


def ledgerly_tickets() -> list[Ticket]:
    """40 tickets about Ledgerly, an expenses tool the demo tickets never mention."""
    pairs = list(itertools.product(EXPENSES, STATES))[:40]
    return [Ticket(title=f"{e} {s} Ledgerly", body=f"My {e} is {s} Ledgerly.") for e, s in pairs]


def review(store: Store, service: Any, tickets: list[Ticket], labels: list[dict[str, str]]) -> None:
    """Store and triage the tickets, then review them one by one as a person would (Review.feedback): accept the
    prediction, correct the fields in `labels`."""
    records, _ = store.create(tickets)
    results = service.triage_batch([Ticket(id=r.id, title=r.title, body=r.body) for r in records])
    assert store.save_results({r.id: res for r, res in zip(records, results, strict=True)}) == len(records)
    reviewing = Review(store, service.kb)
    for record, fields in zip(records, labels, strict=True):
        reviewing.feedback(FeedbackIn(ticket_id=record.id, action="accept"), "ana")  # what the model got right
        for name, value in fields.items():
            reviewing.feedback(FeedbackIn(ticket_id=record.id, action="correct", field=name, value=value), "ana")


@pytest.fixture(scope="module")
def gate_home(tmp_path_factory: pytest.TempPathFactory, demo_rows: list[dict], kb: KnowledgeBase) -> Path:
    """230 demo tickets (every other one) and a first-start version trained on them."""
    root = tmp_path_factory.mktemp("gate")
    data = write_rows(demo_rows[::2], root / "tickets.jsonl")
    load_or_train(settings_for(root / "data", data, GATE_FOLDS), HashingEmbedder(), kb)
    return root


def retrainer(home: Path, kb: KnowledgeBase) -> Retrainer:
    return Retrainer(VersionStore(home / "data" / "models"), kb, HashingEmbedder(), folds=GATE_FOLDS)


# held-out has about 50 original rows, so one ticket is 0.02 of accuracy: 0.05 leaves room for a ticket or two
TOLERANCE = "0.05"


@pytest.mark.slow  # a real process or a retrain: `make test` only
def test_retrain_promotes_a_candidate_that_learned_from_honest_corrections(
    gate_home: Path, tmp_path: Path, kb: KnowledgeBase, trained_service, monkeypatch, capsys
) -> None:
    home = tmp_path / "home"
    shutil.copytree(gate_home, home)
    monkeypatch.setenv("TRIAGE_EMBEDDER", "hashing")
    monkeypatch.setenv("TRIAGE_TRAIN_FOLDS", str(GATE_FOLDS))
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    store = Store.open(home / "data")
    tickets = ledgerly_tickets()
    review(store, trained_service, tickets, [{"category": "purchase", "team": "procurement"}] * len(tickets))
    store.close()
    base = predict_fields(
        load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb),
        [{"id": "x", "title": t.title, "body": t.body} for t in tickets],
        kb,
        HashingEmbedder(),
    )
    assert base["category"].count("purchase") <= 5  # the original data gets these wrong

    args = ["retrain", "--data", str(home / "tickets.jsonl"), "--recent", "10", "--tolerance", TOLERANCE, "--quiet"]
    assert cli(home, *args, "--dry-run", "--json") == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["decision"] == "dry-run" and dry["passed"] is True and versions.current_id() == first
    assert versions.record(dry["candidate"]).gate.promoted is False  # type: ignore[union-attr]

    assert cli(home, *args) == 0
    out = capsys.readouterr().out
    candidate = versions.current_id()
    assert candidate not in (first, dry["candidate"]) and f"promoted: {candidate} is now current (was {first})" in out
    record = versions.record(str(candidate))
    gate = record.gate
    assert gate is not None and gate.passed and gate.promoted and gate.compared_with == first
    scores = {(s.field, s.set): s for s in gate.scores}
    assert scores[("category", "recent")].n == 10 and scores[("category", "recent")].current <= 0.2
    assert scores[("category", "recent")].candidate >= 0.8 and scores[("team", "recent")].candidate >= 0.8
    assert record.source == "retrain" and record.data.reviewed_rows == 30 and record.data.held_back_reviewed == 10
    assert record.data.source_rows == 230 and record.data.last_feedback_id is not None

    models: TriageModels = load_or_train(settings_for(home / "data", home / "tickets.jsonl"), HashingEmbedder(), kb)
    new = [{"id": "n", "title": "taxi receipt stuck in Ledgerly", "body": "My taxi receipt is stuck in Ledgerly."}]
    assert predict_fields(models, new, kb, HashingEmbedder())["category"] == ["purchase"]

    assert cli(home, *args) == 0  # nothing reviewed since: nothing trained, nothing saved
    assert "skipped: nothing trained" in capsys.readouterr().out and len(versions.ids()) == 3


@pytest.mark.slow  # a real process or a retrain: `make test` only
def test_retrain_rejects_a_candidate_trained_on_poisoned_corrections_and_says_why(
    gate_home: Path, tmp_path: Path, kb: KnowledgeBase, demo_rows: list[dict], trained_service
) -> None:
    home = tmp_path / "home"
    shutil.copytree(gate_home, home)
    versions = VersionStore(home / "data" / "models")
    (first,) = versions.ids()
    categories = sorted({r["category"] for r in demo_rows})
    unseen = demo_rows[1::2][:100]  # demo tickets the original file does not hold
    wrong = [{"category": categories[(categories.index(r["category"]) + 1) % len(categories)]} for r in unseen]
    store = Store.open(home / "data")
    review(store, trained_service, [Ticket(title=r["title"], body=r["body"]) for r in unseen], wrong)
    reviewed = reviewed_tickets(store)
    store.close()
    assert len(reviewed) == 100 and [t.row["category"] for t in reviewed] == [w["category"] for w in wrong]

    report = retrainer(home, kb).run(home / "tickets.jsonl", reviewed, RetrainOptions(tolerance=float(TOLERANCE)))
    assert report.decision == "rejected" and report.passed is False and versions.current_id() == first
    worse = [s for s in report.scores if not s.ok]
    assert ("category", "held-out") in {(s.field, s.set) for s in worse}
    category = next(s for s in worse if s.field == "category")
    assert category.delta < -float(TOLERANCE) and category.n == report.sizes["held_out"]
    assert report.reason.startswith(f"worse than {first} by more than the tolerance {TOLERANCE}: ")
    assert (
        f"category on held-out ({category.n} tickets): candidate {category.candidate:.3f} "
        f"vs current {category.current:.3f} ({category.delta:+.3f})"
    ) in report.reason
    record = versions.record(str(report.candidate))  # kept as a version, marked rejected with the reason
    assert record.gate is not None and not record.gate.promoted and record.gate.reason == report.reason
    assert report.sizes["recent"] == 20 and report.sizes["reviewed_trained"] == 80


def test_the_held_out_split_is_stable_and_the_recent_tickets_are_the_newest(demo_rows: list[dict]) -> None:
    held = [r["id"] for r in demo_rows if is_held_out(r, 0.2, 42)]
    assert held == [r["id"] for r in demo_rows[::-1] if is_held_out(r, 0.2, 42)][::-1]  # order does not matter
    assert 0.14 < len(held) / len(demo_rows) < 0.26 and held != [r["id"] for r in demo_rows if is_held_out(r, 0.2, 7)]
    items = list(range(10))
    assert split_recent(items, 0.2, 3) == (list(range(7)), [7, 8, 9])  # type: ignore[arg-type]
    assert split_recent(items, 0.2, 20) == (list(range(5)), list(range(5, 10)))  # type: ignore[arg-type]  # half


def test_retrain_with_nothing_to_learn_trains_nothing_and_without_models_says_what_to_do(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(home, "retrain", "--data", str(home / "tickets.jsonl"), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decision"] == "skipped" and report["candidate"] is None and report["scores"] == []
    assert "0 reviewed ticket(s): at least 2 are needed" in report["reason"]
    assert len(VersionStore(home / "data" / "models").ids()) == 1
    assert main(["retrain", "--data-dir", str(tmp_path / "fresh")]) == 2
    err = capsys.readouterr().err.strip()
    fresh = tmp_path / "fresh" / "models"
    assert err == f"triage: no trained model at {fresh}: run `triage train` (or start the service once)"
    assert not (tmp_path / "fresh").exists()  # refused before a store was created
