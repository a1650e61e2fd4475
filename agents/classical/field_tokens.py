"""Structured intake fields (e.g. a ticket's type chosen on the form) carried in the text as tokens, and one-hot."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from agents.types import ticket_text

PREFIX = "field_"
_TOKEN = re.compile(r"(?<!\w)field_\w+")
_NOT_WORD = re.compile(r"\W+")


def field_token(column: str, value: Any) -> str:
    """`field_<column>_<value>`, lower-case, one word for TF-IDF (non-word characters become `_`)."""
    slug = _NOT_WORD.sub("_", f"{column}_{value}".strip().lower()).strip("_")
    return f"{PREFIX}{slug}"


def with_field_tokens(text: str, row: Mapping[str, Any], columns: Iterable[str]) -> str:
    """The text with one token per column appended to its last line (the first line stays the title)."""
    tokens = [field_token(c, row.get(c)) for c in columns if str(row.get(c) or "").strip()]
    if not tokens:
        return text
    return f"{text} {' '.join(tokens)}" if text else " ".join(tokens)


def read_text(title: str | None, body: str | None, intake: Mapping[str, Any], names: Iterable[str]) -> str:
    """A ticket's text as the field models read it: title and body, plus one token per intake field in `names` that
    it carries. The one definition for training, the service, the retrain gate's scoring and the ticket memory."""
    return with_field_tokens(ticket_text(title, body), intake, names)


def found_tokens(texts: Iterable[str]) -> list[str]:
    """The distinct field tokens in these texts, sorted: the one-hot vocabulary (empty for plain tickets)."""
    return sorted({tok for text in texts for tok in _TOKEN.findall(text)})


def one_hot(texts: list[str], vocabulary: list[str]) -> np.ndarray:
    """One column per vocabulary token, 1.0 where the text carries it; tokens outside the vocabulary are ignored."""
    column = {tok: j for j, tok in enumerate(vocabulary)}
    out = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
    for i, text in enumerate(texts):
        for tok in _TOKEN.findall(text):
            if tok in column:
                out[i, column[tok]] = 1.0
    return out
