"""Handlers behind `triage eval run|gate|report` and `triage bench` (parsed in agents/cli/harness.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.errors import DataError
from agents.settings import Settings

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
