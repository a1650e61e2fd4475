"""Search hits made from the demo SOPs' real chunks, for tests of what a reply quotes."""

from __future__ import annotations

from retrieval.hybrid import Hit
from retrieval.markdown import Chunk


def hit(chunk: Chunk, dense: float = 0.9) -> Hit:
    """The hit a search would return for `chunk`, with the dense similarity `dense`."""
    return Hit(
        doc_id=chunk.doc_id,
        title=chunk.title,
        section=chunk.section,
        path=chunk.path,
        score=0.03,
        snippet=chunk.text[:240],
        text=chunk.text,
        dense_score=dense,
        meta=chunk.meta,
    )


def section(chunks: list[Chunk], doc_id: str, name: str) -> Chunk:
    """The chunk of SOP `doc_id` whose section is `name`."""
    return next(c for c in chunks if c.doc_id == doc_id and c.section == name)
