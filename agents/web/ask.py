"""HTTP routes for answers: `POST /v1/ask` (API key, read scope) and `POST /v1/chat/slack` (Slack's signature)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from agents.answers.answer import AskResult
from agents.web.auth import rate_limited
from agents.web.errors import ApiError
from agents.web.slack import SlackRequestError, handle_slash_command, verify_signature

OPEN_TICKETS = 500  # recent open tickets handed to "who is handling ...?" questions
SLACK_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["command"],
                }
            }
        },
    }
}


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)


def add_ask_routes(app: FastAPI, need: Callable[[Any], Any]) -> None:
    """The answerer lives on `app.state.core.answerer` (built in the lifespan)."""

    def ask_with_tickets(core: Any, question: str) -> AskResult:
        tickets = core.store.open_tickets(OPEN_TICKETS)
        return core.answerer.ask(question, tickets=tickets)  # type: ignore[no-any-return]

    @app.post("/v1/ask", tags=["answers"], dependencies=[need("read")])
    async def ask(request: Request, item: AskIn) -> AskResult:
        return await asyncio.to_thread(ask_with_tickets, request.app.state.core, item.question)

    @app.post("/v1/chat/slack", tags=["answers"], openapi_extra=SLACK_FORM)
    async def slack(request: Request) -> dict[str, Any]:
        """A Slack slash command. With TRIAGE_SLACK_SIGNING_SECRET set, Slack's v0 signature is the credential;
        without it, the caller needs an API key with the read scope."""
        core = request.app.state.core
        secret = core.settings.slack_signing_secret
        client = request.client.host if request.client else "-"
        body = await request.body()
        if not secret:
            core.gate.check(request.headers, "read", client)
        else:  # the signature first: only Slack's own requests may spend from the shared Slack bucket
            try:
                verify_signature(secret, request.headers, body)
            except SlackRequestError as exc:
                raise core.gate.refuse(client, ApiError(exc.status, "invalid_signature", exc.reason)) from None
            if wait := core.gate.limiter.take("slack"):
                raise rate_limited(wait, "too many Slack requests")
        try:  # verified above, so no secret here
            return await asyncio.to_thread(
                handle_slash_command, body, request.headers, lambda q: ask_with_tickets(core, q)
            )
        except SlackRequestError as exc:
            code = {413: "body_too_large"}.get(exc.status, "invalid_slash_command")
            raise ApiError(exc.status, code, exc.reason) from None
