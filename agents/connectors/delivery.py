"""Deliver outbox items to the vendors: retries with jittered backoff, Retry-After honoured, no note posted twice."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from agents.connectors.base import Connector, ConnectorError, FieldMapping, VendorCall, WriteBack
from agents.connectors.outbox import Outbox, OutboxItem
from agents.connectors.writeback import plan_pending

log = logging.getLogger(__name__)
Outcome = Literal["delivered", "retry", "dead"]
RETRY_STATUSES = frozenset({401, 403, 408, 409, 425, 429, 500, 502, 503, 504})  # worth another try later
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try (TRIAGE_OUTBOX_*)."""

    max_attempts: int = 8
    backoff: float = 2.0
    backoff_max: float = 600.0
    concurrency: int = 4


@dataclass
class PassReport:
    """What one delivery pass did."""

    planned: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def claimed(self) -> int:
        return sum(self.outcomes.values())


class VendorRefused(Exception):
    """A vendor answer that is not 2xx, with what we need to decide and to show people."""

    def __init__(self, response: httpx.Response) -> None:
        self.status, self.text = response.status_code, response.text[:2000]
        self.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        super().__init__(f"{response.request.method} {response.request.url.path} -> {self.status}: {self.text}")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Deliverer:
    """Claims due items, sends them through each vendor's connector, and settles each one in the outbox."""

    def __init__(
        self,
        outbox: Outbox,
        connectors: Mapping[str, Connector],
        policy: DeliveryPolicy | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox, self.connectors = outbox, dict(connectors)
        self.policy = policy or DeliveryPolicy()
        self.rng = rng or random.Random()
        self.clients = {system: c.client(transport) for system, c in self.connectors.items()}
        self.paused_until: dict[str, datetime] = {}  # a vendor that said 429 or 503 rests, for all its items
        self.wake = threading.Event()

    @property
    def mappings(self) -> dict[str, FieldMapping]:
        return {system: c.mapping for system, c in self.connectors.items()}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def run_once(self, limit: int = 100) -> PassReport:
        """Plan what is unplanned, then deliver up to `limit` due items, `concurrency` at a time."""
        report = PassReport(planned=plan_pending(self.outbox, self.mappings))
        now = self.outbox.store.clock()
        paused = {s for s, until in self.paused_until.items() if until > now}
        items = self.outbox.claim(limit, skip_systems=paused)
        if not items:
            return report
        with ThreadPoolExecutor(max_workers=self.policy.concurrency) as pool:
            for outcome in pool.map(self.deliver, items):
                report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        return report

    def run_forever(self, stop: threading.Event, idle: float = 1.0) -> None:
        """Deliver until `stop` is set; between passes sleep until woken, the next item is due, or `idle`."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:  # the database went away, say: log, wait, try again; nothing is lost
                log.exception("outbox pass failed")
                report = PassReport()
            if report.claimed:
                continue
            self.wake.wait(timeout=idle)
            self.wake.clear()

    def deliver(self, item: OutboxItem) -> Outcome:
        connector = self.connectors.get(item.system)
        if connector is None:
            retry_at = self.outbox.store.clock() + timedelta(seconds=self.policy.backoff_max)
            self.outbox.settle(
                item.id, "pending", error=f"connector {item.system} is off", retry_at=retry_at, refund=True
            )
            return "retry"
        resting = self.paused_until.get(item.system)
        if resting is not None and resting > self.outbox.store.clock():  # a 429 earlier in this pass: wait with it
            self.outbox.settle(item.id, "pending", retry_at=resting, refund=True)
            return "retry"
        write = WriteBack.model_validate(item.payload)
        client = self.clients[item.system]
        try:
            calls = connector.calls(write)
            if item.attempts > 1 and connector.note_exists(client, write):  # an earlier attempt may have landed
                log.info("outbox %d: the note is already on %s ticket %s", item.id, item.system, item.external_id)
                calls = [c for c in calls if c.repeatable]
            for call in calls:
                self._send(client, call, item.key)
        except VendorRefused as refused:
            return self._refused(item, refused)
        except httpx.HTTPStatusError as exc:  # the note check was refused: the same rules as for a write
            return self._refused(item, VendorRefused(exc.response))
        except ConnectorError as exc:  # the write cannot be expressed (a mapping value the vendor cannot take)
            self.outbox.settle(item.id, "dead", error=str(exc))
            return "dead"
        except httpx.HTTPError as exc:  # timeout, refused connection, a dropped answer: may or may not have landed
            return self._retry(item, None, f"{type(exc).__name__}: {exc}", None)
        self.outbox.settle(item.id, "delivered")
        return "delivered"

    def _send(self, client: httpx.Client, call: VendorCall, key: str) -> None:
        response = client.request(
            call.method, call.path, json=call.json_body, params=call.params or None, headers={"Idempotency-Key": key}
        )
        if not response.is_success:
            raise VendorRefused(response)

    def _refused(self, item: OutboxItem, refused: VendorRefused) -> Outcome:
        if refused.status == 404:
            why = f"the ticket is not in {item.system} (deleted, or the id is wrong): {refused.text}"
            self.outbox.settle(item.id, "dead", http_status=404, error=why)
            return "dead"
        if refused.status not in RETRY_STATUSES and refused.status < 500:
            self.outbox.settle(item.id, "dead", http_status=refused.status, error=refused.text)
            return "dead"
        if refused.status in (429, 503) and refused.retry_after is not None:
            until = self.outbox.store.clock() + timedelta(seconds=refused.retry_after)
            self.paused_until[item.system] = max(until, self.paused_until.get(item.system, until))
        return self._retry(item, refused.status, refused.text, refused.retry_after)

    def _retry(self, item: OutboxItem, status: int | None, error: str, retry_after: float | None) -> Outcome:
        if item.attempts >= self.policy.max_attempts:
            self.outbox.settle(item.id, "dead", http_status=status, error=f"after {item.attempts} attempts: {error}")
            return "dead"
        delay = retry_after if retry_after is not None else self.backoff(item.attempts)
        retry_at = self.outbox.store.clock() + timedelta(seconds=delay)
        self.outbox.settle(item.id, "pending", http_status=status, error=error, retry_at=retry_at)
        return "retry"

    def backoff(self, attempts: int) -> float:
        """Exponential in the attempts made, capped, with jitter over its upper half (no thundering herd)."""
        ceiling = min(self.policy.backoff_max, self.policy.backoff * 2 ** max(attempts - 1, 0))
        return ceiling * self.rng.uniform(0.5, 1.0)
