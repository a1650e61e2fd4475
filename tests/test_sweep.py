"""The running sweep: tickets left `received` (a replica died mid-request) are triaged without a retry or a
restart, and only once they are older than TRIAGE_SWEEP_AFTER, so a request still at work keeps its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agents.types import Ticket
from tests.test_server_api import make_api


def stored_received(api: Any, text: str) -> str:
    """A ticket committed as `received` the way a replica killed after the commit leaves it."""
    (record,), _ = api.client.app.state.core.store.create([Ticket(title=text, body="the VPN drops every hour")])
    return str(record.id)


def status(api: Any, ticket_id: str) -> str:
    return str(api.client.get(f"/v1/tickets/{ticket_id}", headers=api.read).json()["status"])


def test_a_ticket_left_received_is_triaged_by_the_running_sweep(
    trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    for api in make_api(trained_service, served_answerer, tmp_path, sweep_interval=0.1, sweep_after=0.0):
        ticket_id = stored_received(api, "VPN drops")
        deadline = time.monotonic() + 15
        while status(api, ticket_id) == "received" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(api, ticket_id) == "triaged"
        audit = api.client.get("/v1/audit", headers=api.admin, params={"ticket_id": ticket_id}).json()
        assert [a["kind"] for a in audit].count("triage") == 1


def test_the_sweep_leaves_young_tickets_to_the_request_that_stored_them(
    trained_service: Any, served_answerer: Any, tmp_path: Path
) -> None:
    for api in make_api(trained_service, served_answerer, tmp_path, sweep_interval=0.1, sweep_after=3600.0):
        ticket_id = stored_received(api, "VPN drops")
        time.sleep(0.5)  # five sweeps
        assert status(api, ticket_id) == "received"
