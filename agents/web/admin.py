"""The operations and admin routes: health, readiness, model version, metrics, the audit log and API keys."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from agents.web.auth import NewApiKey
from agents.web.core import ModelsOut, core, need
from agents.web.errors import ApiError
from agents.web.metrics import CONTENT_TYPE


def add_ops_routes(app: FastAPI) -> None:
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


def add_admin_routes(app: FastAPI) -> None:
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
