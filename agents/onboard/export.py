"""The onboarding spec, and the export's rows as tickets: columns checked, repeated ids and empty texts counted."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.errors import DataError
from agents.onboard.tables import Table
from agents.types import INTAKE_NAME, MAX_INTAKE_VALUE_CHARS

FIELD_NAMES = ("category", "team", "priority")
MIN_LABEL_ROWS = 5  # below this, a label's rows cannot be split into training folds and held-out rows


class OnboardSpec(BaseModel):
    """Everything `triage onboard` was asked to do, as given on its command line."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    text_cols: list[str] = Field(min_length=1)
    fields: dict[str, str]  # category (required), team and priority (optional) -> export column
    intake: dict[str, str] = {}  # intake-form value name (e.g. ticket_type) -> export column; the models read them
    id_col: str | None = None
    priority_order: list[str] | None = None
    sops: Path | None = None
    min_label_rows: int = Field(default=20, ge=MIN_LABEL_ROWS)
    holdout: float = Field(default=0.2, ge=0.05, le=0.5)
    sample: int | None = Field(default=None, ge=100)
    seed: int = 42


def name_columns(option: str, values: list[str], form: str, refuse: Callable[[str, str], str | None]) -> dict[str, str]:
    """`option NAME=COLUMN` options as {name: column}, each stripped; `form` completes the error of one that is not
    NAME=COLUMN, `refuse(value, name)` says what is wrong with a name (None: nothing), and no name comes twice."""
    found: dict[str, str] = {}
    for value in values:
        name, sep, column = (part.strip() for part in value.partition("="))
        if not sep or not column:
            raise DataError(option, f"{value!r} is not NAME=COLUMN{form}")
        if (why := refuse(value, name)) is not None:
            raise DataError(option, why)
        if name in found:
            raise DataError(option, f"{name} is given twice ({found[name]!r} and {column!r})")
        found[name] = column
    return found


def parse_intake(values: list[str]) -> dict[str, str]:
    """`--intake name=Column` options as {name: column}; a name is lower-case words joined by _ (Ticket.intake)."""
    form = " with a lower-case NAME (e.g. ticket_type=Type)"

    def refuse(value: str, name: str) -> str | None:
        return None if re.fullmatch(INTAKE_NAME, name) else f"{value!r} is not NAME=COLUMN{form}"

    return name_columns("--intake", values, form, refuse)


def parse_fields(values: list[str]) -> dict[str, str]:
    """`--field name=Column` options as {name: column}; category is required, names are category, team, priority."""

    def refuse(value: str, name: str) -> str | None:
        return None if name in FIELD_NAMES else f"{name!r} is not a field: use {', '.join(FIELD_NAMES)}"

    fields = name_columns("--field", values, " (e.g. --field category=Category)", refuse)
    if "category" not in fields:
        raise DataError("--field", "category is required (e.g. --field category=Category)")
    return fields


@dataclass
class Record:
    """One export row as a ticket: where it was, its id, its text and its raw labels (None when the cell is empty)."""

    row: int  # 1-based data row (the header not counted)
    id: str
    title: str
    body: str
    labels: dict[str, str | None] = field(default_factory=dict)
    intake: dict[str, str] = field(default_factory=dict)  # the row's intake-form values, empty cells left out

    def training_row(self, ids: dict[str, str | None]) -> dict[str, Any]:
        """The record as a training ticket (tickets.jsonl) with these label ids."""
        return {"id": self.id, "title": self.title, "body": self.body, "intake": self.intake, **ids}


@dataclass
class Export:
    """The export's tickets, and every row that did not become one, counted by reason."""

    table: Table
    records: list[Record]
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    no_text: int = 0
    missing_ids: int = 0


def check_columns(table: Table, spec: OnboardSpec) -> None:
    """Every named column exists; else one line naming what is missing and the columns the file has."""
    wanted = [(c, "--text-col") for c in spec.text_cols] + [(c, f"--field {n}={c}") for n, c in spec.fields.items()]
    wanted += [(c, f"--intake {n}={c}") for n, c in spec.intake.items()]
    leaks = sorted(set(spec.intake.values()) & {*spec.text_cols, *spec.fields.values()})
    if leaks:
        raise DataError("--intake", f"{', '.join(leaks)} is also a text or label column: a label would leak")
    if spec.id_col:
        wanted.append((spec.id_col, "--id-col"))
    missing = [(c, option) for c, option in wanted if c not in table.columns]
    if not missing:
        return
    parts = []
    for column, option in missing:
        close = difflib.get_close_matches(column, table.columns, n=1, cutoff=0.6)
        parts.append(f"{column!r} ({option}{f'; did you mean {close[0]!r}?' if close else ''})")
    raise DataError(table.source, f"has no column {', '.join(parts)}; its columns are: {', '.join(table.columns)}")


def _cell(row: dict[str, object], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def read_export(table: Table, spec: OnboardSpec) -> Export:
    """The rows as records: the first text column is the title and the others the body (one text column: the body);
    a repeated id keeps its first row; a row with no text at all is counted, not kept."""
    check_columns(table, spec)
    export = Export(table=table, records=[])
    seen: set[str] = set()
    for n, row in enumerate(table.rows, start=1):
        given = _cell(row, spec.id_col) if spec.id_col else ""
        export.missing_ids += bool(spec.id_col) and not given
        ticket_id = given or f"row-{n}"
        if ticket_id in seen:
            export.duplicates += 1
            if len(export.duplicate_examples) < 5:
                export.duplicate_examples.append(ticket_id)
            continue
        seen.add(ticket_id)
        texts = [_cell(row, c) for c in spec.text_cols]
        if not any(texts):
            export.no_text += 1
            continue
        title, body = ("", texts[0]) if len(texts) == 1 else (texts[0], "\n".join(t for t in texts[1:] if t))
        labels = {name: (_cell(row, column) or None) for name, column in spec.fields.items()}
        intake = {name: _cell(row, column)[:MAX_INTAKE_VALUE_CHARS] for name, column in spec.intake.items()}
        intake = {name: value for name, value in intake.items() if value}
        record = Record(row=n, id=ticket_id, title=title, body=body, labels=labels, intake=intake)
        export.records.append(record)
    if not export.records:
        raise DataError(table.source, f"no row has text in {', '.join(spec.text_cols)} ({len(table.rows)} rows read)")
    return export
