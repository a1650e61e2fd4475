"""The connectors of one service process: built from the settings at start, with their inbox and outbox deliverer."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session

from agents.connectors.delivery import Deliverer, DeliveryPolicy
from agents.connectors.inbox import ConnectorInbox
from agents.connectors.outbox import Outbox
from agents.connectors.registry import Connectors, build_connectors
from agents.connectors.writeback import plan_rows
from agents.modes import ModeTable
from agents.settings import Settings
from agents.store.review import Review
from agents.store.tables import TicketRow
from agents.store.tickets import Store
from agents.web.desk import Desk

log = logging.getLogger(__name__)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=settings.outbox_max_attempts,
        backoff=settings.outbox_backoff,
        backoff_max=settings.outbox_backoff_max,
        concurrency=settings.outbox_concurrency,
    )


@dataclass
class ConnectorService:
    """Connectors, inbox, outbox and (when in process) the delivery thread."""

    connectors: Connectors
    outbox: Outbox
    inbox: ConnectorInbox
    deliverer: Deliverer
    in_process: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        desk: Desk,
        review: Review,
        modes: ModeTable,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> ConnectorService:
        """Every system's settings and mapping are checked here: a bad one stops the start, with every reason."""
        connectors = build_connectors(settings, review.labels, modes)
        outbox = Outbox(store, lease=timedelta(seconds=max(60.0, 4 * settings.connector_timeout)))
        deliverer = Deliverer(outbox, connectors.on, delivery_policy(settings), transport=transport)

        def plan(session: Session, row: TicketRow) -> int:  # planned already (a redelivery): the unique key says no
            return plan_rows(session, outbox, deliverer.mappings, [row])

        inbox = ConnectorInbox(store, desk, review, connectors, plan=plan, wake=deliverer.wake.set)
        return cls(connectors, outbox, inbox, deliverer, in_process=settings.outbox_in_process)

    def start(self) -> None:
        if not self.connectors.on or not self.in_process:
            return
        self._thread = threading.Thread(
            target=self.deliverer.run_forever, args=(self._stop,), name="outbox-delivery", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Let the pass in flight finish (its items are settled), then close the vendor clients."""
        self._stop.set()
        self.deliverer.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # still waiting on a vendor: its claims expire and are retried elsewhere
                log.warning("outbox delivery still busy after %.0f s; its items will be retried", timeout)
        self.deliverer.close()
