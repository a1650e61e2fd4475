"""`triage ask`, `triage eval answers` and `triage eval owners`: parsers and handlers, registered by cli/main.py."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command
from agents.cli.output import write_json


def cmd_ask(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.app import build_answerer

    result = build_answerer(settings_fn(args)).ask(args.question)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(result.answer)
    print()
    owner = result.owner
    if owner is not None:
        on_call = f", on call @{owner.on_call}" if owner.on_call else ""
        print(f"owner       {owner.team_name} ({', '.join(owner.people)}{on_call}; {owner.channel or '-'})")
    for c in result.citations:
        print(f"source      {c.title} [{c.ref}] {c.path}")
    state = "abstained" if result.abstained else "answered"
    print(f"confidence  {result.confidence:.2f} (threshold {result.threshold:.2f}, {state}, {result.backend})")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 0


def cmd_eval_answers(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.app import build_answerer, build_shared
    from evals.answers_eval import evaluate_answers
    from evals.tables import read_rows

    settings = settings_fn(args)
    if args.threshold is not None:
        settings = settings.model_copy(update={"answer_threshold": args.threshold})
    rows = read_rows(args.data)
    started = time.perf_counter()
    shared = build_shared(settings, in_memory=args.in_memory)  # KB, embedder, SOP index: also for --llm-evidence
    answerer = build_answerer(settings, shared=shared)
    load_s = time.perf_counter() - started
    answerer.ask("warm-up question about the VPN")  # the first call loads the model weights: not a latency sample
    metrics = evaluate_answers(answerer, rows, n_folds=args.folds, seed=args.seed)
    questions = metrics.pop("questions")
    metrics.update({"data": str(args.data), "embedder": settings.embedder, "load_seconds": round(load_s, 2)})
    out = Path(args.out)
    path = write_json(out, "metrics.json", metrics)
    with open(out / "questions.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(q, default=str) + "\n" for q in questions)
    cv = metrics["cross_validation"]["held_out_mean"]
    print(
        f"threshold={metrics['threshold']:.3f} recall@5={metrics['retrieval_recall_at_5']:.3f} "
        f"owner={metrics['owner_accuracy']:.3f} citation_precision={metrics['citation_precision']:.3f} "
        f"grounding={metrics['citation_grounding']:.3f} abstain_recall={metrics['abstain_recall']:.3f} "
        f"false_abstain={metrics['false_abstain_rate']:.3f} p50={metrics.get('latency_ms_p50', 0):.1f}ms"
    )
    print(
        f"held-out ({args.folds}-fold, threshold chosen on the other folds): abstain_recall={cv['abstain_recall']:.3f} "
        f"false_abstain={cv['false_abstain_rate']:.3f} owner={cv['owner_accuracy']:.3f}"
    )
    print(f"wrote {path}")
    if args.llm_evidence:
        return answers_llm_evidence(settings, shared, rows, args)
    return 0


def answers_llm_evidence(settings: Any, shared: Any, rows: list[dict[str, Any]], args: argparse.Namespace) -> int:
    """The same questions asked once with the extractive writer and once with the LLM's, over the KB, embedder and
    index already loaded (`shared`) and one LLM client (translation alike in both), scored per question; the verdict
    goes into the writers' evidence."""
    import dataclasses

    from agents.app import build_answerer
    from agents.llm.plan import LlmPlan
    from agents.llm.writer_evidence import save_writers_evidence
    from evals.answers_eval import ask_all
    from evals.llm_eval import chat_from_settings
    from evals.writers_evidence import answers_evidence, writers_evidence

    chat = chat_from_settings(settings)  # BackendUnavailable, with the reason, when no endpoint answers
    arms = {}
    for name, writers in (("extractive", ()), ("llm", ("answer",))):  # over the same KB, embedder and index
        with_llm = dataclasses.replace(shared, chat=chat, llm_plan=LlmPlan(writers=writers))
        answerer = build_answerer(settings, shared=with_llm)
        print(f"asking {len(rows)} questions with the {name} writer")
        arms[name] = ask_all(answerer, rows)
    found = answers_evidence(arms["extractive"], arms["llm"], Path(args.data), len(rows))
    evidence = writers_evidence(settings.llm_model or chat.name, settings.llm_base_url, settings.embedder, [found])
    for path in (Path(args.out) / "writers_evidence.json", Path(args.llm_evidence)):
        save_writers_evidence(path, evidence)
    print(f"answer   {found.describe()} (n={found.n}); written to {args.llm_evidence}")
    return 0


def cmd_eval_owners(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from evals.owners_eval import evaluate_owners

    root = Path(args.runbooks)
    if not root.is_dir() or not Path(args.pairs).is_file():
        print(f"skipped: {root if not root.is_dir() else args.pairs} is not on this machine")
        return 0
    metrics = evaluate_owners(root, Path(args.pairs), embedder_name=args.embedder or "hashing")
    path = write_json(Path(args.out), "metrics.json", metrics)
    if not metrics["n"]:
        print(f"skipped: no pair in {args.pairs} has a runbook under openshift_runbooks/alerts/<component>/")
        return 0
    for mode, m in metrics["modes"].items():
        print(f"{mode:8s} approvers named={m['accuracy']:.3f} exact={m['exact']:.3f} n={m['n']}")
    print(f"wrote {path}")
    return 0


def add_parsers(sub: Any, ev: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "ask",
        "answer a question from the SOPs and the catalogue (owner, steps, sources)",
        'triage ask "how do I connect to the VPN from home?"',
        'triage ask --json "who handles printer jams on floor 2?"',
    )
    p.add_argument("question", help="the question, in plain words")
    p.add_argument("--json", action="store_true", help="print the full answer as JSON")
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_ask(a, settings_fn))

    p = command(
        ev,
        "answers",
        "recall@5, owner accuracy, citations and abstention of `ask` on questions",
        "triage eval answers --data evals/data/questions.v1.jsonl --out /tmp/answers",
    )
    p.add_argument("--data", required=True, help="JSONL: id, question, kind, expected_docs, owner_team, variant")
    p.add_argument("--out", required=True, help="folder for metrics.json and questions.jsonl")
    p.add_argument("--threshold", type=float, help="abstain below this confidence (default: the setting)")
    p.add_argument("--folds", type=int, default=2, help="folds for the held-out threshold estimate")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds (default: %(default)s)")
    p.add_argument("--in-memory", action="store_true", help="do not save a freshly built index to the data dir")
    p.add_argument(
        "--llm-evidence",
        metavar="FILE",
        help="also ask every question with the LLM's writer (TRIAGE_LLM_*) and write the verdict for `answer` into "
        "this writers' evidence file (the service reads <data_dir>/llm_writers_evidence.json)",
    )
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_eval_answers(a, settings_fn))

    p = command(
        ev,
        "owners",
        "OWNERS approvers named for alerts whose runbook has an OWNERS file",
        "triage eval owners --runbooks runbooks/ --pairs runbooks/alert_runbook_pairs.jsonl --out /tmp/owners",
    )
    p.add_argument("--runbooks", required=True, help="folder holding openshift_runbooks/")
    p.add_argument("--pairs", required=True, help="alert_runbook_pairs.jsonl")
    p.add_argument("--out", required=True, help="folder for metrics.json")
    add_embedder(p, "embedder for the search over runbooks (default hashing)")
    p.set_defaults(func=lambda a: cmd_eval_owners(a, settings_fn))
