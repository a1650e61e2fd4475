"""`triage onboard`: a helpdesk configuration from one export file (KB, training tickets, measured report)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from agents.cli.common import MEMBERS_HELP, SettingsFn, add_embedder, command
from agents.errors import DataError

OPTION = {  # spec field -> the option that sets it, for one-line errors
    "data": "--data",
    "text_cols": "--text-col",
    "fields": "--field",
    "intake": "--intake",
    "id_col": "--id-col",
    "priority_order": "--priority-order",
    "sops": "--sops",
    "min_label_rows": "--min-label-rows",
    "holdout": "--holdout",
    "sample": "--sample",
    "seed": "--seed",
}


def command_line(args: argparse.Namespace) -> str:
    """The onboard command as run, in a canonical order (recorded in the report and helpdesk.json)."""
    parts = ["triage", "onboard", "--data", str(args.data)]
    parts += [x for col in args.text_col for x in ("--text-col", col)]
    parts += [x for f in args.field for x in ("--field", f)]
    parts += [x for f in args.intake for x in ("--intake", f)]
    for option in ("priority_order", "id_col", "sops", "min_label_rows", "holdout", "sample", "seed", "members"):
        value = getattr(args, option)
        if value is not None and value != DEFAULTS.get(option):
            parts += [f"--{option.replace('_', '-')}", str(value)]
    if args.embedder:
        parts += ["--embedder", args.embedder]
    return shlex.join([*parts, "--out", str(args.out)])


def build_spec(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from agents.onboard.export import OnboardSpec, parse_fields, parse_intake

    order = [p.strip() for p in args.priority_order.split(",") if p.strip()] if args.priority_order else None
    try:
        return OnboardSpec(
            data=Path(args.data),
            text_cols=args.text_col,
            fields=parse_fields(args.field),
            intake=parse_intake(args.intake),
            id_col=args.id_col,
            priority_order=order,
            sops=Path(args.sops) if args.sops else None,
            min_label_rows=args.min_label_rows,
            holdout=args.holdout,
            sample=args.sample,
            seed=args.seed,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "options"
        raise DataError(OPTION.get(name, name), f"{error['msg'][:1].lower()}{error['msg'][1:]}") from None


def cmd_onboard(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.onboard.run import onboard
    from retrieval.factory import make_embedder

    spec = build_spec(args)  # before loading anything: bad options fail fast
    settings = settings_fn(args)
    out = Path(args.out)
    commands = {
        "onboard": command_line(args),
        "serve": f"triage serve --config {shlex.quote(str(out))}",
        "ticket": f'triage ticket --config {shlex.quote(str(out))} "the text of a ticket"',
    }
    summary = onboard(
        spec,
        out,
        make_embedder(settings.embedder, settings.embed_precision),
        target=settings.precision_target,
        folds=settings.train_folds,
        members=args.members or settings.members,
        commands=commands,
        progress=not args.quiet,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    rows = summary.rows
    print(
        f"{rows.read} rows read: {rows.tickets} training tickets, {rows.duplicates} duplicated ids, "
        f"{rows.no_text} without text, {rows.kept_out} kept out (a field empty or rare)"
    )
    for name, f in summary.fields.items():
        t = f.threshold
        at = "never reached" if t.value > 1 else f"{t.value:.2f}: held-out precision {t.held_out_precision or 0:.3f}"
        ref = f"TF-IDF + LR {f.reference.accuracy:.3f}" if f.reference.accuracy is not None else "one label"
        print(
            f"{name:9s} accuracy {f.accuracy:.3f} ({ref}), macro-F1 {f.macro_f1:.3f}; threshold {at}, "
            f"coverage {t.held_out_coverage:.3f}"
        )
    for warning in summary.warnings:
        print(f"warning: {warning}")
    print(f"wrote {out}/: report.md, summary.json, kb/, tickets.jsonl, labels.json, plots/, helpdesk.json")
    print(f"serve it: {commands['serve']}")
    return 0


DEFAULTS: dict[str, Any] = {"min_label_rows": 20, "holdout": 0.2, "seed": 42}


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "onboard",
        "build a helpdesk (KB, training tickets, measured report) from one export file",
        "triage onboard --data export.csv --text-col subject --text-col description --field category=Category "
        '--field team="Assignment group" --field priority=Priority --priority-order "Critical,High,Medium,Low" '
        "--out /srv/helpdesk",
        "triage onboard --data tickets.zip --text-col Document --field category=Topic_group --sops sops/ --out hd",
        "triage serve --config /srv/helpdesk     # then serve it",
        more="Labels become ids (labels.json maps them); labels with fewer than --min-label-rows rows go to a review\n"
        "list and out of training. Without --field team: one team per category. Without --field priority: every\n"
        "ticket is P3. The report measures each field on held-out rows: accuracy, macro-F1, a TF-IDF + LR\n"
        "reference, the threshold for TRIAGE_PRECISION_TARGET and a sweep of thresholds 0.05..0.95.",
    )
    p.add_argument("--data", required=True, help="the export: CSV, TSV, JSONL, or a zip holding one")
    p.add_argument("--text-col", action="append", required=True, help="text column(s): the first is the title")
    p.add_argument(
        "--field",
        action="append",
        required=True,
        metavar="NAME=COLUMN",
        help="category=COL (required), team=COL and priority=COL (optional); repeat the option",
    )
    p.add_argument(
        "--intake",
        action="append",
        default=[],
        metavar="NAME=COLUMN",
        help="a value chosen on the intake form that the models read, e.g. ticket_type=Type (repeatable); "
        "tickets then send it as intake.NAME",
    )
    p.add_argument("--priority-order", help="priority labels, most urgent first, comma-separated (onto P1..P4)")
    p.add_argument("--id-col", help="the ticket id column (default: the row number); repeated ids keep the first row")
    p.add_argument("--sops", help="a folder of Markdown or HTML SOPs to import into kb/sops/")
    p.add_argument(
        "--min-label-rows", type=int, default=20, help="fewer rows: a label for review (default: %(default)s)"
    )
    p.add_argument(
        "--holdout", type=float, default=0.2, help="share of rows held out to measure (default: %(default)s)"
    )
    p.add_argument("--sample", type=int, help="measure on a stratified sample of this many rows (large exports)")
    p.add_argument("--seed", type=int, default=42, help="seed of the sample and the split (default: %(default)s)")
    p.add_argument("--members", help=MEMBERS_HELP)
    add_embedder(p)
    p.add_argument("--out", required=True, help="the helpdesk folder to write (new, or written by onboard before)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda a: cmd_onboard(a, settings_fn))
