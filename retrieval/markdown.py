"""Split Markdown into heading-scoped chunks that remember their document, title and section path."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
MAX_CHUNK_CHARS = 1500
CAMEL = re.compile(r"\b[A-Za-z]*[a-z][A-Z][A-Za-z]*\b")
CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifiers(text: str) -> str:
    """Add the words inside CamelCase identifiers ("KubePodCrashLooping" -> "Kube Pod Crash Looping")."""
    extra = [" ".join(CAMEL_PART.findall(m.group(0))) for m in CAMEL.finditer(text)]
    return f"{text} {' '.join(extra)}" if extra else text


class FrontMatterError(ValueError):
    """Front matter is present but is not a YAML mapping."""


@dataclass(frozen=True)
class Chunk:
    """One section of one document: the unit that is embedded, searched and cited."""

    doc_id: str
    title: str
    section: str  # heading path below the title, "" for the text before the first heading
    path: str  # file path relative to the corpus root, with forward slashes
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """Citation key: doc_id#section."""
        return f"{self.doc_id}#{self.section}" if self.section else self.doc_id

    def search_text(self) -> str:
        return split_identifiers(f"{self.title}. {self.section}. {self.text}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Return (front matter mapping, body); a document without front matter gives ({}, text)."""
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"^---[ \t]*\r?\n(.*?)^---[ \t]*(\r?\n|$)", text, re.DOTALL | re.MULTILINE)
    if not match:
        raise FrontMatterError("front matter opened with '---' but never closed")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise FrontMatterError(f"front matter is not valid YAML ({exc.__class__.__name__})") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FrontMatterError("front matter must be a YAML mapping of key: value")
    return meta, text[match.end() :]


def _windows(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Cut a long section at paragraph boundaries into pieces of at most about `limit` chars."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        if len(para) > limit and current:  # flush before hard-cutting one huge paragraph
            pieces.append(current.strip())
            current = ""
        while len(para) > limit:
            pieces.append(para[:limit])
            para = para[limit:]
        if current and len(current) + len(para) > limit:
            pieces.append(current.strip())
            current = ""
        current = f"{current}\n\n{para}" if current else para
    if current.strip():
        pieces.append(current.strip())
    return pieces


def chunk_markdown(text: str, path: str, doc_id: str | None = None) -> list[Chunk]:
    """Chunk one Markdown document by heading; front matter is optional."""
    meta, body = split_front_matter(text)
    doc_id = str(meta.get("id") or doc_id or Path(path).with_suffix("").as_posix())
    title = str(meta.get("title") or "")
    sections: list[tuple[list[str], list[str]]] = [([], [])]
    stack: list[tuple[int, str]] = []
    in_fence = False
    for line in body.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else HEADING.match(line)
        if not heading:
            sections[-1][1].append(line)
            continue
        level, name = len(heading.group(1)), heading.group(2).strip()
        if level == 1 and not title:
            title = name
            continue
        if level == 1 and name == title:
            continue
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        sections.append(([n for _, n in stack], []))
    title = title or Path(path).stem.replace("_", " ").replace("-", " ")
    keep = json.loads(json.dumps(meta, default=str))  # dates and other YAML types become JSON-safe
    chunks: list[Chunk] = []
    for names, lines in sections:
        content = "\n".join(lines).strip()
        if not content:
            continue
        section = " > ".join(names)
        for piece in _windows(content):
            chunks.append(Chunk(doc_id, title, section, path, piece, keep))
    if not chunks:  # a document with a title only still exists in the index
        chunks.append(Chunk(doc_id, title, "", path, title, keep))
    return chunks
