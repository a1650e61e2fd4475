"""Versioned data-set specs (evals/datasets/*.yaml): load, validate, read the rows and split them."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from sklearn.model_selection import train_test_split

from agents.classical.field_tokens import with_field_tokens
from agents.errors import DataError
from agents.settings import PROJECT_DIR
from evals.tables import read_rows

DATASETS_DIR = PROJECT_DIR / "evals" / "datasets"
Kind = Literal["classification", "retrieval", "answers"]


class DataAbsent(DataError):
    """An optional data set (shared data outside the project) is not on this machine: skip it, do not fail."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(_Model):
    """Either a given test file, or a stratified fraction of the one file."""

    test_path: str | None = None
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 42
    stratify: str | None = None  # a label field; default: the first one

    def describe(self) -> str:
        return "given test file" if self.test_path else f"stratified {self.test_size:g} seed {self.seed}"


class Anchor(_Model):
    """A figure published for the same data and task, to hold ours against."""

    field: str
    metric: str
    value: float
    label: str  # the method, e.g. "TF-IDF + LR"
    source: str
    note: str = ""


class Target(_Model):
    field: str
    metric: str
    min: float


class DatasetSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    version: int = Field(ge=1)
    kind: Kind = "classification"
    description: str = ""
    path: str
    format: Literal["csv", "tsv", "jsonl", "zip"] | None = None
    optional: bool = False  # shared data outside the project: skipped with a message when absent
    kb: bool = False  # labels follow the demo taxonomy and catalogue: the full service can be evaluated
    corpus: str | None = None  # retrieval: the folder of Markdown documents
    text_columns: list[str] = Field(min_length=1)
    # opt-in: columns known at intake (chosen on the form, e.g. ticket_type) that enter the text as one token each
    # (`field_<column>_<value>`, agents/classical/field_tokens.py); never a label column, which would leak
    feature_columns: list[str] = []
    labels: dict[str, str] = {}  # field -> column
    split: SplitSpec = SplitSpec()
    folds: int = Field(default=5, ge=2)
    licence: str
    source: str
    anchors: list[Anchor] = []
    targets: list[Target] = []
    _root: Path = PrivateAttr(default=PROJECT_DIR)

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.kind != "answers" and not self.labels:
            raise ValueError("labels: name at least one field -> column")
        if self.kind == "retrieval" and not self.corpus:
            raise ValueError("corpus: a retrieval spec needs the folder of documents")
        if self.format and not self.path.lower().endswith(f".{self.format}"):
            raise ValueError(f"format {self.format!r} does not match the path {self.path!r}")
        refs: list[Anchor | Target] = [*self.anchors, *self.targets]
        for ref in refs:
            if ref.field not in self.labels:
                raise ValueError(f"anchor/target field {ref.field!r} is not one of the labels {sorted(self.labels)}")
        leaks = sorted(set(self.feature_columns) & {*self.labels.values(), *self.text_columns})
        if leaks:
            raise ValueError(f"feature_columns {leaks} are also label or text columns: a label would leak")
        if self.split.stratify and self.split.stratify not in self.labels:
            raise ValueError(f"split.stratify {self.split.stratify!r} is not one of the labels {sorted(self.labels)}")
        return self

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def resolve(self, rel: str) -> Path:
        """A path from the spec: absolute as given, relative to the project root (or the root given on load)."""
        path = Path(rel)
        return path if path.is_absolute() else (self._root / path).resolve()


def load_spec(path: Path | str, root: Path | None = None) -> DatasetSpec:
    """Read and validate one spec; its relative paths start from `root` (default: the project root)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such spec file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(str(path), f"is not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(str(path), "must be a YAML mapping")
    try:
        spec = DatasetSpec(**raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise DataError(str(path), f"{where}: {first['msg']}") from None
    stem = re.sub(r"\.ya?ml$", "", path.name)
    if stem != spec.id:
        raise DataError(str(path), f"file name must be {spec.id}.yaml (name and version), not {path.name}")
    if root is not None:
        spec._root = Path(root)
    return spec


@dataclass
class Table:
    """Rows of one data set: the raw rows, the joined texts, and the labels per field."""

    rows: list[dict[str, Any]]
    texts: list[str]
    labels: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, index: list[int]) -> Table:
        return Table(
            [self.rows[i] for i in index],
            [self.texts[i] for i in index],
            {k: [v[i] for i in index] for k, v in self.labels.items()},
        )


@dataclass
class SplitData:
    train: Table
    test: Table
    info: dict[str, Any]


def read_table(spec: DatasetSpec, rel: str) -> tuple[Table, int]:
    """Rows with every label present, and how many rows were dropped for an empty label."""
    path = spec.resolve(rel)
    if not path.is_file() and spec.optional:
        raise DataAbsent(str(path), "is not on this machine (optional shared data): skipped")
    rows = read_rows(path)
    if not rows:
        raise DataError(str(path), "has no rows")
    columns = set().union(*(r.keys() for r in rows[:50]))
    for col in [*spec.text_columns, *spec.feature_columns, *spec.labels.values()]:
        if col not in columns:
            raise DataError(str(path), f"has no column {col!r}; columns are {sorted(columns)}")
    kept = [r for r in rows if all(str(r.get(c) or "").strip() for c in spec.labels.values())]
    if not kept:
        raise DataError(str(path), f"every row has an empty label in {sorted(spec.labels.values())}")
    texts = ["\n".join(str(r.get(c) or "") for c in spec.text_columns).strip() for r in kept]
    texts = [with_field_tokens(t, r, spec.feature_columns) for t, r in zip(texts, kept, strict=True)]
    labels = {f: [str(r[c]).strip() for r in kept] for f, c in spec.labels.items()}
    return Table(kept, texts, labels), len(rows) - len(kept)


def split_indices(labels: list[str], test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified where every class has two rows; classes with one row go to training (as `triage eval classify`)."""
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    singles = [i for i, lab in enumerate(labels) if counts[lab] < 2]
    rest = [i for i, lab in enumerate(labels) if counts[lab] >= 2]
    if len(rest) < 2:
        raise DataError("split", f"too few rows to split: {len(labels)} rows, {len(rest)} in classes with 2+ rows")
    n_classes = len({labels[i] for i in rest})
    stratify = [labels[i] for i in rest] if round(len(rest) * test_size) >= n_classes else None
    train, test = train_test_split(rest, test_size=test_size, random_state=seed, stratify=stratify)
    return list(train) + singles, list(test)


def load_split(spec: DatasetSpec, limit: int | None = None) -> SplitData:
    """Train and test tables for a classification spec; `limit` keeps a seeded sample of at most N test rows."""
    table, dropped = read_table(spec, spec.path)
    if spec.split.test_path:
        train = table
        test, dropped_test = read_table(spec, spec.split.test_path)
        dropped += dropped_test
    else:
        strat = spec.split.stratify or next(iter(spec.labels))
        tr, te = split_indices(table.labels[strat], spec.split.test_size, spec.split.seed)
        train, test = table.take(tr), table.take(te)
    n_test_full = len(test)
    if limit is not None and limit < len(test):
        keep = sorted(random.Random(spec.split.seed).sample(range(len(test)), limit))
        test = test.take(keep)
    info = {
        "split": spec.split.describe(),
        "n_train": len(train),
        "n_test": len(test),
        "n_test_before_limit": n_test_full,
        "rows_dropped_empty_label": dropped,
    }
    return SplitData(train, test, info)
