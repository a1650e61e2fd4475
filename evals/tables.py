"""Read labelled rows from CSV, JSONL, or a zip holding one, and pick text and label columns (agents/onboard/tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.onboard.tables import read_rows, read_table, texts_and_labels

__all__ = ["read_rows", "read_table", "split_rows", "texts_and_labels"]


def split_rows(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The rows of one split (their `split` column: tune, test ...), or every row for "all"."""
    return [r for r in read_rows(path) if split == "all" or r.get("split") == split]
