"""`triage eval new-categories`: hold whole labels out of training and measure abstention and clusters on them."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from agents.cli.common import MEMBERS_HELP, SettingsFn, add_embedder, command
from agents.novelty.models import DEFAULT_DISTANCE, MIN_SIZE

BANKING77 = "../shared/data/banking77"
REQUIRABLE = ("known_accuracy", "known_accuracy_answered", "known_coverage", "unknown_recall", "precision_answered")


def _numbers(text: str, kind: type) -> list[Any]:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None


def requirements(text: str | None) -> list[tuple[str, str, float]]:
    """`0.98:known_accuracy=0.93,unknown_recall=0.6` -> [("0.98", "known_accuracy", 0.93), ...]."""
    if not text:
        return []
    target, sep, rest = text.partition(":")
    pairs = [part.partition("=") for part in rest.split(",") if part.strip()]
    if not sep or not pairs or any(not eq or name.strip() not in REQUIRABLE for name, eq, _ in pairs):
        raise ValueError(f"--require takes TARGET:METRIC=MIN,... with METRIC in {', '.join(REQUIRABLE)}; got {text!r}")
    return [(f"{float(target):g}", name.strip(), _numbers(value, float)[0]) for name, _, value in pairs]


def unmet(summary: dict[str, Any], required: list[tuple[str, str, float]]) -> list[str]:
    """Each required median below its minimum (or a target the run did not measure), said plainly."""
    medians = {f"{float(t):g}": m for t, m in summary["median"].items()}
    misses = []
    for target, name, minimum in required:
        value = medians.get(target, {}).get(name)
        if value is None or value < minimum:
            misses.append(f"target {target}: {name} {value} < required {minimum:g}")
    return misses


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every option spelled out."""
    parts = ["triage", "eval", "new-categories", "--train", str(args.train), "--test", str(args.test)]
    for col in args.text_col or []:
        parts += ["--text-col", col]
    parts += ["--label-col", args.label_col]
    if args.hold_out:
        parts += ["--hold-out", args.hold_out]
    else:
        parts += ["--held-out", str(args.held_out), "--seeds", args.seeds]
    parts += ["--dev-seed", str(args.dev_seed), "--targets", args.targets, "--algorithm", args.algorithm]
    parts += ["--distance", f"{args.distance:g}", "--min-size", str(args.min_size), "--folds", str(args.folds)]
    for name in ("members", "embedder"):
        if getattr(args, name):
            parts += [f"--{name}", getattr(args, name)]
    return shlex.join([*parts, "--out", str(args.out)])


def cmd_new_categories(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from evals.new_categories import Split, run_experiment
    from evals.new_categories_report import machine, write_report
    from evals.tables import read_rows, texts_and_labels
    from retrieval.factory import make_embedder

    required = requirements(args.require)
    absent = [str(path) for path in (args.train, args.test) if not Path(path).is_file()]
    if absent and args.skip_absent:
        print(f"SKIP: new categories not measured: {', '.join(absent)} absent on this machine")
        return 0
    targets = _numbers(args.targets, float)
    if not targets or any(not 0 < t <= 1 for t in targets):
        raise ValueError(f"--targets must be precisions in (0, 1], got {args.targets!r}")
    splits = [
        Split(*texts_and_labels(read_rows(path), args.text_col or ["text"], args.label_col, str(path)))
        for path in (args.train, args.test)
    ]
    settings = settings_fn(args)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    summary = run_experiment(
        splits[0],
        splits[1],
        embedder,
        seeds=_numbers(args.seeds, int),
        n_held_out=args.held_out,
        fixed=[x.strip() for x in (args.hold_out or "").split(",") if x.strip()],
        targets=targets,
        setting=(args.algorithm, args.distance),
        compare=[("hdbscan", 0.0)] if args.algorithm != "hdbscan" else [("agglomerative", args.distance)],
        dev_seed=None if args.dev_seed < 0 else args.dev_seed,
        min_size=args.min_size,
        members=args.members or settings.members,
        folds=args.folds,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    summary.update(
        command=command_line(args),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=machine(),
        train=str(args.train),
        test=str(args.test),
        notes=args.note or [],
    )
    paths = write_report(summary, Path(args.out))
    for target, m in summary["median"].items():
        c = m["clusters"][summary["setting"]]
        print(
            f"target {target}: known accuracy {m['known_accuracy']} (answered {m['known_accuracy_answered']}, "
            f"coverage {m['known_coverage']}); unknown recall {m['unknown_recall']}; held-out in clusters "
            f"{c['unknown_in_clusters']}, purity {c['purity']}, false alarms {c['false_alarms']}"
        )
    print(f"wrote {paths['markdown']} and {paths['json']}")
    misses = unmet(summary, required)
    for miss in misses:
        print(f"REQUIREMENT NOT MET: {miss}")
    return 1 if misses else 0


def add_parsers(ev: Any, settings_fn: SettingsFn) -> None:
    p = command(
        ev,
        "new-categories",
        "hold whole labels out of training: how often their tickets abstain, and how they cluster",
        "triage eval new-categories --out evals/reports",
        "triage eval new-categories --train t.csv --test s.csv --label-col queue --hold-out refunds,fraud --out /tmp/n",
        more="Defaults: banking77's official split, 10 labels held out per seed (seeds 1,2,3), precision targets "
        "0.9 (the service's default) and 0.98, clusters of at least 5 abstained tickets.",
    )
    p.add_argument("--train", default=f"{BANKING77}/train.csv", help="training rows (default: %(default)s)")
    p.add_argument("--test", default=f"{BANKING77}/test.csv", help="test rows (default: %(default)s)")
    p.add_argument("--text-col", action="append", help="text column (repeat to join several; default: text)")
    p.add_argument("--label-col", default="category", help="the label column (default: %(default)s)")
    p.add_argument("--held-out", type=int, default=10, help="labels held out per seed (default: %(default)s)")
    p.add_argument("--seeds", default="1,2,3", help="seeds that pick the held-out labels (default: %(default)s)")
    p.add_argument("--hold-out", help="a fixed comma-separated list of labels instead (one run)")
    p.add_argument(
        "--dev-seed",
        type=int,
        default=0,
        help="seed of the clustering sweep the default was chosen on, reported apart (-1: skip; default: %(default)s)",
    )
    p.add_argument("--targets", default="0.9,0.98", help="precision targets of the threshold (default: %(default)s)")
    p.add_argument(
        "--algorithm",
        choices=["agglomerative", "hdbscan"],
        default="agglomerative",
        help="clustering of the abstained tickets; the other is reported beside it (default: %(default)s)",
    )
    p.add_argument(
        "--distance", type=float, default=DEFAULT_DISTANCE, help="agglomerative cosine distance (default: %(default)s)"
    )
    p.add_argument("--min-size", type=int, default=MIN_SIZE, help="smallest cluster reported (default: %(default)s)")
    p.add_argument("--members", help=MEMBERS_HELP)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: %(default)s)")
    add_embedder(p)
    p.add_argument("--note", action="append", help="a line for the end of the report (repeatable)")
    p.add_argument("--out", required=True, help="folder for new_categories.md and new_categories.json")
    p.add_argument(
        "--require",
        help="fail (exit 1) when a median misses its minimum, e.g. 0.98:known_accuracy=0.93,unknown_recall=0.6",
    )
    p.add_argument("--skip-absent", action="store_true", help="say SKIP and succeed when the data files are absent")
    p.set_defaults(func=lambda a: cmd_new_categories(a, settings_fn))
