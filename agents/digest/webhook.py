"""Post a message to a Slack-compatible incoming webhook, retrying with exponential backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from agents.errors import TriageError

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def redact(url: str) -> str:
    """Webhook URLs carry their secret in the path: logs and errors show only scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else "(invalid URL)"


class WebhookFailed(TriageError):
    """Every attempt failed, or the endpoint refused the message for good (a 4xx other than 408/425/429)."""

    def __init__(self, url: str, attempts: int, reason: str, status: int | None = None) -> None:
        self.url, self.attempts, self.reason, self.status = redact(url), attempts, reason, status
        super().__init__(f"posting to {self.url} failed after {attempts} attempt(s): {reason}")


class WebhookPoster:
    """`post` tries up to 1 + `retries` times; waits `backoff`, then x `factor` each time (capped), or the server's
    Retry-After when it sends one. Transport and sleep are injected so tests neither wait nor leave loopback."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 4,
        backoff: float = 1.0,
        factor: float = 2.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise WebhookFailed(url, 0, "the webhook URL must start with http:// or https://")
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.factor = factor
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.transport = transport
        self.sleep = sleep

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff)
        return min(self.backoff * self.factor ** (attempt - 1), self.max_backoff)

    def post(self, payload: dict[str, Any]) -> int:
        """Send the payload; returns the number of attempts it took, raises WebhookFailed when it gives up."""
        attempts, reason, status = 0, "", None
        with httpx.Client(transport=self.transport, timeout=self.timeout, follow_redirects=False) as client:
            while attempts <= self.retries:
                attempts += 1
                response = None
                try:
                    response = client.post(self.url, json=payload)
                except httpx.TransportError as exc:
                    reason, status = f"{type(exc).__name__}: {exc}", None
                else:
                    if response.is_success:
                        return attempts
                    status, reason = response.status_code, f"HTTP {response.status_code} {response.text[:200]!r}"
                    if status not in RETRY_STATUS:
                        raise WebhookFailed(self.url, attempts, reason, status)
                if attempts <= self.retries:
                    wait = self.delay(attempts, response)
                    log.warning(
                        "webhook %s attempt %d failed (%s); retrying in %.1f s",
                        redact(self.url),
                        attempts,
                        reason,
                        wait,
                    )
                    self.sleep(wait)
        raise WebhookFailed(self.url, attempts, reason, status)
