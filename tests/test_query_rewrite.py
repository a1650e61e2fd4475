"""Query rewriting by an LLM over HTTP: the rewrite finds what the question missed, and a failing LLM loses nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAI, fake_openai
from runbook_tree import runbook_searcher

from agents.llm.client import OpenAICompatibleChat
from agents.llm.rewrite import LlmQueryRewriter
from evals.query_rewrite import measure, report_markdown
from retrieval.hybrid import HybridSearcher

RUNBOOKS = {
    "etcd/EtcdDatabaseQuotaLowSpace.md": "# EtcdDatabaseQuotaLowSpace\n\n## Mitigation\n\nDefragment etcd members "
    "one at a time and compact the revision history so the database quota is not exceeded.\n",
    "storage/KubePersistentVolumeFillingUp.md": "# KubePersistentVolumeFillingUp\n\n## Mitigation\n\nThe volume "
    "is nearly full and the cluster refuses writes to it: expand the claim or delete old files.\n",
    "network/NodeNetworkInterfaceFlapping.md": "# NodeNetworkInterfaceFlapping\n\n## Mitigation\n\nCheck the "
    "cable, the switch port and the bond configuration of the node's interface.\n",
}
QUESTION = "control plane key value store nearly full, cluster refuses writes"
ROW = {"id": "q1", "question": QUESTION, "target": "etcd/EtcdDatabaseQuotaLowSpace.md"}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> HybridSearcher:
    return runbook_searcher(tmp_path_factory.mktemp("runbooks"), RUNBOOKS)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai() as srv:
        srv.answers = {"query": "etcd database quota defragment compact"}
        yield srv


def rewriter(server: FakeOpenAI) -> LlmQueryRewriter:
    return LlmQueryRewriter(OpenAICompatibleChat("fake-model", base_url=server.url, api_key="k", llm_timeout=2.0))


def test_the_rewrite_expands_the_question_and_finds_the_runbook(server: FakeOpenAI, searcher: HybridSearcher) -> None:
    got = rewriter(server).rewrite(QUESTION)
    assert got.query == f"{QUESTION} etcd database quota defragment compact" and got.call is not None
    assert "<question>" in server.requests[-1]["body"]["messages"][-1]["content"]  # the question goes in as data
    result = measure(searcher, [ROW], rewriter(server))
    (row,) = result["rows"]
    assert row["question+rewrite"] == 1 and row["rewrite_only"] == 1
    assert row["question"] != 1  # the words as typed miss it: the experiment can tell the arms apart
    assert result["metrics"]["question+rewrite"]["mrr"] == 1.0 and result["llm_failures"] == 0


@pytest.mark.parametrize("scenario", ["500", "invalid_json", "deep_nesting", "huge", "401"])
def test_a_failing_llm_leaves_the_question_as_typed(
    scenario: str, server: FakeOpenAI, searcher: HybridSearcher
) -> None:
    server.scenario = scenario
    got = rewriter(server).rewrite(QUESTION)
    assert got.query == QUESTION and got.rewrite is None and got.reason and "rewrite failed" in got.reason
    result = measure(searcher, [ROW], rewriter(server))
    (row,) = result["rows"]
    assert result["llm_failures"] == 1 and row["question+rewrite"] == row["question"] == row["rewrite_only"]
    assert "every rewrite failed" in report_markdown(
        {**result, "date": "d", "model": "m", "embedder": "e", "data": "x", "split": "test", "fusion": "chunks"}, "c"
    )


def test_the_rewrite_is_capped_in_words(server: FakeOpenAI) -> None:
    server.answers = {"query": " ".join(f"w{i}" for i in range(80))}
    got = LlmQueryRewriter(
        OpenAICompatibleChat("fake-model", base_url=server.url, api_key="k", llm_timeout=2.0), max_words=5
    ).rewrite("q?")
    assert got.rewrite == "w0 w1 w2 w3 w4"


def test_the_paired_test_counts_only_changes_in_the_top_five(server: FakeOpenAI, searcher: HybridSearcher) -> None:
    result = measure(searcher, [ROW], rewriter(server))
    # three runbooks: every arm has the target in its top 5, so the rewrite moved no question across the line
    assert result["mcnemar_recall_at_5"]["question+rewrite"] == {
        "fixed": 0,
        "broke": 0,
        "p_value": 1.0,
        "verdict": "no evidence",
    }
