"""Read labelled rows from CSV, TSV, JSONL, or a zip holding one; lines that are not UTF-8 are read as cp1252."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.errors import DataError

csv.field_size_limit(10_000_000)
FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson")
FALLBACKS = ("cp1252", "latin-1")  # latin-1 decodes any byte: the last resort for the 5 bytes cp1252 leaves out
log = logging.getLogger(__name__)


class Table(BaseModel):
    """The rows of one export file, its columns in first-seen order, and how its bytes were decoded."""

    model_config = ConfigDict(extra="forbid")

    source: str  # the path, or path:member for a zip
    rows: list[dict[str, Any]]
    columns: list[str]
    encoding: str  # "utf-8", or "utf-8 with N lines read as cp1252" when some lines were not UTF-8
    fallback_lines: dict[str, int] = {}  # encoding -> lines decoded with it because they were not UTF-8
    ragged_rows: int = 0  # CSV rows with more cells than the header (the extra cells are ignored)


def decode(raw: bytes) -> tuple[str, dict[str, int]]:
    """The text and, per fallback encoding, how many lines needed it. Lines are decoded one by one, so a file that
    mixes UTF-8 lines with cp1252 lines (two exports pasted together) keeps both readable."""
    try:
        return raw.decode("utf-8-sig"), {}
    except UnicodeDecodeError:
        pass
    used: Counter[str] = Counter()
    lines = []
    for n, line in enumerate(raw.split(b"\n")):
        try:
            lines.append(line.decode("utf-8-sig" if n == 0 else "utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        for encoding in FALLBACKS:
            try:
                lines.append(line.decode(encoding))
                used[encoding] += 1
                break
            except UnicodeDecodeError:
                continue
    return "\n".join(lines), dict(used)


def _json_rows(text: str, source: str) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(source, f"line {n} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(source, f"line {n} is not a JSON object")
        rows.append(row)
    return rows


def parse(name: str, raw: bytes, source: str) -> Table:
    """One file's bytes as a Table; the format comes from the file name's ending."""
    lower = name.lower()
    if not lower.endswith(FORMATS):
        raise DataError(source, "unknown format: expected .csv, .tsv, .jsonl or a .zip holding one")
    text, fallback = decode(raw)
    ragged = 0
    if lower.endswith((".jsonl", ".ndjson")):
        rows = _json_rows(text, source)
        columns = list(dict.fromkeys(k for row in rows for k in row))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if lower.endswith(".tsv") else ",")
        rows = []
        for row in reader:
            extra = row.pop(None, None)  # type: ignore[call-overload]
            ragged += extra is not None
            rows.append(row)
        columns = [c for c in reader.fieldnames or [] if c is not None]
    if not rows:
        raise DataError(source, "has no rows" + (f" (only the header: {', '.join(columns)})" if columns else ""))
    encoding = "utf-8"
    if fallback:
        encoding += " with " + ", ".join(f"{n} lines read as {enc}" for enc, n in fallback.items())
        log.warning("%s: %s (they were not UTF-8)", source, encoding)
    return Table(
        source=source, rows=rows, columns=columns, encoding=encoding, fallback_lines=fallback, ragged_rows=ragged
    )


def read_table(path: Path | str) -> Table:
    """Read a CSV, TSV or JSONL file, or a zip that holds exactly one of them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such file")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith(FORMATS) and not n.endswith("/")]
                if len(names) != 1:
                    raise DataError(str(path), f"the zip must hold exactly one data file, found {names}")
                return parse(names[0], zf.read(names[0]), f"{path}:{names[0]}")
        except zipfile.BadZipFile:
            raise DataError(str(path), "is not a readable zip file") from None
    return parse(path.name, path.read_bytes(), str(path))


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    """Just the rows of `read_table`."""
    return read_table(path).rows


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
