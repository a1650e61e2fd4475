"""The framework's ceiling: a plain FastAPI app whose one POST route validates a ticket body and answers small JSON.

Served the way `triage serve` serves the service (`uvicorn.run(..., factory=True, host, port)` with uvicorn's
defaults for workers, loop, HTTP implementation and access log), so a load test on it measures FastAPI, uvicorn
and the loopback on this machine without any triage work:

    .venv/bin/python scripts/echo_app.py --port 8099
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field


class EchoTicket(BaseModel):
    """The ticket body's shape as the load test sends it (title and body), with the service's size bounds."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=500)
    body: str = Field(default="", max_length=20_000)
    requester: str | None = Field(default=None, max_length=256)
    channel: str = Field(default="api", max_length=32)
    metadata: dict[str, Any] = {}


class EchoOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chars: int
    words: int


def create_app() -> FastAPI:
    app = FastAPI(title="echo")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/triage")
    async def echo(ticket: EchoTicket) -> EchoOut:
        text = f"{ticket.title}\n{ticket.body}"
        return EchoOut(chars=len(text), words=len(text.split()))

    return app


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # so that uvicorn imports scripts.echo_app
    uvicorn.run("scripts.echo_app:create_app", factory=True, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
