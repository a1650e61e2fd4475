"""The triage, ticket and feedback routes of the API (`/v1/triage`, `/v1/tickets`, `/v1/feedback`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request, Response
from pydantic import BaseModel

from agents.store.records import FeedbackIn, FeedbackRecord, Status, TicketBatch, TicketPage, TicketPatch, TicketRecord
from agents.types import Ticket, TriageResult
from agents.web.auth import Principal
from agents.web.core import ApiOut, core, need
from agents.web.errors import ApiError


class TriageBatchOut(ApiOut):
    results: list[TriageResult]


class TicketsOut(ApiOut):
    tickets: list[TicketRecord]


class FeedbackOut(ApiOut):
    feedback: list[FeedbackRecord]


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


REPLAY: dict[str, Any] = {"description": "a replay of an earlier request with the same Idempotency-Key"}
QUEUED: dict[str, Any] = {"description": "stored as received and queued for a worker (TRIAGE_BROKER_URL set)"}
IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
TriageKey = Annotated[Principal, need("triage")]


async def submit(
    request: Request,
    response: Response,
    tickets: list[Ticket],
    key: str | None,
    digest: str,
    who: Principal,
    *,
    batch: bool,
) -> list[TicketRecord]:
    """Store and triage (or queue) the tickets: 201 when new, 200 with Idempotent-Replayed for a replay of the same
    Idempotency-Key and body, 202 when a worker will triage them."""
    desk = core(request).desk
    records, replay = await desk.submit(tickets, idempotency(key), digest, who.key_id, batch=batch)
    if replay:
        response.status_code, response.headers["Idempotent-Replayed"] = 200, "true"
    elif desk.queue is not None:
        response.status_code = 202
    return records


def add_ticket_routes(app: FastAPI) -> None:
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
        records = await submit(request, response, [ticket], key, body_hash(ticket), who, batch=False)
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
        records = await submit(request, response, batch.tickets, key, body_hash(batch), who, batch=True)
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
