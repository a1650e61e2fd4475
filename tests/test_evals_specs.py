"""Data-set specs: the committed ones load; bad specs and bad data give errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.errors import DataError
from evals.specs import DATASETS_DIR, DataAbsent, load_spec, load_split, split_indices

SPEC = """\
name: tiny
version: 1
path: {path}
text_columns: [title, body]
labels:
  category: category
split:
  test_size: 0.25
  seed: 7
licence: MIT
source: written for this test
"""


def write_spec(tmp_path: Path, body: str, name: str = "tiny.v1.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(n: int = 40) -> list[dict]:
    return [{"title": f"t{i}", "body": f"body {i}", "category": "a" if i % 2 else "b"} for i in range(n)]


def test_every_committed_spec_loads_and_is_named_by_version() -> None:
    specs = [load_spec(p) for p in sorted(DATASETS_DIR.glob("*.yaml"))]
    ids = {s.id for s in specs}
    assert {"demo_tickets.v1", "it_service_tickets.v1", "banking77.v1", "endava_tickets.v1", "runbooks.v1"} <= ids
    for spec in specs:
        if spec.path.startswith("../shared/"):
            assert spec.optional, f"{spec.id}: shared data must be optional (skipped when absent)"
        else:
            assert spec.resolve(spec.path).is_file(), f"{spec.id}: project data {spec.path} is missing"


def test_the_demo_spec_splits_80_20_stratified() -> None:
    data = load_split(load_spec(DATASETS_DIR / "demo_tickets.v1.yaml"))
    assert data.info["n_train"] + data.info["n_test"] == 460
    assert data.info["n_test"] == 92
    assert set(data.test.labels) == {"category", "priority", "team"}
    assert set(data.test.labels["category"]) == set(data.train.labels["category"])


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC.format(path=tmp_path / "nope.jsonl")))
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        load_split(spec)


def test_missing_optional_shared_data_is_skipped_not_failed(tmp_path: Path) -> None:
    body = SPEC.format(path="../shared/elsewhere/nope.csv") + "optional: true\n"
    spec = load_spec(write_spec(tmp_path, body), root=tmp_path)
    with pytest.raises(DataAbsent, match="not on this machine"):
        load_split(spec)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d.jsonl", [{"title": "x", "text": "y", "category": "a"}] * 4)
    spec = load_spec(write_spec(tmp_path, SPEC.format(path=data)))
    with pytest.raises(DataError, match="has no column 'body'"):
        load_split(spec)


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "empty.jsonl"
    data.write_text("", encoding="utf-8")
    spec = load_spec(write_spec(tmp_path, SPEC.format(path=data)))
    with pytest.raises(DataError, match="has no rows"):
        load_split(spec)


def test_relative_paths_start_at_the_root_given(tmp_path: Path) -> None:
    write_rows(tmp_path / "d.jsonl", rows())
    spec = load_spec(write_spec(tmp_path, SPEC.format(path="d.jsonl")), root=tmp_path)
    data = load_split(spec, limit=5)
    assert data.info["n_test"] == 5 and data.info["n_test_before_limit"] == 10
    assert data.info["n_train"] == 30


def test_rows_with_an_empty_label_are_dropped_and_counted(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d.jsonl", [*rows(), {"title": "x", "body": "y", "category": " "}])
    spec = load_spec(write_spec(tmp_path, SPEC.format(path=data)))
    assert load_split(spec).info["rows_dropped_empty_label"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.replace("version: 1", "version: 2"), "file name must be tiny.v2.yaml"),
        (lambda s: s + "anchors:\n  - {field: team, metric: accuracy, value: 0.5, label: x, source: y}\n", "team"),
        (lambda s: s.replace("licence: MIT\n", ""), "licence"),
        (lambda s: s + "colour: blue\n", "colour"),
        (lambda s: s.replace("kind", "x") + "kind: retrieval\n", "corpus"),
        (lambda s: s.replace("test_size: 0.25", "test_size: 1.5"), "test_size"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(tmp_path, change(SPEC.format(path="d.jsonl")))
    with pytest.raises(DataError, match=message):
        load_spec(path)


def test_split_sends_single_row_classes_to_training() -> None:
    labels = ["a"] * 10 + ["b"] * 10 + ["lonely"]
    train, test = split_indices(labels, 0.2, 42)
    assert 20 in train and 20 not in test
    assert sorted(train + test) == list(range(21))
    assert {labels[i] for i in test} == {"a", "b"}
