"""SopIndex: chunk metadata, FAISS vectors and a BM25 index, saved and loaded as one checked folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval.embedders import Embedder
from retrieval.errors import IndexMismatch, IndexMissing
from retrieval.lexical import Bm25Index
from retrieval.markdown import Chunk

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _rebuild_cmd(path: Path, source: str | None) -> str:
    return f"triage kb index --kb {source or 'KB_DIR'} --out {path}"


class SopIndex:
    """Searchable chunks: exact inner product (default) or HNSW when `approximate` is set."""

    def __init__(
        self,
        chunks: list[Chunk],
        vectors: Any,
        embedder: Embedder,
        *,
        content_hash: str = "",
        source: str = "",
        approximate: bool = False,
    ) -> None:
        self.chunks = chunks
        self.embedder = embedder
        self.content_hash = content_hash
        self.source = source
        self.approximate = approximate
        self.faiss_index = vectors if isinstance(vectors, faiss.Index) else self._make_faiss(vectors)
        self.lexical = Bm25Index().fit([c.search_text() for c in chunks])

    def _make_faiss(self, vectors: np.ndarray) -> faiss.Index:
        dim = vectors.shape[1]
        index: faiss.Index
        if self.approximate:
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 64
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index

    @classmethod
    def build(
        cls,
        chunks: list[Chunk],
        embedder: Embedder,
        *,
        content_hash: str = "",
        source: str = "",
        approximate: bool = False,
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> SopIndex:
        parts = []
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start : start + batch_size]
            parts.append(embedder.embed([c.search_text() for c in batch]))
            if progress:
                progress(len(batch))
        vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
        return cls(chunks, vectors, embedder, content_hash=content_hash, source=source, approximate=approximate)

    def __len__(self) -> int:
        return len(self.chunks)

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (chunk positions, inner products) for one normalised query vector."""
        k = min(k, len(self.chunks))
        scores, ids = self.faiss_index.search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, out: Path) -> None:
        """Write beside the target, then swap folders, so a failure leaves the old index intact."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            faiss.write_index(self.faiss_index, str(tmp / "vectors.faiss"))
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
                for chunk in self.chunks:
                    fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
            manifest = {
                "format": FORMAT_VERSION,
                "embedder": self.embedder.name,
                "dim": self.embedder.dim,
                "content_hash": self.content_hash,
                "source": self.source,
                "n_chunks": len(self.chunks),
                "approximate": self.approximate,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def read_manifest(path: Path) -> dict[str, Any]:
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise IndexMissing(str(path), _rebuild_cmd(path, None))
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return manifest

    @classmethod
    def load(cls, path: Path, embedder: Embedder, *, expected_hash: str | None = None) -> SopIndex:
        """Load a saved index; refuse one built with another embedder or from other content."""
        path = Path(path)
        manifest = cls.read_manifest(path)
        source = manifest.get("source") or None
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexMismatch(
                str(path), "format", str(manifest.get("format")), str(FORMAT_VERSION), _rebuild_cmd(path, source)
            )
        if manifest["embedder"] != embedder.name:
            raise IndexMismatch(str(path), "embedder", manifest["embedder"], embedder.name, _rebuild_cmd(path, source))
        if expected_hash is not None and manifest["content_hash"] != expected_hash:
            raise IndexMismatch(
                str(path), "content hash", manifest["content_hash"][:12], expected_hash[:12], _rebuild_cmd(path, source)
            )
        with open(path / "chunks.jsonl", encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh if line.strip()]
        vectors = faiss.read_index(str(path / "vectors.faiss"))
        return cls(
            chunks,
            vectors,
            embedder,
            content_hash=manifest["content_hash"],
            source=manifest["source"],
            approximate=bool(manifest.get("approximate")),
        )
