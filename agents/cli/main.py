"""The `triage` command line: a composition root like server.py (it may import evals, nothing imports it)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from agents.cli import ask, digest, eval_llm, evaluate, harness, keys, label, serve, shadow, ticket, train, worker
from agents.cli import connectors as connector_commands
from agents.cli import kb as kb_commands
from agents.cli import models as model_commands
from agents.cli import onboard as onboard_command
from agents.cli import retrain as retrain_command
from agents.cli.common import SettingsInvalid, group, settings
from agents.errors import TriageError
from kb.loader import KbError
from retrieval.errors import RetrievalError

USAGE_ERROR = 2  # a handled error: something in the command, its input or the settings must change (as argparse)
FAILED = 1  # an unexpected error
EXAMPLES = """\
examples:
  triage serve                                  # the HTTP service; the first start trains and prints a key
  triage ticket "VPN drops every ten minutes"   # triage one ticket here
  triage ask "who handles printer jams?"        # answer from the SOPs, with the owner
  triage keys create --name admin --scope admin # a new API key (e.g. when the first one was lost)

Settings come from TRIAGE_* environment variables or a .env file (TRIAGE_DATA_DIR, TRIAGE_EMBEDDER, ...).
Run `triage COMMAND --help` for a command's options and examples."""


class Parser(argparse.ArgumentParser):
    """argparse that takes --debug after any command, and reports a usage error on one line pointing at --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        top = kwargs.get("prog") == "triage"  # below the top, --debug is set only when given: `triage --debug x` holds
        self.add_argument(
            "--debug",
            action="store_true",
            default=False if top else argparse.SUPPRESS,
            help="print the traceback of an unexpected error",
        )

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="triage",
        description="AI triage for IT helpdesks: classify, prioritise, route and answer tickets.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    kb_commands.add_parsers(sub, settings)  # kb index, kb search
    ev = group(
        sub,
        "eval",
        "offline evaluation: retrieval, classification, answers, every backend on data set specs",
        "triage eval run evals/datasets/demo_tickets.v1.yaml --out /tmp/demo-eval",
        "triage eval gate --baseline evals/baselines/demo.v1.json --current /tmp/demo-eval/summary.json",
    )
    evaluate.add_parsers(ev, settings)  # eval retrieval, eval classify
    eval_llm.add_parsers(ev, settings)  # eval llm: the evidence the LLM must show before it classifies
    harness.add_parsers(ev, sub, settings)  # eval run, eval gate, eval report, bench
    train.add_parsers(sub, settings)
    onboard_command.add_parsers(sub, settings)  # onboard: a helpdesk from one export file
    serve.add_parsers(sub, settings)
    ticket.add_parsers(sub, settings)
    digest.add_parsers(sub, settings)  # digest, scheduler, demo seed
    label.add_parsers(sub, settings)  # predict
    ask.add_parsers(sub, ev, settings)  # ask, eval answers, eval owners
    keys.add_parsers(sub, settings)  # keys create, keys list, keys revoke
    model_commands.add_parsers(sub, settings)  # models list, models promote, models rollback
    retrain_command.add_parsers(sub, settings)  # retrain: a candidate behind the gate
    connector_commands.add_parsers(sub, settings)  # connectors status, backfill, outbox, replay, deliver
    worker.add_parsers(sub, settings)  # worker, worker replay, worker send
    shadow.add_parsers(sub, settings)  # shadow report
    return parser


def one_line(text: str) -> str:
    return " ".join(text.split())


def report(exc: BaseException, debug: bool = False) -> int:
    """Print an error for people (one line each, `triage: ...`) and return the exit code."""
    from pydantic import ValidationError

    if isinstance(exc, SettingsInvalid):
        lines = exc.lines
    elif isinstance(exc, ValidationError):  # a pydantic model the command built: field and problem, no URL
        lines = ["; ".join(f"{'.'.join(map(str, e['loc'])) or exc.title}: {e['msg']}" for e in exc.errors())]
    elif isinstance(exc, TriageError | KbError | RetrievalError | ValueError):
        lines = [str(exc)]
    elif isinstance(exc, OSError) and exc.strerror:
        lines = [f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror]
    elif debug:
        traceback.print_exception(exc)
        return FAILED
    else:
        what = f"{type(exc).__name__}: {one_line(str(exc))}"
        print(f"triage: unexpected error: {what} (run with --debug for the traceback)", file=sys.stderr)
        return FAILED
    for line in lines:
        print(f"triage: {one_line(line)}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return USAGE_ERROR
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("triage: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return report(exc, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
