"""A few runbooks written to a folder and searched for real (hashing embedder), for the LLM-assisted search tests."""

from __future__ import annotations

from pathlib import Path

from retrieval.corpus import load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import HybridSearcher
from retrieval.index import SopIndex


def runbook_searcher(root: Path, runbooks: dict[str, str], fusion: str = "chunks") -> HybridSearcher:
    """Write each `relative path -> Markdown` under `root` and return a hybrid searcher over a real index of them."""
    for rel, text in runbooks.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return HybridSearcher(SopIndex.build(load_chunks(root), HashingEmbedder()), fusion=fusion)
