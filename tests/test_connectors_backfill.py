"""Backfill from each vendor's loopback export API: paged, resumable, each ticket stored and triaged once, with
final values recorded and nothing written back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.connectors.backfill import BackfillReport, run_backfill
from agents.connectors.base import FieldMapping
from agents.connectors.outbox import Outbox
from agents.connectors.service import ConnectorService
from agents.connectors.writeback import plan_pending
from agents.modes import ModeTable
from agents.settings import Settings
from agents.store.review import Review
from agents.store.tickets import Store
from agents.web.desk import Desk
from agents.web.metrics import ServiceMetrics
from tests.connector_kit import VendorKit
from tests.test_connectors_flow import BODY, with_modes

SINCE = datetime(2026, 1, 1, tzinfo=UTC)


def backfill(kit: VendorKit, service: Any, tmp_path: Path, **options: Any) -> tuple[BackfillReport, Store]:
    """One run of `triage connectors backfill` as the CLI wires it, on a page size of 3."""
    mapping = tmp_path / "connectors.json"
    mapping.write_text(json.dumps({kit.system: kit.mapping}))
    settings = Settings(data_dir=tmp_path, connector_mapping=mapping, **kit.settings)
    store = Store.open(tmp_path)
    desk = Desk(store, service, ServiceMetrics())
    connectors = ConnectorService.build(settings, store, desk, Review(store, service.kb), ModeTable(default="suggest"))
    connector = connectors.connectors.on[kit.system]
    if hasattr(connector, "page_size"):
        connector.page_size = 3
    if hasattr(kit.server, "page_size"):
        kit.server.page_size = 3
    report = asyncio.run(run_backfill(connector, connectors.inbox, SINCE, **options))
    connectors.deliverer.close()
    return report, store


def test_a_backfill_is_paged_resumable_stores_each_ticket_once_and_writes_nothing_back(
    kit: VendorKit, trained_service: Any, tmp_path: Path
) -> None:
    service = with_modes(trained_service, "suggest")
    for i in range(7):
        kit.seed(f"VPN drops every {i + 2} minutes", BODY)
    export = tmp_path / "export.jsonl"
    first, store = backfill(kit, service, tmp_path, max_pages=1, export=export)
    assert (first.pages, first.read, first.stored, first.done, first.resumed) == (1, 3, 3, False, False)
    store.close()
    rest, store = backfill(kit, service, tmp_path, export=export)
    assert rest.resumed and rest.done and first.stored + rest.stored == 7
    store.close()
    again, store = backfill(kit, service, tmp_path)
    assert again.stored == 0  # run it as often as you like: a ticket is stored once
    tickets, total = store.list({}, 100, 0)
    assert total == 7 and {t.channel for t in tickets} == {kit.system}
    assert all(t.status == "triaged" and t.metadata.get("backfill") for t in tickets)
    outbox = Outbox(store)
    plan_pending(outbox, {kit.system: FieldMapping()})
    assert {i.status for i in outbox.list()} == {"skipped"}  # past tickets are measured, never written back
    assert kit.writes() == []
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert len({r["id"] for r in rows}) == 7 and all(r["title"].startswith("VPN drops") for r in rows)
    store.close()
