"""LLM re-ranking of the classical search's top K against the classical order: runbook search on the same questions."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from statistics import median as _median
from typing import Any

from agents.llm.evidence import verdict
from agents.llm.rerank import K, LlmReranker
from agents.types import Deadline
from evals.mcnemar import PairedCounts
from evals.metrics import llm_cost, rank_metrics
from evals.retrieval_eval import target_rank
from retrieval.hybrid import HybridSearcher

DEPTH = 10  # hits fetched per question: both arms are scored over the same ten files
ARMS = ("classical", "reranked")
CUTS = (1, 5)


def measure(
    searcher: HybridSearcher,
    rows: Sequence[dict[str, Any]],
    reranker: LlmReranker,
    progress: Callable[[str], None] = lambda line: None,
    *,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Ranks of each row's runbook in the classical order and after the LLM re-ranked its first K, with the LLM's
    cost and failures."""
    records = []
    for i, row in enumerate(rows, start=1):
        question, target = str(row["question"]), str(row["target"])
        hits = searcher.search(question, k=max(DEPTH, reranker.k), mode="hybrid")
        reranked = reranker.rerank(question, hits, Deadline.after(timeout) if timeout else None)
        classical = target_rank([h.path for h in hits], target)
        record = {
            "id": row.get("id"),
            "classical": classical,
            # a failed re-ranking keeps the classical order: the arm pays for its failures
            "reranked": target_rank(reranked.paths, target),
            "shown": reranked.shown,
            "picks": reranked.picks,
            "reason": reranked.reason,
            "llm_ms": reranked.call.latency_ms if reranked.call else None,
            "prompt_tokens": reranked.call.prompt_tokens if reranked.call else None,
            "prompt_chars": reranked.prompt_chars or None,
        }
        records.append(record)
        progress(f"{i}/{len(rows)} {record['id']}: ranks {classical} -> {record['reranked']} picks {reranked.picks}")
    return summarise(records)


def median(values: list[int]) -> float | None:
    return float(_median(values)) if values else None


def paired(records: list[dict[str, Any]], cut: int) -> dict[str, Any]:
    """Questions the re-ranking fixed and broke at `cut` against the classical order, and the exact McNemar test."""
    before = [r["classical"] is not None and r["classical"] <= cut for r in records]
    after = [r["reranked"] is not None and r["reranked"] <= cut for r in records]
    pair = PairedCounts.of_outcomes(before, after)
    n = len(records) or 1
    said = verdict(sum(before) / n, sum(after) / n, pair.p_value)
    return {"fixed": pair.c, "broke": pair.b, "p_value": round(pair.p_value, 4), "verdict": said}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics per arm, the paired tests at rank 1 and in the top 5, and how often the target was shown at all."""
    metrics = {arm: rank_metrics([r[arm] for r in records], ks=(1, 5, 10)) for arm in ARMS}
    shown = [r for r in records if r["classical"] is not None and r["classical"] <= r["shown"]]
    return {
        "n": len(records),
        "metrics": metrics,
        "mcnemar": {f"recall_at_{cut}": paired(records, cut) for cut in CUTS},
        "target_shown": len(shown),
        "llm_failures": sum(1 for r in records if r["reason"]),
        **llm_cost(records),
        "prompt_chars_p50": median([r["prompt_chars"] for r in records if r.get("prompt_chars")]),
        "rows": records,
    }


def report_markdown(result: dict[str, Any], command: str) -> str:
    k = result["k"]
    lines = [
        "# LLM re-ranking of the classical top K: runbook search on plain-words questions",
        "",
        f"Date {result['date']}; model `{result['model']}`; prompt `{result['prompt']}`; embedder "
        f"`{result['embedder']}`; {result['n']} questions ({result['split']} split of `{result['data']}`), hybrid "
        f"search with `{result['fusion']}` fusion; the LLM sees the first K = {k} files; load average "
        f"{result['load']}.",
        "",
        "```",
        command,
        "```",
        "",
        "| arm | recall@1 | recall@5 | recall@10 | MRR |",
        "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        m = result["metrics"][arm]
        lines.append(
            f"| {arm} | {m['recall_at_1']:.3f} | {m['recall_at_5']:.3f} | {m['recall_at_10']:.3f} | {m['mrr']:.3f} |"
        )
    lines += [
        "",
        "| reranked vs classical | fixed | broke | McNemar p | verdict |",
        "|---|---|---|---|---|",
    ]
    for cut in CUTS:
        t = result["mcnemar"][f"recall_at_{cut}"]
        lines.append(f"| recall@{cut} | {t['fixed']} | {t['broke']} | {t['p_value']} | {t['verdict']} |")
    p50, top = result["llm_ms_p50"], result["llm_ms_max"]
    lines += [
        "",
        f"The target was among the {k} files shown for {result['target_shown']} of {result['n']} questions (the "
        "most the re-ranking can reach at rank 1).",
        "",
        f"LLM: {result['llm_failures']} failed re-rankings of {result['n']} (classical order kept); latency p50 "
        f"{p50 / 1000:.1f} s, max {top / 1000:.1f} s; {prompt_size(result)}."
        if p50 is not None
        else f"LLM: every re-ranking failed ({result['llm_failures']} of {result['n']}).",
        "",
        "The LLM answers with up to three numbers of the shown files; those go first, the rest follow in the "
        "classical order, so no file is lost or added and recall@10 cannot change. The verdict is `helps` only when "
        "the re-ranked order finds more runbooks at that cut than the classical order with p < 0.05.",
    ]
    return "\n".join(lines) + "\n"


def prompt_size(result: dict[str, Any]) -> str:
    """Prompt tokens p50 when the server counts them (in a stream llama-cpp-python does not), else characters."""
    if result.get("prompt_tokens_p50") is not None:
        return f"prompt tokens p50 {result['prompt_tokens_p50']:.0f}"
    chars = result.get("prompt_chars_p50")
    return "prompt size unknown" if chars is None else f"prompt p50 {chars:.0f} characters (no token count sent)"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as "1.44 / 1.68 / 1.88"."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """`python -m evals.llm_rerank --split tune --out DIR`: the LLM's re-ranking against the classical order."""
    import argparse
    import sys

    from agents.llm.rerank import hit_extract, runbook_extracts
    from evals.runbook_llm import add_question_arguments, prepare, save
    from prompts import load_prompt

    parser = argparse.ArgumentParser(prog="python -m evals.llm_rerank", description=main.__doc__)
    add_question_arguments(parser)
    parser.add_argument("--k", type=int, default=K, help="how many of the first files the LLM sees (%(default)s)")
    parser.add_argument("--prompt", default="v1", help="the version of prompts/rerank.vN.md (%(default)s)")
    parser.add_argument("--out", required=True, help="folder for report.md and summary.json")
    args = parser.parse_args(argv)
    run = prepare(args, "LLM re-ranking")
    if isinstance(run, int):
        return run
    extracts = runbook_extracts(run.index.chunks)
    reranker = LlmReranker(
        run.chat,
        prompt=load_prompt("rerank", args.prompt),
        k=args.k,
        extract=lambda hit: extracts.get(hit.path) or hit_extract(hit),
    )
    load_before = load_average()
    result = measure(
        run.searcher,
        run.rows,
        reranker,
        lambda line: print(line, file=sys.stderr, flush=True),
        timeout=run.settings.llm_timeout,
    )
    result.update(prompt=reranker.prompt.id, k=args.k, load=f"{load_before} at the start, {load_average()} at the end")
    save(args, run, "evals.llm_rerank", result, report_markdown, "summary.json", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
