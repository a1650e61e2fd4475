"""Whole steps of an SOP section to quote in a reply: list items with their nested items, never a cut sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from retrieval.hybrid import Hit
from retrieval.markdown import Chunk, FrontMatterError, chunk_markdown

MAX_STEPS = 3
STEP_CHARS = 700  # whole steps are quoted while they fit in this; the first one always is
ITEM = re.compile(r"^(\d+[.)]|[-*•])\s+")
NESTED = re.compile(r"^\s{2,}(\d+[.)]|[-*•])\s+")
EMPHASIS = re.compile(r"\*\*(.+?)\*\*|__(.+?)__|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|`([^`]+)`")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
TERM = re.compile(r"[a-z0-9][a-z0-9-]{2,}")
NOT_STEPS = ("symptoms", "if that does not work")


def _plain(text: str) -> str:
    """Markdown emphasis and code marks dropped, the words kept."""
    return EMPHASIS.sub(lambda m: next(g for g in m.groups() if g is not None), text)


def whole_steps(text: str) -> tuple[list[str], list[str]]:
    """A section's list items, each whole (its wrapped lines and nested items with it), and the sentences of the text
    before the list; a section without a list has no items and all its sentences."""
    items: list[str] = []
    prose: list[str] = []
    open_item = False
    for line in text.splitlines():
        if not line.strip():
            open_item = False
        elif NESTED.match(line) and items:
            items[-1] += "\n   " + " ".join(line.split())
            open_item = True
        elif ITEM.match(line.strip()):
            items.append(" ".join(line.split()))
            open_item = True
        elif open_item:
            items[-1] += " " + " ".join(line.split())
        elif not items:
            prose.append(" ".join(line.split()))
    sentences = [s for s in SENTENCE_END.split(" ".join(prose)) if s]
    return [_plain(i) for i in items], [_plain(s) for s in sentences]


def quote_steps(text: str, max_steps: int = MAX_STEPS, max_chars: int = STEP_CHARS) -> tuple[list[str], int]:
    """Whole steps (else whole sentences) of a section to quote, at most `max_steps` and, after the first, while they
    fit in `max_chars`; and how many steps were left out. A lead-in that ends with ":" comes with its list."""
    items, sentences = whole_steps(text)
    lead = [sentences[-1]] if items and sentences and sentences[-1].endswith(":") else []
    pool = items or sentences
    quoted: list[str] = []
    used = sum(len(x) for x in lead)
    for step in pool[:max_steps]:
        if quoted and used + len(step) > max_chars:
            break
        quoted.append(step)
        used += len(step)
    return [*lead, *quoted], (len(pool) - len(quoted)) if items else 0


class SopSections:
    """The sections of each SOP file a hit comes from, read once per file from the knowledge base's sops folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, list[Chunk]] = {}

    def of(self, hit: Hit) -> list[Chunk]:
        if hit.path not in self._files:
            try:
                chunks = chunk_markdown((self.root / hit.path).read_text(encoding="utf-8"), hit.path)
            except (OSError, UnicodeDecodeError, FrontMatterError):
                chunks = []  # a file gone since the index was built: the hit's own section is quoted
            self._files[hit.path] = chunks
        return self._files[hit.path]


def _terms(text: str) -> set[str]:
    return {t.rstrip("s") for t in TERM.findall(text.lower())}


def best_section(hit: Hit, sections: Sequence[Chunk], ticket_text: str) -> tuple[str, str, str]:
    """(ref, section, text) to quote: the hit's own, unless it is the SOP's introduction, its symptoms or its last
    resort; then the section of the same SOP with a list of steps that shares the most words with the ticket (its
    heading counted twice)."""
    if hit.section and not hit.section.lower().startswith(NOT_STEPS):
        return hit.ref, hit.section, hit.text
    terms = _terms(ticket_text)
    candidates = [
        c for c in sections if c.doc_id == hit.doc_id and not c.section.lower().startswith(NOT_STEPS) and c.section
    ]
    candidates = [c for c in candidates if whole_steps(c.text)[0]]
    if not candidates:
        return hit.ref, hit.section, hit.text
    best = max(candidates, key=lambda c: 2 * len(terms & _terms(c.section)) + len(terms & _terms(c.text)))
    return best.ref, best.section, best.text
