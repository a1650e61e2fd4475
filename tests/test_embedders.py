"""Embedders: the weight-free HashingEmbedder, and one check of the real MiniLM model (offline)."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.embedders import HashingEmbedder, MiniLMEmbedder
from retrieval.factory import make_embedder

TEXTS = [
    "How do I reset my password?",
    "VPN error 809 when connecting from the hotel",
    "The printer on floor 2 is jammed",
    "x",
]


def test_hashing_rows_are_unit_norm_float32(hashing_embedder: HashingEmbedder) -> None:
    vectors = hashing_embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), hashing_embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_hashing_empty_inputs(hashing_embedder: HashingEmbedder) -> None:
    assert hashing_embedder.embed([]).shape == (0, hashing_embedder.dim)
    # a text without any word has no features: a zero row, not NaN
    blank = hashing_embedder.embed(["", "?!"])
    assert not np.isnan(blank).any()
    assert not blank.any()


def test_hashing_is_deterministic_across_instances(hashing_embedder: HashingEmbedder) -> None:
    # blake2b, not Python's salted hash(): saved indexes stay valid across processes
    first = hashing_embedder.embed(TEXTS)
    again = HashingEmbedder().embed(list(reversed(TEXTS)))[::-1]
    np.testing.assert_array_equal(first, again)
    assert HashingEmbedder().name == hashing_embedder.name == "hashing-512-3"


def test_hashing_dim_and_name_follow_settings() -> None:
    small = HashingEmbedder(dim=64, ngram=4)
    assert small.embed(["hello"]).shape == (1, 64)
    assert small.name == "hashing-64-4"
    assert small.name != HashingEmbedder(dim=64, ngram=3).name


def test_hashing_ignores_case_and_punctuation(hashing_embedder: HashingEmbedder) -> None:
    a, b = hashing_embedder.embed(["Reset my PASSWORD!", "reset my password"])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)


def test_hashing_paraphrase_beats_unrelated(hashing_embedder: HashingEmbedder) -> None:
    query, paraphrase, unrelated = hashing_embedder.embed(
        [
            "the vpn connection keeps dropping at home",
            "my vpn keeps dropping the connection when I work from home",
            "order new toner for the warehouse label printer",
        ]
    )
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.3


def test_hashing_character_ngrams_match_word_variants(hashing_embedder: HashingEmbedder) -> None:
    # no shared whole word, but shared character trigrams
    query, variant, unrelated = hashing_embedder.embed(["printers", "printer", "payslip"])
    assert float(query @ variant) > float(query @ unrelated) + 0.3


def test_make_embedder() -> None:
    assert isinstance(make_embedder("hashing"), HashingEmbedder)
    assert isinstance(make_embedder("minilm"), MiniLMEmbedder)  # lazy: no model loaded yet
    with pytest.raises(ValueError, match="unknown embedder 'bert'"):
        make_embedder("bert")


@pytest.mark.slow
def test_minilm_offline_shape_norm_and_meaning() -> None:
    embedder = MiniLMEmbedder()
    vectors = embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my password and need a new one",
            "The printer on floor 2 is jammed",
        ]
    )
    assert vectors.shape == (3, 384) == (3, embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    question, paraphrase, unrelated = vectors
    assert float(question @ paraphrase) > float(question @ unrelated) + 0.2
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_minilm_bfloat16_agrees_with_float32_and_one_text_matches_a_batch() -> None:
    texts = ["VPN drops every ten minutes since the update", "Outlook will not open after the password change"]
    full = MiniLMEmbedder(precision="float32").embed(texts)
    half = MiniLMEmbedder(precision="bfloat16")
    batch = half.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    assert float((full * batch).sum(axis=1).min()) > 0.99
    one = half.embed(texts[:1])  # the single-text path skips encode(); same vector
    assert float(one[0] @ batch[0]) > 0.999


def test_minilm_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="precision"):
        MiniLMEmbedder(precision="int4")
    assert MiniLMEmbedder().precision in ("float32", "bfloat16")
