"""`triage train --text-col C --label-col L` and `triage predict`: one classifier for any labelled data set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agents.cli.common import SettingsFn, add_embedder, command
from agents.settings import Settings


def cmd_train_labels(args: argparse.Namespace, settings: Settings) -> int:
    """Train on a CSV, TSV, JSONL or zip: the named text columns joined, the named label column."""
    from agents.classical.label_model import save_label_model, train_label_model
    from evals.tables import read_rows, texts_and_labels
    from retrieval.factory import make_embedder

    if not args.text_col or not args.out:
        raise ValueError("training on --label-col needs --text-col (one or more) and --out DIR")
    if args.data is None:
        raise ValueError("training on --label-col needs --data PATH (CSV, TSV, JSONL or a zip holding one)")
    texts, labels = texts_and_labels(read_rows(args.data), args.text_col, args.label_col, str(args.data))
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    model = train_label_model(
        texts,
        labels,
        embedder,
        members=args.members or settings.members,
        folds=settings.train_folds,
        target=settings.precision_target,
        source=str(args.data),
    )
    out = save_label_model(model, Path(args.out))
    t = model.threshold
    print(
        f"{len(model.model.classes_)} labels from {len(texts)} rows; members {', '.join(model.info['members'])}; "
        f"threshold {t.threshold:.3f} (held-out precision {t.precision:.3f}, coverage {t.coverage:.3f})"
    )
    print(f"trained in {model.info['seconds']} s; saved to {out}")
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from agents.classical.label_model import load_label_model
    from retrieval.factory import make_embedder

    texts = [line.rstrip("\n") for line in sys.stdin] if args.text == ["-"] else args.text
    model = load_label_model(Path(args.model), make_embedder(settings.embedder, settings.embed_precision))
    for text, prediction in zip(texts, model.predict(texts), strict=True):
        if args.json:
            print(json.dumps({"text": text, **prediction.model_dump()}, ensure_ascii=False))
        else:
            flag = "  needs a human" if prediction.needs_human else ""
            print(f"{prediction.label}\t{prediction.confidence:.2f}{flag}\t{text[:80]}")
    return 0


def add_parsers(sub: Any, settings_of: SettingsFn) -> None:
    p = command(
        sub,
        "predict",
        "label texts with a model from `triage train --label-col`",
        'triage predict --model data/queue-model "VPN drops every ten minutes"',
        "cut -f2 tickets.tsv | triage predict --model data/queue-model --json -",
    )
    p.add_argument("text", nargs="+", help="one or more texts, or - to read one per line from standard input")
    p.add_argument("--model", required=True, help="the folder `triage train --out` wrote")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_embedder(p, "sentence embedder: the one the model was trained with (default: TRIAGE_EMBEDDER)")
    p.set_defaults(func=lambda args: cmd_predict(args, settings_of(args)))
