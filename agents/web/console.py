"""The web console: one server-rendered page, two live fragments (queue, needs-human) and a small script."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from agents.store.records import FIELDS, Status
from agents.store.review import allowed_labels

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def console_router(need: Callable[[Any], Any], *, dev_mode: bool, ask: bool = False) -> APIRouter:
    """Routes of the console; `need(scope)` is the API's auth dependency, so fragments obey the same keys."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
    router = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, context)
        response.headers.update(SECURITY_HEADERS)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        return render(request, "console.html", dev_mode=dev_mode, ask=ask)

    @router.get("/console.js")
    async def script() -> FileResponse:
        return FileResponse(
            HERE / "static" / "console.js",
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/console/queue", response_class=HTMLResponse, dependencies=[need("read")])
    async def queue(request: Request, limit: int = 25, status: Status | None = None) -> HTMLResponse:
        store = request.app.state.core.store  # ?status=dead: the dead letter of queued triage (agents/workers/)
        items, total = await asyncio.to_thread(store.list, {"status": status}, max(1, min(limit, 100)), 0)
        return render(request, "_queue.html", items=items, total=total)

    @router.get("/console/digest", response_class=HTMLResponse, dependencies=[need("read")])
    async def digest(request: Request) -> Response:
        """The newest saved digest (shown in a sandboxed frame); 204 until the digest job has written one."""
        from agents.digest.job import latest_digest_html

        html = await asyncio.to_thread(latest_digest_html, request.app.state.core.settings.data_dir)
        if html is None:
            return Response(status_code=204)
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    @router.get("/console/shadow", response_class=HTMLResponse, dependencies=[need("read")])
    async def shadow(request: Request) -> HTMLResponse:
        """Agreement of the last 7 days per field, and the mode each field's figures support."""
        from agents.shadow.agreement import build_report
        from agents.store.outcomes import read_outcomes

        c, now = request.app.state.core, datetime.now(UTC)
        outcomes = await asyncio.to_thread(read_outcomes, c.store, now - timedelta(days=7))
        report = build_report(outcomes, target=c.settings.precision_target, until=now, since=now - timedelta(days=7))
        return render(request, "_shadow.html", report=report, modes=c.service.modes)

    @router.get("/console/outbox", response_class=HTMLResponse, dependencies=[need("read")])
    async def outbox(request: Request) -> HTMLResponse:
        """Each connector's write-backs by state, and the dead ones with the vendor's last answer."""
        service = request.app.state.core.connectors
        counts = await asyncio.to_thread(service.outbox.counts)
        dead = await asyncio.to_thread(service.outbox.list, "dead", None, 20)
        systems = {s: {st: n for (sy, st), n in sorted(counts.items()) if sy == s} for s in service.connectors.on}
        return render(request, "_outbox.html", systems=systems, dead=dead)

    @router.get("/console/review", response_class=HTMLResponse, dependencies=[need("read")])
    async def review(request: Request, limit: int = 20) -> HTMLResponse:
        c = request.app.state.core
        filters = {"needs_human": True, "reviewed": False}
        items, total = await asyncio.to_thread(c.store.list, filters, max(1, min(limit, 100)), 0)
        return render(
            request,
            "_review.html",
            items=[i for i in items if i.result],
            total=total,
            fields=FIELDS,
            labels=allowed_labels(c.service.kb),
        )

    return router
