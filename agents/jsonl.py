"""JSON Lines files: one object per non-empty line; a bad line is a DataError naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.errors import DataError


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), f"line {number} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(str(path), f"line {number} is not a JSON object")
            rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """One compact JSON object per line, UTF-8 (what read_jsonl reads back)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
