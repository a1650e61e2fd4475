"""Picks an embedder by its setting value (TRIAGE_EMBEDDER) or by the name of the vector space it produces."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from retrieval.embedders import (
    MINILM_INT8_NAME,
    MINILM_NAME,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    default_cache_dir,
)

EmbedderKind = Literal["minilm", "minilm-onnx", "minilm-int8", "minilm-static", "hashing"]
EMBEDDERS: tuple[str, ...] = get_args(EmbedderKind)


def embedder_named(name: str, cache_dir: Path | None = None) -> Embedder:
    """The embedder that produces vectors named `name` (as stored in an index manifest)."""
    if name == MINILM_NAME:
        return MiniLMEmbedder()
    if name == MINILM_INT8_NAME:
        return make_embedder("minilm-int8", cache_dir=cache_dir)
    if name.startswith(MINILM_NAME + "+static-"):
        from retrieval.static_embedder import StaticMiniLMEmbedder

        return StaticMiniLMEmbedder(cache_dir or default_cache_dir(), dims=int(name.rsplit("-", 1)[1]))
    match = re.fullmatch(r"hashing-(\d+)-(\d+)", name)
    if match:
        return HashingEmbedder(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"unknown embedder {name!r}")


def make_embedder(
    kind: str, precision: str = "auto", cache_dir: Path | None = None, threads: int | None = None
) -> Embedder:
    """Pick an embedder by setting value: 'minilm' (torch, at `precision`), 'minilm-onnx' (the same vectors from
    onnxruntime), 'minilm-int8' (onnxruntime, int8 weights: vectors of their own), 'minilm-static' (distilled
    token vectors, no transformer at run time: vectors of their own) or 'hashing'. `threads` caps an onnxruntime
    session's intra-op pool (None: onnxruntime's default, one spinning thread per core)."""
    if kind == "minilm":
        return MiniLMEmbedder(precision=precision)
    if kind in ("minilm-onnx", "minilm-int8"):
        from retrieval.onnx_embedder import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder(cache_dir or default_cache_dir(), quantize=kind == "minilm-int8", threads=threads)
    if kind == "minilm-static":
        from retrieval.static_embedder import StaticMiniLMEmbedder

        return StaticMiniLMEmbedder(cache_dir or default_cache_dir())
    if kind.startswith("hashing"):
        return HashingEmbedder()
    raise ValueError(f"unknown embedder {kind!r}: expected one of {', '.join(EMBEDDERS)}")
