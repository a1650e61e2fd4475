"""The onnxruntime MiniLM: same vectors as torch in float32, close ones in int8, exported once and cached."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import MINILM_NAME, MiniLMEmbedder
from retrieval.factory import embedder_named, make_embedder
from retrieval.onnx_embedder import OnnxMiniLMEmbedder

pytestmark = pytest.mark.slow  # loads the real MiniLM weights and exports or distils them: `make test` only

TEXTS = [
    "How do I reset my password?",
    "VPN error 809 when connecting from the hotel",
    "The label printer in the Leeds warehouse prints blank labels since this morning " * 12,  # > 256 tokens
    "",
    "🙂🙂",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return MiniLMEmbedder(precision="float32").embed(TEXTS)


def test_float32_gives_the_torch_vectors(cache: Path, torch_vectors: np.ndarray) -> None:
    embedder = make_embedder("minilm-onnx", cache_dir=cache)
    vectors = embedder.embed(TEXTS)
    assert embedder.name == MINILM_NAME  # same vector space: indexes built by torch stay valid
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert (vectors * torch_vectors).sum(1).min() > 0.9999  # truncation at 256 tokens included


def test_int8_is_close_but_named_apart(cache: Path, torch_vectors: np.ndarray) -> None:
    embedder = make_embedder("minilm-int8", cache_dir=cache)
    vectors = embedder.embed(TEXTS)
    cosine = (vectors * torch_vectors).sum(1)
    assert cosine.min() > 0.95 and cosine.mean() > 0.98
    assert embedder.name != MINILM_NAME
    again = embedder_named(embedder.name, cache_dir=cache)  # what `kb search` does with a saved index
    # a ticket's vector never depends on the tickets batched with it
    np.testing.assert_allclose(again.embed(TEXTS[1:3]), vectors[1:3], atol=1e-6)


def test_batch_order_and_single_texts_agree(cache: Path) -> None:
    embedder = OnnxMiniLMEmbedder(cache, quantize=False, batch_size=2)
    batch = embedder.embed(TEXTS)
    one_by_one = np.vstack([embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)  # padding never leaks into the mean
    assert embedder.embed([]).shape == (0, 384)


def test_the_export_is_cached_once(cache: Path) -> None:
    embedder = OnnxMiniLMEmbedder(cache, quantize=False)
    embedder.load()
    stamp = embedder.path.stat().st_mtime_ns
    OnnxMiniLMEmbedder(cache, quantize=False).load()
    assert embedder.path.stat().st_mtime_ns == stamp
    assert not [p for p in cache.iterdir() if p.name.startswith(".export-")]  # no half-written leftovers


def test_a_corrupt_cached_model_is_exported_again(
    cache: Path, torch_vectors: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = OnnxMiniLMEmbedder(cache, quantize=False)
    embedder.path.parent.mkdir(parents=True, exist_ok=True)
    embedder.path.write_bytes(b"not an onnx model")
    with caplog.at_level(logging.WARNING, logger="retrieval.onnx_embedder"):
        vectors = embedder.embed(TEXTS[:2])
    assert "unreadable" in caplog.text
    assert (vectors * torch_vectors[:2]).sum(1).min() > 0.9999


def test_unknown_embedder_kind_names_the_choices() -> None:
    with pytest.raises(ValueError, match="minilm-int8"):
        make_embedder("minilm-int4")
