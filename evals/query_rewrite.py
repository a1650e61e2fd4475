"""Query rewriting by the LLM against the question as typed: runbook search side by side on the same questions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agents.llm.evidence import verdict
from agents.llm.rewrite import LlmQueryRewriter
from evals.mcnemar import PairedCounts
from evals.metrics import llm_cost, rank_metrics
from evals.retrieval_eval import target_rank
from retrieval.hybrid import HybridSearcher

K = 10
ARMS = ("question", "rewrite", "question+rewrite")


def search_rank(searcher: HybridSearcher, query: str, target: str) -> int | None:
    return target_rank([h.path for h in searcher.search(query, k=K, mode="hybrid")], target)


def measure(
    searcher: HybridSearcher,
    rows: Sequence[dict[str, Any]],
    rewriter: LlmQueryRewriter,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Ranks of each row's runbook for the question, the rewrite alone and both, with the LLM's cost and failures."""
    records = []
    for i, row in enumerate(rows, start=1):
        question, target = str(row["question"]), str(row["target"])
        rewritten = rewriter.rewrite(question)
        record = {
            "id": row.get("id"),
            "rewrite": rewritten.rewrite,
            "reason": rewritten.reason,
            "llm_ms": rewritten.call.latency_ms if rewritten.call else None,
            "prompt_tokens": rewritten.call.prompt_tokens if rewritten.call else None,
            "question": search_rank(searcher, question, target),
            # a failed rewrite searches the question as it came: the arm pays for its failures
            "rewrite_only": search_rank(searcher, rewritten.rewrite or question, target),
            "question+rewrite": search_rank(searcher, rewritten.query, target),
        }
        records.append(record)
        progress(f"{i}/{len(rows)} {record['id']}: ranks {record['question']} -> {record['question+rewrite']}")
    return summarise(records)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics per arm, and the exact McNemar test of each rewrite arm against the question on recall@5."""
    arms = {"question": "question", "rewrite": "rewrite_only", "question+rewrite": "question+rewrite"}
    metrics = {arm: rank_metrics([r[key] for r in records]) for arm, key in arms.items()}
    top5 = {arm: [r[key] is not None and r[key] <= 5 for r in records] for arm, key in arms.items()}
    tests = {}
    for arm in ARMS[1:]:
        pair = PairedCounts.of_outcomes(top5["question"], top5[arm])
        said = verdict(metrics["question"]["recall_at_5"], metrics[arm]["recall_at_5"], pair.p_value)
        tests[arm] = {"fixed": pair.c, "broke": pair.b, "p_value": round(pair.p_value, 4), "verdict": said}
    return {
        "n": len(records),
        "metrics": metrics,
        "mcnemar_recall_at_5": tests,
        "llm_failures": sum(1 for r in records if r["reason"]),
        **llm_cost(records),
        "rows": records,
    }


def report_markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Query rewriting by the LLM: runbook search on plain-words questions",
        "",
        f"Date {result['date']}; model `{result['model']}`; embedder `{result['embedder']}`; "
        f"{result['n']} questions ({result['split']} split of `{result['data']}`), hybrid search with "
        f"`{result['fusion']}` fusion.",
        "",
        "```",
        command,
        "```",
        "",
        "| arm | recall@1 | recall@5 | MRR | fixed / broke at 5 (vs question) | McNemar p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        m = result["metrics"][arm]
        t = result["mcnemar_recall_at_5"].get(arm)
        paired = f"{t['fixed']} / {t['broke']} | {t['p_value']} | {t['verdict']}" if t else "- | - | (reference)"
        lines.append(f"| {arm} | {m['recall_at_1']:.3f} | {m['recall_at_5']:.3f} | {m['mrr']:.3f} | {paired} |")
    p50, top = result["llm_ms_p50"], result["llm_ms_max"]
    lines += [
        "",
        f"LLM: {result['llm_failures']} failed rewrites of {result['n']} (searched as typed); "
        f"latency p50 {p50 / 1000:.1f} s, max {top / 1000:.1f} s; prompt tokens p50 {result['prompt_tokens_p50']}."
        if p50 is not None
        else f"LLM: every rewrite failed ({result['llm_failures']} of {result['n']}).",
        "",
        "The `question+rewrite` arm searches the question followed by the rewrite, so no word the user typed is lost; "
        "`rewrite` searches the LLM's words alone. The verdict is `helps` only when the arm finds more runbooks in "
        "the top 5 than the question alone with p < 0.05.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m evals.query_rewrite --out DIR`: the LLM's rewrite against the question, on runbook search."""
    import argparse
    import sys

    from evals.runbook_llm import add_question_arguments, prepare, save

    parser = argparse.ArgumentParser(prog="python -m evals.query_rewrite", description=main.__doc__)
    add_question_arguments(parser)
    parser.add_argument("--out", required=True, help="folder for report.md and result.json")
    args = parser.parse_args(argv)
    run = prepare(args, "query rewriting")
    if isinstance(run, int):
        return run
    result = measure(
        run.searcher, run.rows, LlmQueryRewriter(run.chat), lambda line: print(line, file=sys.stderr, flush=True)
    )
    save(args, run, "evals.query_rewrite", result, report_markdown, "result.json", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
