"""The intake desk: commit a ticket as `received`, triage it (or queue it), commit the result; recover crashes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from agents.store.records import TicketRecord
from agents.store.rows import llm_audit
from agents.store.tickets import Store, as_utc
from agents.types import Ticket, TriageResult
from agents.web.batching import MicroBatcher
from agents.web.errors import ApiError
from agents.web.metrics import ServiceMetrics
from agents.workers.queues import QueueUnavailable

log = logging.getLogger(__name__)
CHUNK = 32
MAX_ATTEMPTS = 3


class Triager(Protocol):
    def triage_batch(self, tickets: list[Ticket]) -> list[TriageResult]: ...


class Enqueuer(Protocol):
    """Where stored tickets go when a worker triages them (agents/workers/queues.py TicketQueue)."""

    def enqueue(self, ticket_ids: Sequence[str]) -> int: ...


def as_ticket(record: TicketRecord) -> Ticket:
    """The stored ticket as the engine sees it; its id is the store's id."""
    return Ticket(
        id=record.id,
        title=record.title,
        body=record.body,
        requester=record.requester,
        created_at=record.created_at,
        channel=record.channel,
        metadata=record.metadata,
        intake=record.intake,
    )


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Desk:
    """Every triage goes through here, so every result is counted and every stored ticket is triaged once."""

    def __init__(
        self,
        store: Store,
        service: Triager,
        metrics: ServiceMetrics,
        *,
        chunk: int = CHUNK,
        max_batch_wait: float = 0.0,
        workers: int = 1,
        queue: Enqueuer | None = None,
    ) -> None:
        self.store, self.service, self.metrics, self.chunk = store, service, metrics, chunk
        self.queue = queue  # with a broker (TRIAGE_BROKER_URL), stored tickets are queued for workers instead
        self.batcher: MicroBatcher[Ticket, TriageResult] = MicroBatcher(
            self.triage_now, max_batch=chunk, max_wait=max_batch_wait, workers=workers
        )

    def triage_now(self, tickets: list[Ticket]) -> list[TriageResult]:
        """Blocking: one batch through the engine (call from a worker thread)."""
        results = self.service.triage_batch(tickets)
        self.metrics.observe_results(results)
        return results

    async def triage(self, tickets: list[Ticket], *, stored: bool = False) -> list[TriageResult]:
        """A single ticket joins the shared micro-batch, a list runs chunk by chunk. LLM calls of stateless
        requests are audited here; those of stored tickets go in with their result."""
        if len(tickets) == 1:
            out = [await self.batcher.submit(tickets[0])]
        else:
            out = []
            for part in chunks(tickets, self.chunk):
                out.extend(await self.batcher.run(self.triage_now, list(part)))
        calls = [] if stored else [e for r in out for e in llm_audit(r, None)]
        if calls:
            await asyncio.to_thread(self.store.audit, calls)
        return out

    async def submit(
        self, tickets: list[Ticket], idempotency_key: str | None, body_hash: str | None, scope: str, batch: bool
    ) -> tuple[list[TicketRecord], bool]:
        """Store (committed), then triage and store each chunk's results, or with a queue send the ids to the
        workers (the records stay `received`); returns the records and whether the request was a replay of an
        idempotency key."""
        records, replay = await asyncio.to_thread(
            self.store.create, tickets, idempotency_key, body_hash, scope=scope, batch=batch
        )
        pending = [r for r in records if r.status == "received"]
        if replay and pending:  # the first attempt died mid-way: finish its work now
            log.info("idempotent replay finds %d ticket(s) still received", len(pending))
        if self.queue is not None:
            if pending:
                await asyncio.to_thread(self.enqueue, [r.id for r in pending])
            return records, replay
        for part in chunks(pending, self.chunk):
            await self._triage_stored(list(part))
        if not pending:
            return records, replay
        return await asyncio.to_thread(self._reload, [r.id for r in records]), replay

    async def _triage_stored(self, records: list[TicketRecord]) -> None:
        tickets = [as_ticket(r) for r in records]
        try:
            results = await self.triage(tickets, stored=True)
        except Exception as exc:
            log.exception("triage failed for %d stored ticket(s)", len(tickets))
            await asyncio.to_thread(
                self.store.mark_failed, [t.id for t in tickets if t.id], f"triage failed: {type(exc).__name__}"
            )
            return
        await asyncio.to_thread(self.store.save_results, {r.id: res for r, res in zip(records, results, strict=True)})

    def _reload(self, ids: list[str]) -> list[TicketRecord]:
        return [self.store.get(i) for i in ids]

    def enqueue(self, ticket_ids: list[str]) -> None:
        """Blocking: queue stored tickets; a broker that cannot take them is a 503 (the tickets stay `received`: a
        retry with the same Idempotency-Key queues them, and so does the next start of a replica)."""
        assert self.queue is not None
        try:
            self.queue.enqueue(ticket_ids)
        except QueueUnavailable as exc:
            raise ApiError(
                503,
                "queue_unavailable",
                f"{len(ticket_ids)} ticket(s) stored as received but not queued: {exc}; retry with the same "
                "Idempotency-Key",
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc

    def requeue_received(self, older_than: timedelta | None = None) -> int:
        """Blocking: send every ticket still `received` (untouched for `older_than`, when given) to the queue again
        (a task per ticket is idempotent, so one already queued costs a no-op); returns how many, 0 when the broker
        cannot be reached (logged)."""
        assert self.queue is not None
        ids: list[str] = []
        seen = 0
        cutoff = self.store.clock() - older_than if older_than is not None else None
        while page := self.store.list({"status": "received"}, 1000, seen)[0]:
            seen += len(page)
            ids.extend(r.id for r in page if cutoff is None or as_utc(r.updated_at) <= cutoff)
        if not ids:
            return 0
        try:
            self.queue.enqueue(ids)
        except QueueUnavailable as exc:
            log.warning("%d ticket(s) left received are not queued again: %s", len(ids), exc)
            return 0
        return len(ids)

    def recover(self, progress: Callable[[int], None] | None = None, older_than: timedelta | None = None) -> int:
        """Blocking: triage every ticket a crash left `received` (with a queue: queue them again); returns how many
        were saved (queued). At start-up every such ticket; the running sweep passes `older_than`, and takes only
        tickets untouched that long (a replica killed mid-request leaves them to the others)."""
        if self.queue is not None:
            return self.requeue_received(older_than)
        saved = 0
        while batch := self.store.claim_received(self.chunk, MAX_ATTEMPTS, older_than=older_than):
            try:
                results = self.triage_now([as_ticket(r) for r in batch])
            except Exception as exc:
                log.exception("recovery: triage failed for %d ticket(s)", len(batch))
                self.store.mark_failed([r.id for r in batch], f"triage failed: {type(exc).__name__}")
                continue
            saved += self.store.save_results({r.id: res for r, res in zip(batch, results, strict=True)})
            if progress:
                progress(saved)
        return saved
