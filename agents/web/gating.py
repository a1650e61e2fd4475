"""Build the gate from settings: rate limits per process by default, shared in Redis when `redis_url` is set."""

from __future__ import annotations

from agents.settings import Settings
from agents.web.auth import FAILED_AUTH_BURST, FAILED_AUTH_PER_SECOND, Gate, KeyRing
from agents.web.limits import Limiter, RateLimiter, RedisRateLimiter


def build_gate(settings: Settings, keys: KeyRing) -> Gate:
    """The one place that picks the limiters: with `redis_url`, every replica spends from the same buckets
    (per key, and per address for refused credentials), under `redis_namespace`; without it, as before."""
    limiter: Limiter
    failures: Limiter
    if settings.redis_url:
        ns = settings.redis_namespace
        limiter = RedisRateLimiter.from_url(
            settings.redis_url, settings.rate_limit_per_second, settings.rate_limit_burst, f"{ns}:key"
        )
        failures = RedisRateLimiter.from_url(
            settings.redis_url, FAILED_AUTH_PER_SECOND, FAILED_AUTH_BURST, f"{ns}:refused"
        )
    else:
        limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        failures = RateLimiter(FAILED_AUTH_PER_SECOND, FAILED_AUTH_BURST)
    return Gate(keys, limiter, settings.auth_dev_mode, failures)
