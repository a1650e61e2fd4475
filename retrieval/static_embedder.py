"""Static MiniLM vectors: one distilled vector per vocabulary token, averaged per text (no transformer at run time).

The distillation follows the Model2Vec recipe: every token of the MiniLM vocabulary is embedded on its own by the
real model ("[CLS] token [SEP]", mean-pooled), the table is reduced with PCA, and each row is down-weighted by how
frequent its token is assumed to be (Zipf over the vocabulary order, SIF weights). A text's vector is the mean of
its tokens' rows: a table lookup instead of a transformer pass, and no context ("not working" is the mean of "not"
and "working"). Measured speed and accuracy: evals/reports/embedding_runtimes.md and evals/reports/static/.
It is built once from the bundled weights and cached beside the ONNX exports.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders import MINILM_NAME, _normalise, minilm_path, model_fingerprint

log = logging.getLogger(__name__)
RECIPE = "minilm-static.v1"  # bump when the distillation below changes: cached tables carry it in their name
SKIPPED_TOKENS = re.compile(r"^\[(unused\d+|PAD|CLS|SEP|MASK|UNK)\]$")
MAX_TOKENS = 512  # per text; a static vector does not get better from the tail of a 1 MB paste


def static_name(dims: int) -> str:
    """The vector-space name of a static table with `dims` columns (stored in index and model manifests)."""
    return f"{MINILM_NAME}+static-{dims}"


def distill_table(vocab: dict[str, int], embed_ids: Any, dims: int, sif: float = 1e-4) -> np.ndarray:
    """One row per token id: the model's vector for the token alone, PCA to `dims`, SIF-weighted.

    `embed_ids(input_ids, attention_mask) -> (n, hidden)` runs the real model; skipped tokens get a zero row.
    """
    from sklearn.decomposition import PCA

    kept = sorted(i for token, i in vocab.items() if not SKIPPED_TOKENS.match(token))
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    rows = []
    for start in range(0, len(kept), 1024):
        ids = np.array([[cls, t, sep] for t in kept[start : start + 1024]], dtype=np.int64)
        rows.append(np.asarray(embed_ids(ids, np.ones_like(ids)), dtype=np.float32))
    vectors = np.concatenate(rows)
    vectors = PCA(n_components=min(dims, vectors.shape[1]), random_state=0).fit_transform(vectors)
    # Zipf: the vocabulary lists frequent word pieces first, so rank r stands for probability ~ 1 / (r + 2)
    probability = 1.0 / np.arange(2, len(kept) + 2)
    probability /= probability.sum()
    vectors *= (sif / (sif + probability))[:, None]
    table = np.zeros((max(vocab.values()) + 1, vectors.shape[1]), dtype=np.float32)
    table[kept] = vectors
    return table


class StaticMiniLMEmbedder:
    """Mean of distilled MiniLM token vectors: no transformer at run time, vectors of their own."""

    def __init__(self, cache_dir: Path, dims: int = 256, model_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.dim = dims
        self.model_dir = model_dir or minilm_path()
        self.name = static_name(dims)
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None

    @property
    def path(self) -> Path:
        fingerprint = model_fingerprint(self.model_dir, f"{RECIPE}|dims={self.dim}")
        return self.cache_dir / f"minilm-static{self.dim}-{fingerprint}.npy"

    def load(self) -> None:
        """Open the cached table, distilling it first when it is missing or unreadable."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        path = self.path
        table = None
        if path.exists():
            try:
                table = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:  # truncated or foreign: distil again rather than fail
                log.warning("cached static table %s is unreadable (%s): distilling it again", path, exc)
        if table is None or table.shape != (tokenizer.get_vocab_size(), self.dim):
            log.info("distilling static MiniLM vectors to %s (once)", path)
            table = self._distil(tokenizer.get_vocab(), path)
        self._tokenizer = tokenizer
        self._table = table

    def _distil(self, vocab: dict[str, int], path: Path) -> np.ndarray:
        from retrieval.onnx_embedder import OnnxMiniLMEmbedder

        encoder = OnnxMiniLMEmbedder(self.cache_dir, quantize=False, model_dir=self.model_dir)
        table = distill_table(vocab, encoder.embed_ids, self.dim)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".static-", suffix=".npy", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, table, allow_pickle=False)
        os.replace(tmp, path)
        return table

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._table is None:
            self.load()
        assert self._table is not None
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        lengths = np.array([len(e.ids) for e in encoded])
        ids = np.fromiter((i for e in encoded for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        sums = np.zeros((len(texts), self.dim), dtype=np.float32)
        if len(ids):  # sum each text's rows: one scatter-add over all tokens of the batch
            np.add.at(sums, np.repeat(np.arange(len(texts)), lengths), self._table[ids])
        return _normalise(sums)  # the mean and the sum point the same way; a text with no known token stays zero
