"""Static MiniLM vectors: distilled once from the bundled weights, cached, and close where MiniLM is close."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import MINILM_NAME
from retrieval.factory import embedder_named, make_embedder
from retrieval.static_embedder import StaticMiniLMEmbedder, distill_table, static_name

pytestmark = pytest.mark.slow  # loads the real MiniLM weights and exports or distils them: `make test` only

TEXTS = [
    "How do I reset my password?",
    "I forgot my password and cannot log in",
    "The label printer in the Leeds warehouse prints blank labels",
    "",
    "🙂🙂",
    "VPN " * 5000,  # longer than the 512 tokens a text keeps
]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> StaticMiniLMEmbedder:
    model = StaticMiniLMEmbedder(tmp_path_factory.mktemp("static-cache"))
    model.load()  # the real distillation: every vocabulary token through MiniLM under onnxruntime
    return model


def test_distilled_table_weights_rare_tokens_up_and_skips_special_ones() -> None:
    vocab = {"[PAD]": 0, "[unused0]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4, "printer": 5, "toner": 6}
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(7, 8)).astype(np.float32)

    def embed_ids(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (hidden[ids] * mask[..., None]).mean(1)  # a tiny deterministic "model"

    table = distill_table(vocab, embed_ids, dims=2)
    assert table.shape == (7, 2) and table.dtype == np.float32
    assert not table[[0, 1, 2, 3]].any()  # padding, unused and special tokens contribute nothing
    assert (np.linalg.norm(table[4:], axis=1) > 0).all()


def test_similar_tickets_are_closer_than_unrelated_ones(embedder: StaticMiniLMEmbedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 256) and vectors.dtype == np.float32
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 1, 2, 5]], axis=1), 1.0, rtol=1e-5)
    assert not vectors[3].any()  # nothing to average: a zero vector, never NaN
    assert np.isfinite(vectors).all()


def test_a_text_does_not_depend_on_its_batch(embedder: StaticMiniLMEmbedder) -> None:
    batch = embedder.embed(TEXTS)
    one_by_one = np.vstack([embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)
    assert embedder.embed([]).shape == (0, 256)


def test_named_apart_and_found_again_by_name(embedder: StaticMiniLMEmbedder) -> None:
    assert embedder.name == static_name(256) != MINILM_NAME
    again = embedder_named(embedder.name, cache_dir=embedder.cache_dir)  # what loading a saved index does
    assert isinstance(again, StaticMiniLMEmbedder)
    np.testing.assert_allclose(again.embed(TEXTS[:2]), embedder.embed(TEXTS[:2]), atol=1e-6)
    assert isinstance(make_embedder("minilm-static", cache_dir=embedder.cache_dir), StaticMiniLMEmbedder)


def test_the_table_is_cached_and_a_corrupt_one_distilled_again(
    embedder: StaticMiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    stamp = embedder.path.stat().st_mtime_ns
    StaticMiniLMEmbedder(embedder.cache_dir).load()
    assert embedder.path.stat().st_mtime_ns == stamp
    assert not [p for p in Path(embedder.cache_dir).iterdir() if p.name.startswith(".static-")]
    expected = embedder.embed(TEXTS[:2])
    embedder.path.write_bytes(b"not a numpy file")
    fresh = StaticMiniLMEmbedder(embedder.cache_dir)
    with caplog.at_level(logging.WARNING, logger="retrieval.static_embedder"):
        np.testing.assert_allclose(fresh.embed(TEXTS[:2]), expected, atol=1e-5)
    assert "unreadable" in caplog.text
