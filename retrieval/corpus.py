"""Read a folder of Markdown into chunks, and fingerprint its content so stale indexes can be refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from retrieval.errors import CorpusError
from retrieval.markdown import Chunk, FrontMatterError, chunk_markdown


def markdown_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise CorpusError(str(root), "not a folder; pass the folder that holds the Markdown files")
    files = sorted(p for p in root.rglob("*.md") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CorpusError(str(root), "holds no .md files; point --kb at a folder of Markdown")
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorpusError(str(path), "is not UTF-8 text; convert or remove it") from None
    except OSError as exc:
        raise CorpusError(str(path), f"cannot be read ({exc.strerror}); fix its permissions") from None


def iter_documents(root: Path) -> Iterator[tuple[str, str]]:
    """Yield (relative path, text) for every Markdown file under root."""
    for path in markdown_files(root):
        yield path.relative_to(root).as_posix(), _read(path)


def content_hash(root: Path) -> str:
    """SHA-256 over every Markdown file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in markdown_files(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def load_chunks(root: Path) -> list[Chunk]:
    """Chunk every document; broken front matter is an error naming the file."""
    chunks: list[Chunk] = []
    for rel, text in iter_documents(root):
        try:
            chunks.extend(chunk_markdown(text, rel))
        except FrontMatterError as exc:
            raise CorpusError(str(root / rel), f"{exc}; fix the front matter or remove it") from None
    return chunks
