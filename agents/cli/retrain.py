"""`triage retrain`: learn from reviewed tickets behind a gate (agents/models/gate.py), then print the figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.cli.common import MEMBERS_HELP, SettingsFn, add_data_dir, add_embedder, command

if TYPE_CHECKING:
    from agents.models.gate import GateReport

CRON = "15 2 * * *  cd /srv/triage && .venv/bin/triage retrain --quiet --json >> data/retrain.log 2>&1"
MORE = f"""\
Trains a candidate on the original labelled data (--data) plus the tickets people reviewed (POST /v1/feedback),
holding back the newest reviewed tickets (--recent, --recent-share; never more than half). It compares the
candidate with the current version, field by field (category, priority, team), on two sets neither saw:
  held-out  original rows held out by a seeded hash of their id (--holdout, --seed: the same rows every run)
  recent    the newest reviewed tickets, held back
Fair by construction: both recipes (current: the training split + the reviewed tickets it had; candidate: the
training split + every reviewed ticket but the newest) are re-trained on the same split and scored on the same
rows. The candidate becomes current only if no field on either set is worse than current by more than
--tolerance (accuracy); otherwise current stays and the reason names the field, the set and the figures. Every
candidate is kept as a version (`triage models list`), promoted or rejected; `triage models promote ID` overrides.
Nothing new since the current version: nothing is trained. Running servers and workers swap a promoted version
in within TRIAGE_MODELS_POLL seconds. With few recent tickets, one ticket moves accuracy by 1/n: read the n column.

Nightly, from cron (prints one JSON line per run):
  {CRON}"""


def print_table(report: GateReport) -> None:
    if report.scores:
        print(f"{'field':9s} {'set':9s} {'tickets':>7s} {'current':>8s} {'candidate':>10s} {'change':>7s}")
        for s in report.scores:
            mark = "" if s.ok else "  worse than the tolerance"
            print(f"{s.field:9s} {s.set:9s} {s.n:7d} {s.current:8.3f} {s.candidate:10.3f} {s.delta:+7.3f}{mark}")
    where = {
        "promoted": f"{report.candidate} is now current (was {report.current})",
        "rejected": f"{report.candidate} kept as a version, {report.current} stays current",
        "dry-run": f"{report.candidate} kept as a version, not promoted (dry run)",
        "skipped": f"nothing trained, {report.current} stays current",
    }[report.decision]
    print(f"{report.decision}: {where}: {report.reason}")
    for note in report.notes:
        print(f"note: {note}")
    if report.sizes:
        sizes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.sizes.items())
        print(f"rows: {sizes}; {report.seconds} s")


def cmd_retrain(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.models.gate import Retrainer, RetrainOptions
    from agents.models.reviewed import reviewed_tickets
    from agents.models.versions import VersionStore
    from agents.store.tickets import Store
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    settings = settings_fn(args)
    options = RetrainOptions(
        tolerance=args.tolerance,
        recent=args.recent,
        recent_share=args.recent_share,
        holdout_share=args.holdout,
        seed=args.seed,
        dry_run=args.dry_run,
    )
    versions = VersionStore(settings.model_dir)
    versions.current_model_dir()  # no current models: say so before the store is opened (or created)
    store = Store.open(settings.data_dir, settings.database_url)
    try:
        reviewed = reviewed_tickets(store)
    finally:
        store.close()
    retrainer = Retrainer(
        versions,
        load_kb(settings.kb_dir),
        make_embedder(settings.embedder, settings.embed_precision),
        target=settings.precision_target,
        folds=settings.train_folds,
        members=args.members or settings.members,
        intake_fields=settings.intake_fields,
        progress=not args.quiet,
    )
    report = retrainer.run(Path(args.data) if args.data else settings.training_data, reviewed, options)
    if args.json:
        print(report.model_dump_json())
    else:
        print_table(report)
    sys.stdout.flush()
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "retrain",
        "train a candidate on the original data plus reviewed tickets; promote it only if it is not worse",
        "triage retrain",
        "triage retrain --dry-run",
        "triage retrain --tolerance 0.01 --recent 50 --json",
        more=MORE,
    )
    p.add_argument("--data", help="the original JSONL tickets (default: TRIAGE_TRAINING_DATA)")
    p.add_argument(
        "--tolerance", type=float, default=0.02, help="how much lower a field's accuracy may be (default: %(default)s)"
    )
    p.add_argument(
        "--recent",
        type=int,
        default=20,
        help="hold back at least this many newest reviewed tickets (default: %(default)s)",
    )
    p.add_argument(
        "--recent-share", type=float, default=0.2, help="... or this share of them, if more (default: %(default)s)"
    )
    p.add_argument(
        "--holdout", type=float, default=0.2, help="share of original rows held out to compare (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the held-out split (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="judge and keep the candidate as a version, do not promote")
    p.add_argument("--json", action="store_true", help="print one JSON line (the report) instead of the table")
    p.add_argument("--members", help=MEMBERS_HELP)
    add_embedder(p)
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=lambda a: cmd_retrain(a, settings_fn))
