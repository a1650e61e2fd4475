"""The HTTP service: REST API, web console and metrics around the triage engine (run by `triage serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from agents.app import Engine, NodeWatch, build_engine, watch_node
from agents.connectors.service import ConnectorService
from agents.models.live import LiveService, SwapStatus
from agents.models.stored_memory import MemoryStatus
from agents.settings import Settings
from agents.store.outcomes import agreement_by_field
from agents.store.records import FeedbackIn, FeedbackRecord, Status, TicketBatch, TicketPage, TicketPatch, TicketRecord
from agents.store.review import Review
from agents.store.tickets import IdempotencyConflict, InvalidChange, Store, TicketBusy, TicketNotFound
from agents.types import Ticket, TriageResult
from agents.web.access_log import redact_access_log
from agents.web.ask import add_ask_routes
from agents.web.auth import Gate, KeyRing, NewApiKey, Principal, Scope
from agents.web.connectors import add_connector_routes
from agents.web.console import console_router
from agents.web.desk import Desk
from agents.web.errors import ApiError, BodyLimit, install_error_handlers
from agents.web.gating import build_gate
from agents.web.metrics import CONTENT_TYPE, HttpMetrics, ServiceMetrics
from agents.workers.queues import TicketQueue

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from agents.answers.answer import Answerer
    from agents.service import TriageService

log = logging.getLogger("triage.server")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
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


class TriageBatchOut(_Out):
    results: list[TriageResult]


class TicketsOut(_Out):
    tickets: list[TicketRecord]


class FeedbackOut(_Out):
    feedback: list[FeedbackRecord]


class ModelsOut(_Out):
    """The model version this replica serves (and what the pointer names) and how current its ticket memory is."""

    version: SwapStatus
    trained_tickets: int  # the version's own tickets in the memory
    memory: MemoryStatus | None  # the stored tickets in the memory; None: TRIAGE_MEMORY_POLL=0


@dataclass
class Core:
    """Everything the routes use, built once in the lifespan."""

    settings: Settings
    store: Store
    live: LiveService
    desk: Desk
    review: Review
    gate: Gate
    keys: KeyRing
    metrics: ServiceMetrics
    answerer: Answerer
    connectors: ConnectorService
    started: float
    node: NodeWatch | None = None
    recovered: int = 0

    @property
    def service(self) -> TriageService:
        """The current model version's service (a promoted version replaces it while the server runs)."""
        return self.live.current

    def models_out(self) -> ModelsOut:
        memory = self.node.memory if self.node is not None else None
        return ModelsOut(
            version=self.live.status(),
            trained_tickets=len(self.service.memory),
            memory=memory.status() if memory is not None else None,
        )


class ModelCollector:
    """/metrics lines for the served model version and the ticket memory's freshness (read at each scrape)."""

    def __init__(self) -> None:
        self.state: Core | None = None

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self.state is None:
            return
        out = self.state.models_out()
        info = GaugeMetricFamily("triage_model_version_info", "the model version served", labels=["version"])
        info.add_metric([out.version.loaded or "none"], 1.0)
        yield info
        yield CounterMetricFamily("triage_model_swaps", "model versions swapped in since start", out.version.swaps)
        failed = GaugeMetricFamily("triage_model_load_failed", "1: the pointer names a version that failed to load")
        failed.add_metric([], 1.0 if out.version.failed else 0.0)
        yield failed
        if out.memory is not None:
            yield GaugeMetricFamily("triage_memory_stored_tickets", "stored tickets in the memory", out.memory.stored)
            if out.memory.refreshed_at is not None:
                age = (datetime.now(UTC) - out.memory.refreshed_at).total_seconds()
                yield GaugeMetricFamily("triage_memory_age_seconds", "seconds since the memory's last look", age)


def core(request: Request) -> Core:
    return request.app.state.core  # type: ignore[no-any-return]


def need(scope: Scope):  # type: ignore[no-untyped-def]
    async def check(request: Request) -> Principal:
        host = request.client.host if request.client else "-"
        return core(request).gate.check(request.headers, scope, host)

    return Depends(check)


def body_hash(model: BaseModel) -> str:
    return hashlib.sha256(json.dumps(model.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def idempotency(value: str | None) -> str | None:
    if value is not None and not (0 < len(value) <= 200 and value.isprintable()):
        raise ApiError(422, "invalid_idempotency_key", "Idempotency-Key must be 1-200 printable characters")
    return value


def check_batch(size: int, limit: int) -> None:
    if size == 0:
        raise ApiError(422, "empty_batch", "the batch holds no tickets")
    if size > limit:
        raise ApiError(422, "batch_too_large", f"a batch holds at most {limit} tickets, got {size}")


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
    add_api_routes(app)
    add_ask_routes(app, need)
    add_connector_routes(app, need)
    return app


REPLAY: dict[str, Any] = {"description": "a replay of an earlier request with the same Idempotency-Key"}
QUEUED: dict[str, Any] = {"description": "stored as received and queued for a worker (TRIAGE_BROKER_URL set)"}
IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
TriageKey = Annotated[Principal, need("triage")]


def add_api_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Ready or not for anyone (load balancers send no key); the details only for a key with the read scope."""
        c = core(request)
        try:
            counts = await asyncio.to_thread(c.store.count_by_status)
        except Exception as exc:  # the database went away
            return JSONResponse({"code": "not_ready", "message": f"ticket store: {type(exc).__name__}"}, 503)
        who = await asyncio.to_thread(c.gate.peek, request.headers)
        if who is None or not who.allows("read"):
            return JSONResponse({"status": "ready"})
        searcher = getattr(c.service, "searcher", None)
        return JSONResponse(
            {
                "status": "ready",
                "model_version": c.live.version,
                "embedder": getattr(c.service.embedder, "name", "?"),
                "index_chunks": len(searcher.index) if searcher is not None else 0,
                "models": {k: v.threshold for k, v in c.service.models.thresholds.items()},
                "tickets": counts,
                "recovered_at_start": c.recovered,
                "auth_dev_mode": c.settings.auth_dev_mode,
            }
        )

    @app.get("/v1/models", tags=["ops"], dependencies=[need("read")])
    async def models(request: Request) -> ModelsOut:
        """The model version served here, the last look at the pointer (a version that failed to load is named,
        with why) and the ticket memory: stored tickets in it, the newest change taken, the last look's time."""
        return core(request).models_out()

    @app.get("/metrics", tags=["ops"], response_class=Response, dependencies=[need("read")])
    async def metrics(request: Request) -> Response:
        return Response(core(request).metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/v1/triage", tags=["triage"])
    async def triage(request: Request, ticket: Ticket, _: TriageKey) -> TriageResult:
        return (await core(request).desk.triage([ticket]))[0]

    @app.post("/v1/triage/batch", tags=["triage"])
    async def triage_batch(request: Request, batch: TicketBatch, _: TriageKey) -> TriageBatchOut:
        check_batch(len(batch.tickets), core(request).settings.max_batch)
        return TriageBatchOut(results=await core(request).desk.triage(batch.tickets))

    @app.post(
        "/v1/tickets",
        tags=["tickets"],
        status_code=201,
        responses={200: REPLAY | {"model": TicketRecord}, 202: QUEUED | {"model": TicketRecord}},
    )
    async def create_ticket(
        request: Request, response: Response, ticket: Ticket, who: TriageKey, key: IdemHeader = None
    ) -> TicketRecord:
        records, replay = await core(request).desk.submit(
            [ticket], idempotency(key), body_hash(ticket), who.key_id, batch=False
        )
        if replay:
            response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
        elif core(request).desk.queue is not None:
            response.status_code = 202
        return records[0]

    @app.post(
        "/v1/tickets/batch",
        tags=["tickets"],
        status_code=201,
        responses={200: REPLAY | {"model": TicketsOut}, 202: QUEUED | {"model": TicketsOut}},
    )
    async def create_tickets(
        request: Request, response: Response, batch: TicketBatch, who: TriageKey, key: IdemHeader = None
    ) -> TicketsOut:
        check_batch(len(batch.tickets), core(request).settings.max_batch)
        records, replay = await core(request).desk.submit(
            batch.tickets, idempotency(key), body_hash(batch), who.key_id, batch=True
        )
        if replay:
            response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
        elif core(request).desk.queue is not None:
            response.status_code = 202
        return TicketsOut(tickets=records)

    @app.get("/v1/tickets", tags=["tickets"], dependencies=[need("read")])
    async def list_tickets(
        request: Request,
        status: Status | None = None,
        team: Annotated[str | None, Query(max_length=64)] = None,
        priority: Annotated[str | None, Query(max_length=8)] = None,
        needs_human: bool | None = None,
        reviewed: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> TicketPage:
        filters = {
            "status": status,
            "team": team,
            "priority": priority,
            "needs_human": needs_human,
            "reviewed": reviewed,
        }
        items, total = await asyncio.to_thread(core(request).store.list, filters, limit, offset)
        following = offset + len(items)
        return TicketPage(
            items=items, total=total, limit=limit, offset=offset, next_offset=following if following < total else None
        )

    @app.get("/v1/tickets/{ticket_id}", tags=["tickets"], dependencies=[need("read")])
    async def get_ticket(request: Request, ticket_id: str) -> TicketRecord:
        return await asyncio.to_thread(core(request).store.get, ticket_id)

    @app.patch("/v1/tickets/{ticket_id}", tags=["tickets"])
    async def patch_ticket(request: Request, ticket_id: str, patch: TicketPatch, who: TriageKey) -> TicketRecord:
        return await asyncio.to_thread(core(request).review.update, ticket_id, patch, who.name)

    @app.post("/v1/feedback", tags=["feedback"], status_code=201)
    async def feedback(request: Request, item: FeedbackIn, who: TriageKey) -> FeedbackOut:
        return FeedbackOut(feedback=await asyncio.to_thread(core(request).review.feedback, item, who.name))

    @app.get("/v1/feedback", tags=["feedback"], dependencies=[need("read")])
    async def list_feedback(
        request: Request,
        ticket_id: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> FeedbackOut:
        return FeedbackOut(feedback=await asyncio.to_thread(core(request).review.list_feedback, ticket_id, limit))

    @app.get("/v1/audit", tags=["admin"], dependencies=[need("admin")])
    async def audit(
        request: Request,
        ticket_id: Annotated[str | None, Query(max_length=40)] = None,
        kind: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(core(request).store.audit_log, ticket_id, kind, limit)

    @app.post("/v1/keys", tags=["admin"], status_code=201, dependencies=[need("admin")])
    async def create_key(request: Request, new: NewApiKey) -> dict[str, Any]:
        info, secret = await asyncio.to_thread(core(request).keys.create, new.name, new.scopes)
        return {"key": secret, "info": info.model_dump(mode="json"), "note": "shown once; only its hash is stored"}

    @app.get("/v1/keys", tags=["admin"], dependencies=[need("admin")])
    async def list_keys(request: Request) -> list[dict[str, Any]]:
        return [k.model_dump(mode="json") for k in await asyncio.to_thread(core(request).keys.list)]

    @app.delete("/v1/keys/{key_id}", tags=["admin"], dependencies=[need("admin")])
    async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
        info = await asyncio.to_thread(core(request).keys.revoke, key_id)
        if info is None:
            raise ApiError(404, "key_not_found", f"no API key with id {key_id!r}")
        return info.model_dump(mode="json")
