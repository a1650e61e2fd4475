"""The `triage digest`, `triage scheduler` and `triage demo seed` commands (registered by agents/cli/main.py)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command, group
from agents.digest.scheduler import zone


def parse_at(value: str | None, timezone: str, now: datetime) -> datetime | None:
    """An ISO time; without an offset it is read in the digest's time zone. A time after now is refused."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--at {value!r}: expected an ISO time such as 2026-07-14T08:30 or 2026-07-14T08:30+01:00"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone(timezone, "digest_timezone"))
    if at > now:
        raise ValueError(f"--at {value!r} is in the future (now is {now:%Y-%m-%dT%H:%M%z})")
    return at.astimezone(UTC)


def cmd_digest(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.digest.formats import render
    from agents.digest.job import run_digest

    settings = settings_fn(args)
    timezone = args.timezone or settings.digest_timezone
    zone(timezone, "--timezone" if args.timezone else "digest_timezone")
    now = datetime.now(UTC)
    digest, outcome = run_digest(
        settings,
        at=parse_at(args.at, timezone, now),
        team=args.team,
        fmt=args.format,
        out=Path(args.out) if args.out else None,
        post=args.post,
        timezone=timezone,
        now=now,
    )
    if outcome.out is None:
        sys.stdout.write(render(digest, args.format))
    print(
        f"saved {outcome.out or outcome.files[args.format]} (all formats under {Path(outcome.files['md']).parent})",
        file=sys.stderr,
    )
    if outcome.error:
        print(f"triage: the digest is saved, but posting failed: {outcome.error}", file=sys.stderr)
        return 1
    if outcome.posted:
        print(f"posted after {outcome.attempts} attempt(s)", file=sys.stderr)
    return 0


def cmd_scheduler(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.digest.scheduler import run_scheduler
    from kb.loader import load_kb

    settings = settings_fn(args)
    run_scheduler(settings, load_kb(settings.kb_dir).teams)
    return 0


def cmd_demo_seed(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.app import build_service
    from agents.digest.demo_history import DemoHistory
    from agents.jsonl import read_jsonl
    from agents.store.tickets import Store
    from kb.loader import load_kb

    settings = settings_fn(args)
    triager = None if args.no_triage else build_service(settings)
    history = DemoHistory(
        read_jsonl(settings.training_data),
        load_kb(settings.kb_dir),
        days=args.days,
        per_day=args.per_day,
        seed=args.seed,
        triager=triager,
    )
    store = Store.open(settings.data_dir, settings.database_url)
    try:
        counts = history.seed(store, datetime.now(UTC), replace=args.replace)
    finally:
        store.close()
    print(
        f"seeded {counts['tickets']} tickets over {args.days} days ({counts['feedback']} verdicts, "
        f"{counts['audit']} audit rows{', replacing ' + str(counts['replaced']) if counts['replaced'] else ''}) "
        f"into {settings.database_url or settings.data_dir / 'triage.db'}"
    )
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "digest",
        "the daily stand-up digest per team (Markdown, JSON or HTML)",
        "triage digest",
        "triage digest --team network --format html --out /tmp/network.html",
        "triage digest --at 2026-07-14T08:30 --timezone Europe/London --post https://hooks.slack.com/services/...",
    )
    p.add_argument("--at", help="end of the 24-hour window, ISO 8601 (default: now)")
    p.add_argument("--team", help="one team id (default: every team)")
    p.add_argument(
        "--format", choices=["md", "json", "html"], default="md", help="output format (default: %(default)s)"
    )
    p.add_argument("--out", help="also write the digest to this file")
    p.add_argument("--post", metavar="URL", help="post to a Slack-compatible incoming webhook (after saving)")
    p.add_argument("--timezone", help="show times in this IANA zone (default: TRIAGE_DIGEST_TIMEZONE)")
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_digest(a, settings_fn))

    p = command(
        sub,
        "scheduler",
        "run the daily digests on their schedule (blocks until stopped)",
        "triage scheduler",
        "TRIAGE_DIGEST_TIME=07:45 TRIAGE_DIGEST_TIMEZONE=Europe/Berlin triage scheduler",
        more="When: TRIAGE_DIGEST_TIME, TRIAGE_DIGEST_TIMEZONE, TRIAGE_DIGEST_WEEKDAYS_ONLY and\n"
        "TRIAGE_DIGEST_TEAM_SCHEDULES; where: TRIAGE_DIGEST_WEBHOOK_URL (else files only).",
    )
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_scheduler(a, settings_fn))

    demo = group(sub, "demo", "demo data", "triage demo seed --days 14 --replace")
    p = command(
        demo,
        "seed",
        "fill the store with a generated ticket history ending now",
        "triage demo seed",
        "triage demo seed --days 30 --per-day 60 --replace --no-triage",
    )
    p.add_argument("--days", type=int, default=14, help="days of history (default: %(default)s)")
    p.add_argument("--per-day", type=float, default=40.0, help="mean tickets on a weekday (weekends are quieter)")
    p.add_argument("--seed", type=int, default=7, help="random seed: the same seed, the same history")
    p.add_argument("--no-triage", action="store_true", help="store the demo labels instead of running the service")
    p.add_argument("--replace", action="store_true", help="delete earlier demo tickets first")
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_demo_seed(a, settings_fn))
