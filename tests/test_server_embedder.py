"""The server's embedder: MiniLM under onnxruntime on `torch_threads` threads, with the default embedder's vectors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agents.app import server_embedder
from agents.settings import Settings
from retrieval.embedders import HashingEmbedder


def test_other_embedders_are_left_as_they_are() -> None:
    assert isinstance(server_embedder(Settings(embedder="hashing")), HashingEmbedder)


@pytest.mark.slow  # loads the real MiniLM (exported to ONNX once per machine)
def test_the_server_embedder_runs_on_torch_threads_with_the_same_vectors(demo_rows) -> None:
    from retrieval.factory import make_embedder
    from retrieval.onnx_embedder import OnnxMiniLMEmbedder

    settings = Settings(embedder="minilm-int8")
    embedder, default = server_embedder(settings), make_embedder("minilm-int8")
    assert isinstance(embedder, OnnxMiniLMEmbedder) and isinstance(default, OnnxMiniLMEmbedder)
    assert embedder.threads == settings.torch_threads == 1 and default.threads is None
    assert embedder.name == default.name
    texts = [f"{r['title']}\n{r['body']}" for r in demo_rows[:40]]
    one_by_one = np.vstack([default.embed([t]) for t in texts])
    np.testing.assert_array_equal(embedder.embed(texts), one_by_one)
    # a request's triage and the start-up recovery (or the sweep) may embed at the same time, on two threads
    with ThreadPoolExecutor(2) as pool:
        parallel = np.vstack(list(pool.map(lambda t: embedder.embed([t]), texts)))
    np.testing.assert_array_equal(parallel, one_by_one)
