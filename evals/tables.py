"""Read labelled rows from CSV, JSONL, or a zip holding one, and pick text and label columns (agents/onboard/tables)."""

from __future__ import annotations

from agents.onboard.tables import read_rows, read_table, texts_and_labels

__all__ = ["read_rows", "read_table", "texts_and_labels"]
