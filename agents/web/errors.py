"""HTTP errors as JSON with a stable `code` and a `message`, and the ASGI guard that refuses oversized bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.errors import BackendUnavailable, InvalidTicket, ModelNotTrained, TriageError

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER = 5  # seconds a client is told to wait when the database server cannot be reached
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error the API answers on purpose; `code` is stable, `message` is for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status, self.code, self.message, self.headers, self.detail = status, code, message, headers, detail
        super().__init__(f"{status} {code}: {message}")


def error_body(code: str, message: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return body


def _json(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _json(400, "invalid_json", "the body is not valid JSON")
    detail = [
        {
            "loc": [str(p) for p in e.get("loc", ())][:8],
            "msg": str(e.get("msg", ""))[:300],
            "type": str(e.get("type", "")),
        }
        for e in errors[:20]
    ]
    return _json(
        422, "invalid_request", f"the request does not match the schema ({len(errors)} problem(s))", detail=detail
    )


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 400:
        code, message = "invalid_body", "the body could not be read (is it UTF-8 JSON?)"
    return _json(exc.status_code, code, message, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI, mapping: dict[type[TriageError], tuple[int, str]]) -> None:
    """Our errors by type -> (status, code); anything unexpected is a logged 500 without internals."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _json(exc.status, exc.code, exc.message, exc.headers, exc.detail)

    async def triage_error(_: Request, exc: Exception) -> JSONResponse:
        for kind, (status, code) in mapping.items():
            if isinstance(exc, kind):
                return _json(status, code, str(exc))
        log.exception("unmapped service error", exc_info=exc)
        return _json(500, "internal_error", "the service failed; the error is logged")

    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None)
        if type(orig).__module__ == "sqlite3":  # a local file: no server outage to wait out, a logged 500 as before
            log.error("unhandled error", exc_info=exc)
            return _json(500, "internal_error", "the service failed; the error is logged")
        log.warning("database unreachable, answering 503: %s", str(orig or exc).splitlines()[0][:300])
        return _json(
            503,
            "database_unavailable",
            "the database cannot be reached; retry later",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return _json(500, "internal_error", "the service failed; the error is logged")

    mapping = {
        InvalidTicket: (422, "invalid_ticket"),
        ModelNotTrained: (503, "not_ready"),
        BackendUnavailable: (503, "backend_unavailable"),
        **mapping,
    }
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(TriageError, triage_error)
    app.add_exception_handler(OperationalError, database_down)  # a database server down or restarting
    app.add_exception_handler(Exception, unexpected)


class BodyLimit:
    """Reads the body up front and answers 413 past `max_bytes` (a lying Content-Length cannot get around it)."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_factor: int = 16) -> None:
        self.app, self.max_bytes, self.drain = app, max_bytes, max_bytes * drain_factor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = bool(message.get("more_body"))
            if size > self.max_bytes:
                while more and size <= self.drain:  # read what the client is still sending, so it sees our answer
                    message = await receive()
                    size += len(message.get("body", b""))
                    more = message["type"] == "http.request" and bool(message.get("more_body"))
                await self._too_large(send)
                return
            chunks.append(message.get("body", b""))
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        payload = json.dumps(error_body("body_too_large", f"the request body is over {self.max_bytes} bytes")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
