"""API keys with scopes (stored as salted SHA-256 hashes), per-key rate limits, and the gate every route passes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from agents.store.tables import ApiKeyRow
from agents.store.tickets import Store, as_utc
from agents.web.errors import ApiError
from agents.web.limits import Limiter, LimiterUnavailable, RateLimiter

log = logging.getLogger(__name__)
Scope = Literal["triage", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("triage", "read", "admin")
PREFIX = "tri"
REVOCATION_CHECK_SECONDS = 1.0  # a key revoked on any replica stops working everywhere within this long
FAILED_AUTH_PER_SECOND = 0.2  # refused credentials per client address: one every 5 s on average ...
FAILED_AUTH_BURST = 20  # ... after a first burst of 20; then 429 instead of 401


class ApiKeyInfo(BaseModel):
    """What may be shown about a key: never its secret."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1)


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


class KeyRing:
    """Creates, checks and revokes keys. A key reads `tri_<id>_<secret>`; the id finds the row, the hash checks it."""

    def __init__(
        self,
        store: Store,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        revocation_check_seconds: float = REVOCATION_CHECK_SECONDS,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.revocation_check_seconds = revocation_check_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._watermark: tuple[int, datetime | None] | None = None  # (revoked keys, newest revoked_at) last seen
        self._checked = -math.inf  # when the watermark was last read (self.clock)
        self._generation = 0  # bumped whenever the cache is dropped: a lookup begun before must not refill it

    def create(self, name: str, scopes: list[Scope]) -> tuple[ApiKeyInfo, str]:
        """Returns the key's info and its plaintext, which is shown once and never stored."""
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_hex(16)
        row = ApiKeyRow(
            id=key_id,
            name=name,
            scopes=sorted(set(scopes)),
            salt=salt,
            secret_hash=hash_secret(salt, secret),
            created_at=self.store.clock(),
        )
        with self.store.write() as session:
            session.add(row)
        return _info(row), f"{PREFIX}_{key_id}_{secret}"

    def verify(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = self.clock()
        self._drop_if_revoked(now)
        with self._lock:
            cached = self._cache.get(digest)
            generation = self._generation
        if cached and cached[1] > now:
            return cached[0]
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
            return None
        with self.store.read() as session:
            row = session.get(ApiKeyRow, parts[1][:16])
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_secret(row.salt, parts[2])):
            return None
        principal = Principal(row.id, row.name, frozenset(row.scopes))
        with self._lock:
            if generation == self._generation:
                self._cache[digest] = (principal, now + self.cache_seconds)
        return principal

    def _drop_if_revoked(self, now: float) -> None:
        """Forget every cached key when any key was revoked since the last look, by this process or another
        replica on the same database; looks at most once per `revocation_check_seconds`, so that is how long
        a revoked key may still pass here, while a request costs no query in between."""
        with self._lock:
            if now - self._checked < self.revocation_check_seconds:
                return
            self._checked = now
        with self.store.read() as session:
            count, newest = session.execute(
                select(func.count(ApiKeyRow.revoked_at), func.max(ApiKeyRow.revoked_at))
            ).one()
        mark = (int(count or 0), as_utc(newest))
        with self._lock:
            if mark != self._watermark:
                if self._watermark is not None:
                    self._cache.clear()
                    self._generation += 1
                self._watermark = mark

    def list(self) -> list[ApiKeyInfo]:
        with self.store.read() as session:
            return [_info(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke(self, key_id: str) -> ApiKeyInfo | None:
        with self.store.write() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = self.store.clock()
        with self._lock:
            self._cache.clear()
            self._generation += 1
        return _info(row) if row is not None else None

    def count_active(self) -> int:
        with self.store.read() as session:
            return session.scalar(select(func.count()).where(ApiKeyRow.revoked_at.is_(None))) or 0

    def ensure_admin(self) -> str | None:
        """On first start (no active key at all) create an admin key and return its plaintext, once."""
        if self.count_active():
            return None
        return self.create("admin (first start)", ["admin"])[1]


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        scopes=row.scopes,  # type: ignore[arg-type]
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        revoked_at=as_utc(row.revoked_at),
    )


DEV = Principal("dev", "dev mode (no keys)", frozenset(SCOPES))


def rate_limited(wait: float, message: str = "too many requests") -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"{message}: retry in {wait:.2f} s",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def presented_key(headers: Mapping[str, str]) -> str:
    """The key from `X-API-Key` or `Authorization: Bearer`; "" when none is sent."""
    token = headers.get("x-api-key", "").strip()
    auth = headers.get("authorization", "")
    if not token and auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    return token


class Gate:
    """Who is calling (401), may they (403), not too often (429).

    Two kinds of buckets: a valid key spends from its own bucket (`limiter`, per key id), whatever address it
    comes from; a refused credential spends from the bucket of the client address (`failures`), so a client
    guessing keys or sending a stale one gets 429 while valid keys from the same address go on working."""

    def __init__(
        self, keys: KeyRing, limiter: Limiter, dev_mode: bool = False, failures: Limiter | None = None
    ) -> None:
        self.keys, self.limiter, self.dev_mode = keys, limiter, dev_mode
        self.failures = failures or RateLimiter(FAILED_AUTH_PER_SECOND, FAILED_AUTH_BURST)

    @staticmethod
    def _take(limiter: Limiter, caller: str) -> float:
        """The limiter's answer; a shared limiter that cannot be asked refuses the request with 503 (fail closed)."""
        try:
            return limiter.take(caller)
        except LimiterUnavailable as exc:
            raise ApiError(
                503,
                "rate_limiter_unavailable",
                "the rate limiter cannot be reached; try again shortly",
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
            ) from exc

    def check(self, headers: Mapping[str, str], scope: Scope, client: str) -> Principal:
        principal = DEV if self.dev_mode else self._identify(headers, client)
        if not principal.allows(scope):
            raise ApiError(403, "forbidden", f"this API key lacks the {scope!r} scope")
        wait = self._take(self.limiter, principal.key_id if not self.dev_mode else f"dev:{client}")
        if wait > 0:
            raise rate_limited(wait)
        return principal

    def peek(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller if it sent a valid key (everyone in dev mode), else None; never refuses, never counts."""
        if self.dev_mode:
            return DEV
        token = presented_key(headers)
        return self.keys.verify(token) if token else None

    def refuse(self, client: str, error: ApiError) -> ApiError:
        """A refused credential from `client`: `error` itself, or a 429 once the address has been refused too often."""
        wait = self._take(self.failures, client)
        return rate_limited(wait, "too many refused credentials from this address") if wait > 0 else error

    def _identify(self, headers: Mapping[str, str], client: str) -> Principal:
        token = presented_key(headers)
        challenge = {"WWW-Authenticate": "Bearer"}
        if not token:
            raise self.refuse(
                client,
                ApiError(
                    401,
                    "unauthenticated",
                    "send an API key: `Authorization: Bearer <key>` or `X-API-Key`",
                    headers=challenge,
                ),
            )
        principal = self.keys.verify(token)
        if principal is None:
            raise self.refuse(
                client, ApiError(401, "invalid_api_key", "the API key is unknown or revoked", headers=challenge)
            )
        return principal
