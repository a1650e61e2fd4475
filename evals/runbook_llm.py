"""What the LLM-assisted runbook-search commands share: their arguments, the LLM and corpus checks, rows, search."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.llm.chat import ChatModel
from agents.settings import Settings
from retrieval.hybrid import HybridSearcher
from retrieval.index import SopIndex


def add_question_arguments(parser: argparse.ArgumentParser) -> None:
    """The question set, the runbooks, an optional saved index, the split, the fusion and a row limit."""
    parser.add_argument("--data", default="evals/data/runbook_questions.v1.jsonl", help="questions with a target")
    parser.add_argument("--corpus", default="../shared/data/runbooks", help="the runbooks folder")
    parser.add_argument("--index", help="a saved index of the corpus (`triage kb index`); else one is built")
    parser.add_argument("--split", default="test", help="which split to score: tune, test or all (%(default)s)")
    parser.add_argument(
        "--fusion", choices=["chunks", "documents"], default="documents", help="hybrid fusion (%(default)s: the best)"
    )
    parser.add_argument("--limit", type=int, default=0, help="score only the first N questions (0: all)")


@dataclass
class QuestionRun:
    """The parts of one run: settings, the split's rows, the index and its searcher, the configured LLM."""

    settings: Settings
    rows: list[dict[str, Any]]
    index: SopIndex
    searcher: HybridSearcher
    chat: ChatModel


def prepare(args: argparse.Namespace, measured: str) -> QuestionRun | int:
    """The run's parts, or the exit code after saying why there are none: 2 when no LLM is configured, 0 (a skip)
    when the runbooks are not on this machine. `measured` names what would have been measured."""
    from agents.llm.factory import llm_problem, make_chat
    from evals.tables import split_rows
    from retrieval.corpus import load_chunks
    from retrieval.factory import make_embedder

    settings = Settings()
    problem = llm_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"SKIP: {corpus} is not on this machine: {measured} not measured")
        return 0
    rows = split_rows(args.data, args.split)
    rows = rows[: args.limit] if args.limit > 0 else rows
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    index = SopIndex.load(Path(args.index), embedder) if args.index else SopIndex.build(load_chunks(corpus), embedder)
    return QuestionRun(settings, rows, index, HybridSearcher(index, fusion=args.fusion), make_chat(settings))


def save(
    args: argparse.Namespace,
    run: QuestionRun,
    module: str,
    result: dict[str, Any],
    render: Callable[[dict[str, Any], str], str],
    json_name: str,
    argv: list[str] | None,
) -> None:
    """Stamp the run on `result` (date, model, embedder, data, split, fusion), write DIR/report.md (`render`) and
    DIR/`json_name`, and print the report."""
    import json
    import shlex
    import time

    result.update(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        model=run.chat.name,
        embedder=run.settings.embedder,
        data=args.data,
        split=args.split,
        fusion=run.searcher.fusion,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", module, *(argv if argv is not None else sys.argv[1:])])
    (out / json_name).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    report = render(result, command)
    (out / "report.md").write_text(report, encoding="utf-8")
    print(report)
