"""`triage shadow report`: agreement of triage's decisions with the agents' final values, and what they support."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, command, group

if TYPE_CHECKING:
    from agents.novelty.models import NewCategory
    from agents.settings import Settings
    from agents.store.tickets import Store

SPAN = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def since_arg(value: str) -> datetime:
    """--since: a span back from now (36h, 7d, 2w) or a date (2026-11-01); an argparse type."""
    if match := SPAN.match(value.strip()):
        return datetime.now(UTC) - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a span (36h, 7d, 2w) nor a date (2026-11-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _new_categories(store: Store, settings: Settings, now: datetime) -> list[NewCategory] | None:
    """Clusters of the last 14 days' tickets that every topic field abstained on, under the saved models' thresholds
    (None without saved models: nothing to compare confidences with, so the report leaves the section out)."""
    from agents.novelty.reader import find_new_categories, saved_thresholds
    from retrieval.factory import make_embedder

    thresholds = saved_thresholds(settings.model_dir)
    if thresholds is None:
        return None
    return find_new_categories(store, make_embedder(settings.embedder, settings.embed_precision), thresholds, now=now)


def cmd_report(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.shadow.agreement import build_report
    from agents.shadow.render import render_markdown
    from agents.store.outcomes import read_outcomes
    from agents.store.tickets import Store

    settings = settings_fn(args)
    store = Store.open(settings.data_dir, settings.database_url)
    now = datetime.now(UTC)
    try:
        outcomes = read_outcomes(store, since=args.since)
        new_categories = None if args.no_new_categories else _new_categories(store, settings, now)
    finally:
        store.close()
    report = build_report(
        outcomes, target=settings.precision_target, until=now, since=args.since, min_support=args.min_support
    ).model_copy(update={"new_categories": new_categories})
    text = render_markdown(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text, encoding="utf-8")
        (out / "summary.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        print(f"shadow report of {report.outcomes} outcome(s) written to {out}/report.md and summary.json")
    else:
        print(text, end="")
    for field in report.fields:
        print(f"{field.field:9s} {field.seen:6d} outcomes  agreement {field.agreement:.1%}  -> {field.recommendation}")
    return 0


def cmd_replay(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.jsonl import read_jsonl
    from agents.shadow.render import render_markdown
    from agents.shadow.replay import replay_history

    settings = settings_fn(args)
    data = Path(args.data) if args.data else settings.training_data
    report, facts = replay_history(
        settings, read_jsonl(data), replay=args.replay, seed=args.seed, min_support=args.min_support
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    intro = (
        f"Replay of `{data}`: trained on the older {facts['trained_on']} of {facts['rows']} rows "
        f"(order: {facts['order']}), triaged the newer {facts['replayed']} with every field in shadow, and took each "
        f"row's labels as the agent's final values. Training {facts['train_seconds']} s, replay "
        f"{facts['replay_seconds']} s on this machine.\n\n"
    )
    (out / "report.md").write_text(intro + render_markdown(report), encoding="utf-8")
    summary = {"replay": facts, **report.model_dump(mode="json")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for field in report.fields:
        print(
            f"{field.field:9s} {field.seen:5d} replayed  agreement {field.agreement:.1%}  at threshold "
            f"{field.coverage:.1%} with precision {field.precision_at_threshold or 0:.1%}  -> {field.recommendation}"
        )
    print(f"report written to {out}/report.md and summary.json")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    shadow = group(
        sub,
        "shadow",
        "agreement of triage's decisions with the agents' final values (shadow mode)",
        "triage shadow report --since 7d --out /tmp/shadow",
    )
    p = command(
        shadow,
        "report",
        "per field and value: outcomes, agreement, coverage at the threshold, the sweep, and the mode each supports",
        "triage shadow report --since 7d --out /tmp/shadow",
        "triage shadow report --since 2026-11-01 --min-support 50",
        more="An outcome is an agent's final value of a triaged field: a PATCH, a verdict (POST /v1/feedback) or the "
        "values a ticket is resolved with. auto is recommended where the 95% lower bound of the precision at the "
        "threshold reaches TRIAGE_PRECISION_TARGET; set modes with TRIAGE_FIELD_MODES.",
    )
    p.add_argument("--since", type=since_arg, help="only outcomes set since: 36h, 7d, 2w or a date (default: all)")
    p.add_argument("--out", help="write DIR/report.md and DIR/summary.json instead of printing the report")
    p.add_argument("--min-support", type=int, default=30, help="outcomes at the threshold before recommending")
    p.add_argument(
        "--no-new-categories", action="store_true", help="skip clustering the tickets every topic field abstained on"
    )
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_report(a, settings_fn))

    p = command(
        shadow,
        "replay",
        "measure shadow mode on a labelled history: train on the older rows, replay the newer ones",
        "triage shadow replay --out /tmp/replay",
        "triage shadow replay --config /tmp/endava-helpdesk --replay 0.2 --out /tmp/replay-endava",
        more="Reads JSONL tickets in the training shape (title, body, category, priority, team; created_at orders "
        "them when every row has one), default the served helpdesk's training data. Nothing touches the data folder: "
        "the replay trains and stores in a temporary one.",
    )
    p.add_argument("--data", help="labelled JSONL tickets (default: TRIAGE_TRAINING_DATA)")
    p.add_argument("--replay", type=float, default=0.3, help="share of the newest rows to replay (default 0.3)")
    p.add_argument("--seed", type=int, default=7, help="shuffle seed when the rows have no created_at")
    p.add_argument("--min-support", type=int, default=30, help="outcomes at the threshold before recommending")
    p.add_argument("--out", required=True, help="write DIR/report.md and DIR/summary.json")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_replay(a, settings_fn))
