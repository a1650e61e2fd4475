"""Backfill: page through a vendor's past tickets into the store (triaged, final values recorded), resumably."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict

from agents.connectors.base import Connector, InboundEvent
from agents.connectors.inbox import ConnectorInbox
from agents.store.tables import ConnectorCursorRow
from agents.store.tickets import Store, as_utc

log = logging.getLogger(__name__)


class BackfillReport(BaseModel):
    """What one run read and stored, and where it stopped."""

    model_config = ConfigDict(extra="forbid")

    system: str
    since: datetime
    resumed: bool  # started from a cursor an earlier run left
    pages: int = 0
    read: int = 0  # tickets the vendor returned
    stored: int = 0  # new in the store (the rest were there already)
    outcomes: int = 0  # final values recorded beside triage's prediction
    done: bool = False  # the vendor said there is nothing more


def load_cursor(store: Store, system: str, since: datetime) -> str | None:
    """The cursor an earlier run of the same backfill (same since) left, or None to start at `since`."""
    with store.read() as session:
        row = session.get(ConnectorCursorRow, system)
    if row is None or as_utc(row.since) != since:
        return None
    return row.cursor


def save_cursor(store: Store, system: str, since: datetime, cursor: str | None, done: bool, tickets: int) -> None:
    with store.write() as session:
        row = session.get(ConnectorCursorRow, system, with_for_update=True)
        if row is None or as_utc(row.since) != since:
            if row is not None:
                session.delete(row)
                session.flush()
            row = ConnectorCursorRow(system=system, since=since, tickets=0)
            session.add(row)
        row.cursor, row.done, row.tickets, row.updated_at = cursor, done, row.tickets + tickets, store.clock()


def export_row(event: InboundEvent) -> dict[str, object]:
    """A backfilled ticket as `triage onboard` reads it: text, and the vendor's own labels as columns."""
    return {
        "id": event.external_id,
        "title": event.title,
        "body": event.body,
        "created_at": event.created_at.isoformat() if event.created_at else None,
        **{field: value for field, value in event.values.items()},
    }


async def _store_page(inbox: ConnectorInbox, events: list[InboundEvent]) -> tuple[int, int]:
    done = await asyncio.gather(*(inbox.create(event) for event in events))
    return sum(not d.duplicate for d in done), sum(len(d.recorded) for d in done)


async def run_backfill(
    connector: Connector,
    inbox: ConnectorInbox,
    since: datetime,
    *,
    transport: httpx.BaseTransport | None = None,
    max_pages: int | None = None,
    export: Path | None = None,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Every page since `since` (or from the cursor of an interrupted run), each page stored through the same inbox
    as webhooks (a ticket is stored once however often this runs), and its cursor saved before the next page."""
    store, system = inbox.store, connector.system
    cursor = await asyncio.to_thread(load_cursor, store, system, since)
    report = BackfillReport(system=system, since=since, resumed=cursor is not None)
    await inbox.desk.batcher.start()
    out = export.open("a", encoding="utf-8") if export else None
    try:
        with connector.client(transport) as client:
            while max_pages is None or report.pages < max_pages:
                page = await asyncio.to_thread(connector.backfill_page, client, since, cursor)
                stored, outcomes = await _store_page(inbox, page.events)
                if out is not None:
                    out.writelines(json.dumps(export_row(e), ensure_ascii=False) + "\n" for e in page.events)
                    out.flush()
                report.pages, report.read = report.pages + 1, report.read + len(page.events)
                report.stored, report.outcomes = report.stored + stored, report.outcomes + outcomes
                report.done = page.cursor is None
                # the cursor is saved only after the page is stored: an interrupted run repeats at most one page
                await asyncio.to_thread(save_cursor, store, system, since, page.cursor or cursor, report.done, stored)
                if progress:
                    progress(report)
                if report.done:
                    break
                cursor = page.cursor
    finally:
        if out is not None:
            out.close()
        await inbox.desk.batcher.stop()
    return report
