"""Slack slash commands: parse the form payload, check the v0 request signature, render an AskResult as blocks."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field

from agents.answers.answer import AskResult
from agents.errors import TriageError

REPLAY_WINDOW_S = 300  # Slack's advice: refuse requests whose timestamp is more than five minutes away
MAX_BODY_BYTES = 64_000
SECTION_CHARS = 2900  # a section block's text may hold 3000 characters
KNOWN: tuple[str, ...] = ("token", "team_id", "team_domain", "enterprise_id", "channel_id", "channel_name")
KNOWN += (
    "user_id",
    "user_name",
    "command",
    "text",
    "response_url",
    "trigger_id",
    "api_app_id",
    "is_enterprise_install",
)


class SlackRequestError(TriageError):
    """The request is not a usable slash command (`status` is the HTTP status to answer with)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        self.reason, self.status = reason, status
        super().__init__(reason)


class SlashCommand(BaseModel):
    """The fields of a slash command we use; anything else Slack sends is kept in `other`."""

    model_config = ConfigDict(extra="forbid")

    command: str = ""
    text: str = Field(default="", max_length=4000)
    user_id: str = ""
    user_name: str = ""
    channel_id: str = ""
    channel_name: str = ""
    team_id: str = ""
    team_domain: str = ""
    enterprise_id: str = ""
    response_url: str = ""
    trigger_id: str = ""
    api_app_id: str = ""
    is_enterprise_install: str = ""
    token: str = Field(default="", repr=False)
    other: dict[str, str] = {}


def parse_slash_command(body: bytes | str) -> SlashCommand:
    """An application/x-www-form-urlencoded body into a SlashCommand; a bad body is a SlackRequestError."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise SlackRequestError(f"the body has {len(raw)} bytes, more than {MAX_BODY_BYTES}", status=413)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SlackRequestError(f"the body is not a form-encoded slash command ({type(exc).__name__})") from None
    fields: dict[str, str] = {}
    other: dict[str, str] = {}
    for key, value in pairs:
        (fields if key in KNOWN else other)[key] = value.replace("\x00", "")
    if not fields.get("command"):
        raise SlackRequestError("the body has no `command` field: is this a Slack slash command?")
    if len(fields.get("text", "")) > 4000:
        raise SlackRequestError("the question is longer than 4000 characters")
    return SlashCommand(**fields, other=other)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature: hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Callable[[], float] = time.time,
    window: int = REPLAY_WINDOW_S,
) -> None:
    """Raise SlackRequestError (401) unless X-Slack-Signature matches and X-Slack-Request-Timestamp is recent."""
    timestamp = _header(headers, "X-Slack-Request-Timestamp")
    signature = _header(headers, "X-Slack-Signature")
    if not timestamp or not signature:
        raise SlackRequestError("missing X-Slack-Request-Timestamp or X-Slack-Signature header", status=401)
    try:
        sent = int(timestamp)
    except ValueError:
        raise SlackRequestError("X-Slack-Request-Timestamp is not a number of seconds", status=401) from None
    if abs(now() - sent) > window:
        raise SlackRequestError(f"the request timestamp is more than {window} s away: a replay?", status=401)
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        raise SlackRequestError("the request signature does not match the signing secret", status=401)


def escape(text: str) -> str:
    """Slack mrkdwn control characters; everything else passes through (bold ** becomes Slack's *)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("**", "*")


def _clip(text: str, limit: int = SECTION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_message(result: AskResult, *, in_channel: bool = False) -> dict[str, Any]:
    """A slash-command response: `text` (the fallback for notifications) and `blocks`."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(escape(result.answer))}},
    ]
    owner = result.owner
    if owner is not None:
        people = ", ".join(f"@{escape(p)}" for p in owner.people) or "-"
        fields = [
            f"*Owner*\n{escape(owner.team_name)}",
            f"*People*\n{people}",
            f"*On call*\n@{escape(owner.on_call)}" if owner.on_call else "*On call*\n-",
            f"*Channel*\n{escape(owner.channel or '-')}",
        ]
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]})
    if result.citations:
        refs = " · ".join(f"{escape(c.title)} `[{escape(c.ref)}]`" for c in result.citations)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(f"Sources: {refs}")}]})
    if result.stale_sources:
        stale = ", ".join(f"{s.doc_id} (reviewed {s.last_reviewed.isoformat()})" for s in result.stale_sources)
        note = f":warning: Possibly out of date: {escape(stale)}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    how = "no answer found" if result.abstained else f"confidence {result.confidence:.2f}"
    footer = f"{how} · {escape(result.backend)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return {
        "response_type": "in_channel" if in_channel else "ephemeral",
        "text": _clip(result.answer, 500),
        "blocks": blocks,
    }


def usage_message(command: str) -> dict[str, Any]:
    text = f"Ask me how to fix something or who owns it, for example `{command or '/ask'} who owns the VPN?`"
    return {
        "response_type": "ephemeral",
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


def handle_slash_command(
    body: bytes,
    headers: Mapping[str, str],
    ask: Callable[[str], AskResult],
    *,
    signing_secret: str | None = None,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Verify (when a secret is configured), parse, ask, render. SlackRequestError carries the HTTP status."""
    if signing_secret:
        verify_signature(signing_secret, headers, body, now=now)
    command = parse_slash_command(body)
    question = command.text.strip()
    if not question:
        return usage_message(command.command)
    return render_message(ask(question))
