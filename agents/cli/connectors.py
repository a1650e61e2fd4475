"""`triage connectors`: which connectors are on, backfill past tickets, read and replay the outbox, deliver it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, command, group
from agents.cli.shadow import since_arg

if TYPE_CHECKING:
    from agents.connectors.service import ConnectorService
    from agents.settings import Settings
    from agents.store.tickets import Store


def open_connectors(settings: Settings, *, with_engine: bool) -> tuple[ConnectorService, Store]:
    """The service's connectors as `triage serve` builds them (settings and mapping checked the same way)."""
    from agents.app import build_service
    from agents.connectors.service import ConnectorService
    from agents.store.review import Review
    from agents.store.tickets import Store
    from agents.web.desk import Desk
    from agents.web.metrics import ServiceMetrics
    from kb.loader import load_kb

    store = Store.open(settings.data_dir, settings.database_url)
    if with_engine:
        service: Any = build_service(settings)
        kb, modes = service.kb, service.modes
    else:  # reading or delivering the outbox needs no models: the modes only check the mapping
        from agents.modes import ModeTable

        service, kb = None, load_kb(settings.kb_dir)
        modes = ModeTable(default=settings.default_mode, writes_enabled=False)
    desk = Desk(store, service, ServiceMetrics())
    return ConnectorService.build(settings, store, desk, Review(store, kb), modes), store


def cmd_status(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    connectors, store = open_connectors(settings_fn(args), with_engine=False)
    counts = connectors.outbox.counts()
    for system in ("zendesk", "jira", "servicenow", "zammad"):
        state = "on" if system in connectors.connectors.on else connectors.connectors.off[system]
        outbox = ", ".join(f"{status} {n}" for (s, status), n in sorted(counts.items()) if s == system) or "empty"
        print(f"{system:11s} {state}  (outbox: {outbox})")
    store.close()
    return 0


def cmd_backfill(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.connectors.backfill import BackfillReport, run_backfill

    connectors, store = open_connectors(settings_fn(args), with_engine=True)
    connector = connectors.connectors.get(args.system)
    if connector is None:
        print(f"connector {args.system} is {connectors.connectors.off.get(args.system, 'unknown')}")
        return 2

    def progress(report: BackfillReport) -> None:
        print(f"page {report.pages}: {report.read} read, {report.stored} new, {report.outcomes} final values")

    export = Path(args.export) if args.export else None
    try:
        report = asyncio.run(
            run_backfill(
                connector, connectors.inbox, args.since, max_pages=args.max_pages, export=export, progress=progress
            )
        )
    finally:
        connectors.deliverer.close()
        store.close()
    state = "finished" if report.done else "stopped (run it again to resume)"
    print(
        f"backfill of {args.system} since {args.since:%Y-%m-%d} {state}: {report.read} tickets read in "
        f"{report.pages} page(s), {report.stored} new, {report.outcomes} final values recorded"
    )
    if export:
        print(f"tickets appended to {export} (for `triage onboard --export {export}`)")
    return 0


def cmd_outbox(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    connectors, store = open_connectors(settings_fn(args), with_engine=False)
    items = connectors.outbox.list(args.status, args.system, args.limit)
    for item in items:
        last = f" last {item.last_status or '-'}: {(item.last_error or '')[:100]}" if item.status != "delivered" else ""
        print(
            f"{item.id:6d} {item.system:10s} {item.status:9s} attempts {item.attempts} ticket {item.ticket_id} "
            f"-> {item.external_id}{last}"
        )
    print(f"{len(items)} item(s)")
    store.close()
    return 0


def cmd_replay(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    connectors, store = open_connectors(settings_fn(args), with_engine=False)
    ids = args.ids or [i.id for i in connectors.outbox.list("dead", args.system, 10_000)]
    items = connectors.outbox.replay(ids) if ids else []
    print(
        f"{sum(i.status == 'pending' for i in items)} dead item(s) back to pending; `triage serve` (or "
        "`triage connectors deliver`) sends them"
    )
    store.close()
    return 0


def cmd_deliver(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    connectors, store = open_connectors(settings_fn(args), with_engine=False)
    try:
        if args.once:
            report = connectors.deliverer.run_once()
            print(
                f"planned {report.planned}; "
                + (", ".join(f"{k} {v}" for k, v in report.outcomes.items()) or "nothing due")
            )
        else:
            print("delivering the outbox until Ctrl-C")
            with contextlib.suppress(KeyboardInterrupt):
                connectors.deliverer.run_forever(threading.Event())
    finally:
        connectors.deliverer.close()
        store.close()
    return 0


def add_parsers(sub: Any, settings_fn: SettingsFn) -> None:
    conn = group(
        sub,
        "connectors",
        "helpdesk connectors (Zendesk, Jira, ServiceNow, Zammad): status, backfill, outbox",
        "triage connectors status",
        "triage connectors backfill zendesk --since 2026-01-01",
    )
    p = command(conn, "status", "which connectors are on, and their outbox by status", "triage connectors status")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_status(a, settings_fn))
    p = command(
        conn,
        "backfill",
        "read past tickets through the vendor's export API into the store (triaged, final values recorded)",
        "triage connectors backfill zendesk --since 2026-01-01",
        "triage connectors backfill jira --since 2026-06-01 --export /tmp/jira.jsonl",
        more="Paged and resumable: the cursor is saved after each page, so a run that stops is continued by the same "
        "command. Backfilled tickets are never written back. --export appends each ticket with the vendor's labels "
        "as JSONL, which `triage onboard` reads.",
    )
    p.add_argument("system", choices=("zendesk", "jira", "servicenow", "zammad"), help="the helpdesk to read from")
    p.add_argument("--since", type=since_arg, required=True, help="tickets created since: a date or a span (30d)")
    p.add_argument("--max-pages", type=int, help="stop after this many pages (the next run resumes)")
    p.add_argument("--export", help="also append the tickets to this JSONL file")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_backfill(a, settings_fn))
    p = command(
        conn,
        "outbox",
        "list write-backs: pending, delivered, dead or skipped",
        "triage connectors outbox --status dead",
    )
    p.add_argument("--status", choices=("pending", "delivered", "dead", "skipped"), help="only items in this state")
    p.add_argument("--system", choices=("zendesk", "jira", "servicenow", "zammad"), help="only this helpdesk's items")
    p.add_argument("--limit", type=int, default=50, help="newest items shown (default 50)")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_outbox(a, settings_fn))
    p = command(
        conn,
        "replay",
        "send dead write-backs again (all dead ones, or by id)",
        "triage connectors replay",
        "triage connectors replay 12 13",
    )
    p.add_argument("ids", nargs="*", type=int, help="outbox item ids (default: every dead item)")
    p.add_argument("--system", choices=("zendesk", "jira", "servicenow", "zammad"), help="only this helpdesk's items")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_replay(a, settings_fn))
    p = command(
        conn,
        "deliver",
        "deliver the outbox in this process (with TRIAGE_OUTBOX_IN_PROCESS=false on the servers)",
        "triage connectors deliver",
        "triage connectors deliver --once",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_deliver(a, settings_fn))
