"""Handlers behind `triage eval run`, `triage eval gate` and `triage bench`: build collaborators, run, print."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.errors import DataError
from agents.settings import Settings
from retrieval.factory import EMBEDDERS

if TYPE_CHECKING:
    from evals.specs import DatasetSpec


def resolve_specs(paths: list[str]) -> list[DatasetSpec | DataError]:
    """Load every spec; one that fails to load is kept as its error so the others still run."""
    from evals.specs import load_spec

    out: list[DatasetSpec | DataError] = []
    for path in paths:
        try:
            out.append(load_spec(Path(path)))
        except DataError as exc:
            out.append(exc)
    return out


def answers_hook(settings: Settings, embedder: Any) -> Callable[[DatasetSpec, list[dict[str, Any]]], dict[str, Any]]:
    """Scores answer data sets (evals/answers_eval.py) with the run's settings and embedder."""
    from evals.answers_eval import run_spec

    return partial(run_spec, settings=settings, embedder=embedder)


def parse_backends(text: str) -> list[str]:
    from evals.registry import BACKEND_NAMES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKEND_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown backends {unknown}: choose from {', '.join(BACKEND_NAMES)}")
    return names


def eval_run(args: argparse.Namespace, settings: Settings) -> int:
    from evals.registry import make_backend
    from evals.report import headline_rows, write_report
    from evals.runner import EvalRunner
    from retrieval.factory import make_embedder

    backends = parse_backends(args.backends)
    if args.members:
        settings = settings.model_copy(update={"members": args.members})
    embedder = make_embedder(args.embedder or settings.embedder, settings.embed_precision)
    factory = partial(make_backend, settings=settings, embedder=embedder, folds=args.folds)
    runner = EvalRunner(
        embedder,
        factory,
        target=settings.precision_target,
        limit=args.limit,
        progress=not args.quiet,
        answers_hook=answers_hook(settings, embedder),
    )
    summary = runner.run(resolve_specs(args.specs), backends)
    options = [f"--{k} {getattr(args, k)}" for k in ("limit", "folds", "members", "embedder") if getattr(args, k)]
    summary["command"] = " ".join(["triage eval run", *args.specs, f"--backends {args.backends}", *options])
    for ds in summary["datasets"].values():
        if ds.get("spec", {}).get("kind") == "classification":
            ds["folds"] = args.folds or ds["spec"]["folds"]
    paths = write_report(summary, Path(args.out))
    for row in headline_rows(summary):
        figures = ", ".join(
            f"{k}={row[k]:.4f}"
            for k in ("accuracy", "macro_f1", "coverage_at_threshold", "recall_at_1", "mrr", "owner_accuracy")
            if isinstance(row.get(k), float)
        )
        print(f"{row['dataset']:24s} {row['field']:16s} {row['backend']:10s} {figures}")
    for ds_id, ds in summary["datasets"].items():
        if ds["status"] != "ok":
            print(f"{ds_id}: {ds['status']}" + (f" ({ds['reason']})" if ds.get("reason") else ""))
    print(f"wrote {paths['markdown']}, {paths['html']} and {paths['summary']}")
    if summary["partial"]:
        print("interrupted: the results written are PARTIAL")
        return 130
    broken = [
        f"{ds_id}/{name}: {info.get('reason')}"
        for ds_id, ds in summary["datasets"].items()
        for name, info in ds.get("backends", {}).items()
        if info.get("status") == "error"
    ]
    for line in broken:
        print(f"backend error {line}")
    return 1 if broken or any(ds["status"] == "error" for ds in summary["datasets"].values()) else 0


def eval_gate(args: argparse.Namespace) -> int:
    from evals.gate import run_gate

    code, lines = run_gate(args.baseline, args.current, args.tolerance)
    print("\n".join(lines if args.verbose_gate else [ln for ln in lines if not ln.startswith("ok  ")]))
    return code


def eval_report(args: argparse.Namespace) -> int:
    from evals.gate import read_summary
    from evals.report import merge_summaries, write_report

    summary = merge_summaries([read_summary(p) for p in args.summaries])
    summary["notes"] = [*summary.get("notes", []), *(args.note or [])]
    paths = write_report(summary, Path(args.out))
    print(f"wrote {paths['markdown']}, {paths['html']} and {paths['summary']}")
    return 0


def bench(args: argparse.Namespace, settings: Settings) -> int:
    from evals.bench import run_bench, write_bench
    from retrieval.factory import make_embedder

    embedder = make_embedder(args.embedder or settings.embedder, settings.embed_precision)
    result = run_bench(
        settings,
        embedder,
        data=Path(args.data) if args.data else None,
        n=args.n,
        kb_dir=Path(args.kb) if args.kb else None,
        folds=args.folds,
    )
    for line in result["lines"]:
        print(line)
    if args.out:
        print(f"wrote {write_bench(result, Path(args.out))}")
    return 0


def add_parsers(eval_sub: Any, top_sub: Any, settings_of: Callable[[argparse.Namespace], Any]) -> None:
    """Register `eval run`, `eval gate` (under the existing `eval` group) and the top-level `bench`."""
    p = eval_sub.add_parser("run", help="every backend on every data set spec, with a report and summary.json")
    p.add_argument("specs", nargs="+", help="spec files, e.g. evals/datasets/demo_tickets.v1.yaml")
    p.add_argument("--backends", default="classical,service", help="comma-separated: classical,service,cascade,llm")
    p.add_argument("--limit", type=int, help="score at most N test rows (a seeded sample)")
    p.add_argument("--folds", type=int, help="ensemble folds (default: the spec's, usually 5)")
    p.add_argument(
        "--members", help="classical ensemble members, e.g. svm,lr,knn10,knn30,ft1 (default: TRIAGE_MEMBERS)"
    )
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: eval_run(a, settings_of(a)))
    p = eval_sub.add_parser("gate", help="fail when any metric dropped beyond tolerance against a baseline")
    p.add_argument("--baseline", required=True)
    p.add_argument("--current", required=True)
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--all", dest="verbose_gate", action="store_true", help="print metrics that passed too")
    p.set_defaults(func=eval_gate)
    p = eval_sub.add_parser("report", help="write the report again from summary.json files (merged)")
    p.add_argument("summaries", nargs="+")
    p.add_argument("--note", action="append", help="a line for the top of the report (repeatable)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=eval_report)
    p = top_sub.add_parser("bench", help="latency and throughput beside plain references measured in the same run")
    p.add_argument("--data", help="labelled tickets JSONL (default: the demo tickets)")
    p.add_argument("--kb", help="folder of Markdown to index and search (default: the demo SOPs)")
    p.add_argument("-n", type=int, default=200, help="single-ticket and search repetitions")
    p.add_argument("--folds", type=int, default=5, help="ensemble folds when training the service")
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--out", help="write the results as JSON to this file")
    p.set_defaults(func=lambda a: bench(a, settings_of(a)))
