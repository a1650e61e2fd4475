"""The HTTP service: REST API, web console and metrics around the triage engine (run by `triage serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from agents.app import Engine, build_engine, watch_node
from agents.connectors.service import ConnectorService
from agents.models.live import LiveService
from agents.settings import Settings
from agents.store.outcomes import agreement_by_field
from agents.store.review import Review
from agents.store.tickets import IdempotencyConflict, InvalidChange, Store, TicketBusy, TicketNotFound
from agents.web.access_log import redact_access_log
from agents.web.admin import add_admin_routes, add_ops_routes
from agents.web.ask import add_ask_routes
from agents.web.auth import KeyRing
from agents.web.connectors import add_connector_routes
from agents.web.console import console_router
from agents.web.core import ApiOut, Core, ModelCollector, need
from agents.web.desk import Desk
from agents.web.errors import BodyLimit, install_error_handlers
from agents.web.gating import build_gate
from agents.web.metrics import HttpMetrics, ServiceMetrics
from agents.web.tickets import add_ticket_routes
from agents.workers.queues import TicketQueue

log = logging.getLogger("triage.server")


class ErrorOut(ApiOut):
    """Every error: a stable `code` to branch on, a `message` for people, and schema problems in `detail`."""

    code: str
    message: str
    detail: list[dict[str, Any]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in {
        400: "malformed JSON or a body that is not UTF-8",
        401: "no API key, or an unknown or revoked one",
        403: "the key lacks the scope this route needs",
        404: "no such ticket, key or route",
        409: "idempotency key reused with another body, or the ticket is still being triaged",
        413: "the request body is over the size limit",
        422: "the request does not match the schema, or names a label outside the taxonomy",
        429: "rate limit of the key reached; see Retry-After",
        503: "the shared rate limiter (Redis) or the task queue cannot be reached; see Retry-After",
    }.items()
}


async def sweep(desk: Desk, settings: Settings) -> None:
    """Every TRIAGE_SWEEP_INTERVAL seconds, triage tickets left `received` longer than TRIAGE_SWEEP_AFTER (another
    replica died mid-request, or this one's triage failed): the service recovers without a retry or a restart."""
    after = timedelta(seconds=settings.sweep_after)
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            if saved := await asyncio.to_thread(desk.recover, None, after):
                log.warning("swept %d ticket(s) left received for over %.0f s", saved, settings.sweep_after)
        except Exception:  # the database is away, say: the next sweep tries again
            log.exception("sweep of tickets left received failed")


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The app; the store, models and index are loaded (or built) in the lifespan, never at import.
    `engine` (triage service, answerer and their circuit breaker) may be passed in ready-made."""
    settings = settings or Settings()
    metrics = ServiceMetrics()
    collector = ModelCollector()
    metrics.registry.register(collector)
    redact_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.embedder == "minilm" and engine is None:
            import torch  # the server batches requests itself; torch's own threads only contend with it

            torch.set_num_threads(settings.torch_threads)
        store = await asyncio.to_thread(Store.open, settings.data_dir, settings.database_url)
        parts = engine or await asyncio.to_thread(build_engine, settings)
        breaker = parts.breaker
        metrics.breaker_state = lambda: str(breaker.state)
        metrics.ticket_counts = store.count_by_status
        metrics.agreement = lambda: agreement_by_field(store, datetime.now(UTC) - timedelta(days=7))
        live = parts.live or LiveService(parts.service, None)  # a ready-made engine: no version, no hot swap
        desk = Desk(store, live, metrics, queue=TicketQueue.from_settings(settings))
        if isinstance(desk.queue, TicketQueue):
            metrics.queue_depths = desk.queue.depths
        keys = KeyRing(store)
        gate = build_gate(settings, keys)
        if settings.auth_dev_mode:
            log.warning("=" * 72)
            log.warning("AUTH DEV MODE: every request is allowed WITHOUT an API key (TRIAGE_AUTH_DEV_MODE=true).")
            log.warning("Never expose this server beyond your own machine.")
            log.warning("=" * 72)
        elif not keys.count_active():
            log.warning("no active API key: every API call will get 401; `triage serve` creates one on first start")
        review = Review(store, parts.service.kb)
        connectors = ConnectorService.build(settings, store, desk, review, parts.service.modes)
        metrics.outbox_counts = connectors.outbox.counts
        state = Core(settings, store, live, desk, review, gate, keys, metrics, parts.answerer, connectors, time.time())
        if parts.live is not None:  # polls the model pointer and the stored tickets in background threads
            state.node = watch_node(settings, parts.live, parts.stored, store)
        collector.state = state
        state.recovered = await asyncio.to_thread(desk.recover)
        if state.recovered:
            log.warning("recovered %d ticket(s) left `received` by an earlier crash", state.recovered)
        await desk.batcher.start()
        connectors.start()
        sweeper = asyncio.create_task(sweep(desk, settings)) if desk.queue is None else None
        app.state.core = state
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if state.node is not None:
                await asyncio.to_thread(state.node.stop)
            await asyncio.to_thread(connectors.stop)
            await desk.batcher.stop()
            if isinstance(desk.queue, TicketQueue):
                desk.queue.close()
            store.close()

    app = FastAPI(
        responses=ERRORS,
        title="Kestrel triage",
        version="0.1.0",
        lifespan=lifespan,
        description="AI triage for IT helpdesks: classify, prioritise, route and summarise tickets.",
    )
    install_error_handlers(
        app,
        {
            TicketNotFound: (404, "ticket_not_found"),
            IdempotencyConflict: (409, "idempotency_conflict"),
            TicketBusy: (409, "ticket_busy"),
            InvalidChange: (422, "invalid_change"),
        },
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.include_router(console_router(need, dev_mode=settings.auth_dev_mode, ask=True))
    add_ops_routes(app)
    add_ticket_routes(app)
    add_admin_routes(app)
    add_ask_routes(app, need)
    add_connector_routes(app, need)
    return app
