"""How a written text is checked against reference facts and SOP citations: folded whole-word matches."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "«": '"', "»": '"'})
CITE = re.compile(r"\[([a-z0-9][a-z0-9_.-]*)(?:#[^\]]*)?\]")


def fold(text: str) -> str:
    """Lower case, accents and curly quotes folded, whitespace collapsed: how facts and quotes are compared."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(text.translate(QUOTES).casefold().split())


def mentions(text: str, forms: Sequence[str]) -> bool:
    """Whether any surface form occurs in the text as whole words."""
    folded = fold(text)
    return any(re.search(rf"(?<![a-z0-9]){re.escape(fold(f))}(?![a-z0-9])", folded) for f in forms)


def cited(text: str, sop_ids: set[str]) -> list[str]:
    """The SOP ids the text cites as `[sop-id]` or `[sop-id#section]`, known ids only, in order."""
    return [m.group(1) for m in CITE.finditer(text) if m.group(1) in sop_ids]


def keeps_all_facts(row: dict[str, Any], text: str) -> bool | None:
    """Whether a summary keeps every fact the reference row states; None for a row that states none."""
    stated = [kind for kind, forms in row["facts"].items() if forms]
    return all(mentions(text, row["facts"][k]) for k in stated) if stated else None


def cites_rightly(row: dict[str, Any], text: str, sop_ids: set[str]) -> bool:
    """Whether a reply cites a right SOP where the reference says one fits, and no SOP where none does."""
    refs = set(cited(text, sop_ids))
    return bool(refs & set(row["sops"])) if row["sop_relevant"] else not refs
