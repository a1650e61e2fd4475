"""`triage ticket`: triage one ticket in this process and print the result (or its JSON)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command
from agents.errors import InvalidTicket

if TYPE_CHECKING:
    from pydantic import ValidationError

    from agents.types import Ticket

LIMITS = {"title": "MAX_TITLE_CHARS", "body": "MAX_BODY_CHARS"}  # the names of the limits in agents/types.py


def invalid_ticket(exc: ValidationError) -> InvalidTicket:
    """The first problem of a ticket that does not validate, in words: which field, how long, the limit."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "ticket"
    where = {"title": "--title", "body": "the ticket text", "intake": "--intake"}.get(field, field)
    if error["type"] == "string_too_long":
        limit = error["ctx"]["max_length"]
        size = len(error["input"])
        named = f" ({LIMITS[field]})" if field in LIMITS else ""
        return InvalidTicket(field, f"{where} is {size:,} characters, over the limit of {limit:,}{named}: shorten it")
    return InvalidTicket(field, f"{where}: {error['msg']}")


def make_ticket(title: str, body: str, intake: list[str] | None = None) -> Ticket:
    """The ticket of the command line; `intake` holds NAME=VALUE options (a form's values, e.g. ticket_type)."""
    from pydantic import ValidationError

    from agents.types import Ticket

    pairs = [item.partition("=") for item in intake or []]
    bad = [name for name, sep, _ in pairs if not sep]
    if bad:
        raise InvalidTicket("intake", f"--intake {bad[0]!r} is not NAME=VALUE (e.g. --intake ticket_type=request)")
    try:
        return Ticket(title=title, body=body, intake={name.strip(): value.strip() for name, _, value in pairs})
    except ValidationError as exc:
        raise invalid_ticket(exc) from None


def cmd_ticket(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.app import build_service

    text = sys.stdin.read() if args.text == "-" else args.text
    ticket = make_ticket(args.title or "", text, args.intake)  # before loading anything: a bad ticket fails fast
    result = build_service(settings_fn(args), progress=True).triage(ticket)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(f"category  {result.category} ({result.confidence['category']:.2f}, {result.backend['category']})")
    print(f"priority  {result.priority} ({result.confidence['priority']:.2f}, {result.backend['priority']})")
    print(
        f"team      {result.team} ({result.confidence['team']:.2f}); on call: {result.owner.on_call or '-'}; "
        f"channel {result.owner.channel}"
    )
    print(f"summary   {result.summary}")
    for ref in result.kb_refs:
        print(f"sop       {ref.title} [{ref.doc_id}#{ref.section}]")
    print(f"human     {'yes' if result.needs_human else 'no'}")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    p = command(
        sub,
        "ticket",
        "triage one ticket and print the result",
        'triage ticket "GlobalConnect drops every ten minutes since this morning"',
        'triage ticket --title "Outlook" --json "Outlook is not syncing"',
        "cat ticket.txt | triage ticket -",
    )
    p.add_argument("text", help="ticket body, or - to read standard input")
    p.add_argument("--title", help="the ticket's subject line")
    p.add_argument(
        "--intake", action="append", metavar="NAME=VALUE", help="a value chosen on the intake form (repeatable)"
    )
    p.add_argument("--json", action="store_true", help="print the full TriageResult as JSON")
    add_data_dir(p)
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_ticket(a, settings_fn))
