"""Read labelled rows from CSV, JSONL, or a zip holding one, and pick text and label columns."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from agents.errors import DataError

csv.field_size_limit(10_000_000)


def _parse(name: str, raw: bytes, path: str) -> list[dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(path, "is not UTF-8 text") from None
    if name.endswith((".jsonl", ".ndjson")):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, f"line {n} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(path, f"line {n} is not a JSON object")
            rows.append(row)
        return rows
    if name.endswith((".csv", ".tsv")):
        return list(csv.DictReader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ","))
    raise DataError(path, "unknown format: expected .csv, .tsv, .jsonl or a .zip holding one")


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such file")
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith((".csv", ".tsv", ".jsonl", ".ndjson"))]
            if len(names) != 1:
                raise DataError(str(path), f"the zip must hold exactly one data file, found {names}")
            return _parse(names[0], zf.read(names[0]), f"{path}:{names[0]}")
    return _parse(path.name, path.read_bytes(), str(path))


def texts_and_labels(
    rows: list[dict[str, Any]], text_cols: list[str], label_col: str, path: str = "data"
) -> tuple[list[str], list[str]]:
    """Join the text columns with newlines; rows with an empty label are dropped and reported."""
    if not rows:
        raise DataError(path, "has no rows")
    for col in [*text_cols, label_col]:
        if col not in rows[0]:
            raise DataError(path, f"has no column {col!r}; columns are {sorted(rows[0])}")
    texts, labels = [], []
    for row in rows:
        label = row.get(label_col)
        if label is None or str(label).strip() == "":
            continue
        texts.append("\n".join(str(row.get(c) or "") for c in text_cols).strip())
        labels.append(str(label).strip())
    if not labels:
        raise DataError(path, f"column {label_col!r} is empty in every row")
    return texts, labels
