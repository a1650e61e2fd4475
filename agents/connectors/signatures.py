"""Webhook caller checks, each in constant time: hub-style HMAC hex, Zendesk's timestamped HMAC, bearer and basic."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from agents.connectors.base import SignatureInvalid, basic_credentials, header


def hmac_hex(secret: str, body: bytes, algorithm: str) -> str:
    return hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def check_hub_signature(
    system: str, headers: Mapping[str, str], body: bytes, secret: str, algorithm: str, name: str = "X-Hub-Signature"
) -> None:
    """`<name>: <algorithm>=<hex HMAC of the raw body>` (Jira: sha256, Zammad: sha1)."""
    given = header(headers, name)
    if not given:
        raise SignatureInvalid(system, f"no {name} header: the event is not signed")
    prefix, _, digest = given.strip().partition("=")
    if prefix.lower() != algorithm or not digest:
        raise SignatureInvalid(system, f"{name} must be `{algorithm}=<hex digest>`")
    if not hmac.compare_digest(digest.lower(), hmac_hex(secret, body, algorithm)):
        raise SignatureInvalid(system, f"{name} does not match the body: wrong secret, or the body was changed")


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + raw body)), as Zendesk signs webhook requests."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_zendesk_signature(headers: Mapping[str, str], body: bytes, secret: str, now: float, window: float) -> None:
    """X-Zendesk-Webhook-Signature over X-Zendesk-Webhook-Signature-Timestamp + body, within the replay window."""
    signature = header(headers, "X-Zendesk-Webhook-Signature")
    timestamp = header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
    if not signature or not timestamp:
        raise SignatureInvalid("zendesk", "no X-Zendesk-Webhook-Signature(-Timestamp) header: the event is not signed")
    if not hmac.compare_digest(signature.strip(), zendesk_signature(secret, timestamp, body)):
        raise SignatureInvalid(
            "zendesk", "the signature does not match the body: wrong secret, or the body was changed"
        )
    age = now - parse_timestamp(timestamp)
    if abs(age) > window:
        raise SignatureInvalid(
            "zendesk", f"the signed timestamp is {age:.0f} s away, outside the {window:.0f} s window"
        )


def parse_timestamp(value: str) -> float:
    """Zendesk's signature timestamp: ISO 8601 (2026-12-05T10:00:00Z) or, leniently, Unix seconds."""
    from datetime import datetime

    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise SignatureInvalid("zendesk", f"the signature timestamp {text[:40]!r} is not a time") from None


def check_bearer_or_basic(system: str, headers: Mapping[str, str], secret: str, user: str | None = None) -> None:
    """`Authorization: Bearer <secret>`, or with a user `Authorization: Basic base64(user:secret)`."""
    given = (header(headers, "Authorization") or "").strip()
    scheme, _, credentials = given.partition(" ")
    if not credentials:
        raise SignatureInvalid(system, "no Authorization header")
    if user is None:
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), secret.encode()):
            raise SignatureInvalid(system, "the bearer token is wrong")
        return
    expected = basic_credentials(user, secret)
    if scheme.lower() != "basic" or not hmac.compare_digest(credentials.strip().encode(), expected.encode()):
        raise SignatureInvalid(system, "the basic-auth user or password is wrong")
