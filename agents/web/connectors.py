"""HTTP routes of the connectors: signed vendor events in, and the outbox to read and replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict

from agents.connectors.base import SYSTEMS, ConnectorError
from agents.connectors.inbox import EventDone
from agents.connectors.outbox import OutboxItem, OutboxNotFound
from agents.connectors.service import ConnectorService
from agents.web.errors import ApiError

EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "the vendor's own event"}}},
    }
}


class SystemStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str
    on: bool
    detail: str
    outbox: dict[str, int]


class OutboxPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[OutboxItem]


def parts(request: Request) -> ConnectorService:
    return request.app.state.core.connectors  # type: ignore[no-any-return]


async def read_body(request: Request, limit: int, system: str) -> bytes:
    """The raw body (the signature covers its exact bytes), refused past `limit` before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"{system}: the event has {declared} bytes, over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"{system}: the event is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def add_connector_routes(app: FastAPI, need: Callable[[Any], Any]) -> None:
    @app.post("/v1/connectors/{system}/events", tags=["connectors"], openapi_extra=EVENT_BODY, status_code=202)
    async def vendor_event(request: Request, system: str) -> EventDone:
        """A helpdesk's webhook. The vendor's signature (or ServiceNow's token) is the credential, checked before
        anything else; no API key. A redelivered event answers `duplicate: true` and changes nothing."""
        core = request.app.state.core
        service: ConnectorService = core.connectors
        client = request.client.host if request.client else "-"
        body = await read_body(request, core.settings.connector_max_body_bytes, system)
        try:
            return await service.inbox.receive(system, request.headers, body, time.time())
        except ConnectorError as exc:
            error = ApiError(exc.status, exc.code, str(exc))
            raise (core.gate.refuse(client, error) if exc.status == 401 else error) from None

    @app.get("/v1/connectors", tags=["connectors"], dependencies=[need("read")])
    async def connector_status(request: Request) -> list[SystemStatus]:
        service = parts(request)
        counts = await asyncio.to_thread(service.outbox.counts)
        return [
            SystemStatus(
                system=system,
                on=system in service.connectors.on,
                detail=service.connectors.off.get(system, "on"),
                outbox={status: n for (s, status), n in counts.items() if s == system},
            )
            for system in SYSTEMS
        ]

    @app.get("/v1/connectors/outbox", tags=["connectors"], dependencies=[need("read")])
    async def outbox(
        request: Request,
        status: Literal["pending", "delivered", "dead", "skipped"] | None = None,
        system: Literal["zendesk", "jira", "servicenow", "zammad"] | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> OutboxPage:
        items = await asyncio.to_thread(parts(request).outbox.list, status, system, limit, offset)
        return OutboxPage(items=items)

    @app.post("/v1/connectors/outbox/{item_id}/replay", tags=["connectors"], dependencies=[need("admin")])
    async def replay(request: Request, item_id: int) -> OutboxItem:
        """A dead item goes back to pending with a fresh count of attempts (after the vendor side is fixed)."""
        service = parts(request)
        try:
            item = (await asyncio.to_thread(service.outbox.replay, [item_id]))[0]
        except OutboxNotFound as exc:
            raise ApiError(404, "outbox_item_not_found", str(exc)) from None
        service.deliverer.wake.set()
        return item
