"""The typed shape of DIR/summary.json: the source, every row accounted for, and per field the held-out figures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agents.onboard.sops import SopImport

FORMAT = "onboard-summary.v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepPoint(_Strict):
    """At one threshold, the held-out rows split three ways (the three shares sum to 1)."""

    threshold: float
    correct: float  # confidence >= threshold and the label right
    wrong: float  # confidence >= threshold and the label wrong
    no_prediction: float  # confidence under the threshold: left to a human


class ValueFigures(_Strict):
    """One value of a field on the held-out rows, at the field's threshold: is it precise enough to apply alone?"""

    support: int  # held-out rows whose true label is this value
    predicted_at_threshold: int  # held-out rows given this value with confidence >= threshold
    precision_at_threshold: float | None  # share of those that were right; None when none was given
    coverage_at_threshold: float | None  # share of the support answered (any value) with confidence >= threshold


class ThresholdFigures(_Strict):
    value: float  # 1.01 means never reached: the field always goes to a human
    target_precision: float
    chosen_on: str
    train_precision: float  # on the training rows' out-of-fold predictions, where it was chosen
    train_coverage: float
    held_out_precision: float | None  # None when no held-out row reaches the threshold
    held_out_coverage: float


class ReferenceFigures(_Strict):
    name: str
    accuracy: float | None  # None when the field has one label (nothing to fit)
    macro_f1: float | None


class ReviewLabel(_Strict):
    label: str
    id: str
    rows: int


class FieldSummary(_Strict):
    column: str | None
    derived_from: str | None = None
    labels: dict[str, int]  # id -> rows in the export (rare labels included)
    review: list[ReviewLabel]  # below --min-label-rows: in the KB, kept out of training
    empty_rows: int
    single_label: str | None = None  # the one label of a constant model
    n_train: int
    n_test: int
    accuracy: float
    macro_f1: float
    reference: ReferenceFigures
    threshold: ThresholdFigures
    sweep: list[SweepPoint]
    per_value: dict[str, ValueFigures]


class SourceSummary(_Strict):
    path: str
    sha256: str
    encoding: str
    columns: list[str]
    ragged_rows: int


class RowAccounting(_Strict):
    """Every row read is in exactly one of duplicates, no_text, tickets and kept_out."""

    read: int
    duplicates: int
    duplicate_examples: list[str]
    missing_ids: int  # rows with an empty --id-col cell (given the id row-N)
    no_text: int
    tickets: int  # rows in DIR/tickets.jsonl: a usable label in every field
    kept_out: int  # rows with text but a field empty or rare
    kept_out_reasons: dict[str, int]  # "field: reason" -> rows (a row may count under two reasons)
    evaluated: int  # rows the held-out evaluation drew from (all rows with text, or the --sample)
    sampled: bool


class OnboardSummary(_Strict):
    format: str = FORMAT
    created_at: str
    machine: str
    seconds: dict[str, float]
    commands: dict[str, str]
    options: dict[str, object]
    source: SourceSummary
    rows: RowAccounting
    fields: dict[str, FieldSummary]
    sops: SopImport | None
    warnings: list[str]
    files: list[str]
