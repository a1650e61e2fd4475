"""`triage train`: the triage models (category, priority, team) from JSONL tickets, with a progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agents.cli.common import MEMBERS_HELP, SettingsFn, add_data_dir, add_embedder, command
from agents.errors import DataError

TABLES = {".csv": "a CSV", ".tsv": "a TSV", ".zip": "a zip"}  # read by --label-col training only


def check_triage_data(args: argparse.Namespace) -> None:
    """Without --label-col, train reads JSONL tickets: say what is missing before reading a table as JSONL."""
    if args.text_col:
        raise DataError(
            str(args.data or "--text-col"),
            "--label-col is missing: with --text-col, name the column to predict (e.g. --label-col queue); "
            "without both, `triage train` reads JSONL tickets with title, body, category, priority and team",
        )
    kind = TABLES.get(Path(args.data).suffix.lower()) if args.data else None
    if kind:
        raise DataError(
            str(args.data),
            f"{kind} needs --text-col and --label-col (one classifier for that column); "
            "the triage models train on JSONL tickets with title, body, category, priority and team",
        )


def cmd_train(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.classical.training import save_models, train_models
    from agents.jsonl import read_jsonl
    from agents.models.records import TrainingData, VersionRecord, figures_from
    from agents.models.reviewed import ReviewedTicket, last_feedback_id
    from agents.models.versions import VersionStore, file_digest
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    settings = settings_fn(args)
    if args.label_col:  # any labelled data set: one classifier for that column
        from agents.cli.label import cmd_train_labels

        return cmd_train_labels(args, settings)
    check_triage_data(args)
    source = Path(args.data) if args.data else settings.training_data
    original = read_jsonl(source)
    reviewed: list[ReviewedTicket] = []
    if args.with_feedback:
        from agents.models.reviewed import reviewed_tickets
        from agents.store.tickets import Store

        store = Store.open(settings.data_dir, settings.database_url)
        try:
            reviewed = reviewed_tickets(store)
        finally:
            store.close()
        print(f"adding {len(reviewed)} ticket(s) people reviewed (POST /v1/feedback) to {len(original)} rows")
    rows = original + [t.row for t in reviewed]
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    members = args.members or settings.members
    models = train_models(
        rows,
        embedder,
        load_kb(settings.kb_dir),
        target=settings.precision_target,
        folds=settings.train_folds,
        members=members,
        intake_fields=settings.intake_fields,
        progress=not args.quiet,
    )
    for name, choice in models.thresholds.items():
        print(
            f"{name:9s} threshold={choice.threshold:.3f} held-out precision={choice.precision:.3f} "
            f"coverage={choice.coverage:.3f}"
        )
    if args.out:  # a plain model folder, outside the versions
        save_models(models, Path(args.out))
        print(f"trained on {len(rows)} tickets in {models.info['seconds']} s; saved to {args.out}")
        return 0
    record = VersionRecord(
        source="train",
        embedder=models.embedder_name,
        members=members,
        data=TrainingData(
            source_file=str(source),
            source_rows=len(original),
            source_sha256=file_digest(source),
            reviewed_rows=len(reviewed),
            last_feedback_id=last_feedback_id(reviewed),
        ),
        figures=figures_from(models.thresholds),
    )
    saved = VersionStore(settings.model_dir).create(lambda out: save_models(models, out), record, make_current=True)
    print(
        f"trained on {len(rows)} tickets in {models.info['seconds']} s; saved as version {saved.id}, now current "
        f"in {settings.model_dir} (running servers and workers swap it in within TRIAGE_MODELS_POLL seconds; "
        "`triage models rollback` undoes)"
    )
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "train",
        "train the triage models, or one classifier for any labelled data set",
        "triage train                                   # the demo tickets, into the data folder",
        "triage train --data tickets.jsonl --with-feedback",
        "triage train --data queues.csv --text-col title --text-col body --label-col queue --out data/queue-model",
        more="Without --label-col: category, priority and team models from JSONL tickets, saved as a new model\n"
        "version and made current (`triage models list`); running servers and workers swap it in. No gate:\n"
        "see `triage retrain` for a candidate that replaces the current models only if it is not worse.\n"
        "With --label-col: one classifier for that column of a CSV, TSV, JSONL or zip (see predict).",
    )
    p.add_argument("--data", help="JSONL with title, body, category, priority, team (default: TRIAGE_TRAINING_DATA)")
    p.add_argument("--text-col", action="append", help="with --label-col: text column(s) of a CSV, JSONL or zip")
    p.add_argument("--label-col", help="train one classifier for this column instead of the triage models")
    p.add_argument("--members", help=MEMBERS_HELP)
    add_embedder(p)
    p.add_argument(
        "--out",
        help="a plain folder to save to, outside the versions (default: a new current version in the data folder's "
        "models/; needed with --label-col)",
    )
    add_data_dir(p)
    p.add_argument("--with-feedback", action="store_true", help="add tickets people corrected or accepted")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda a: cmd_train(a, settings_fn))
