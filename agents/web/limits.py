"""Rate limits as token buckets: per process (RateLimiter), or shared by every replica in Redis (RedisRateLimiter)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from agents.errors import TriageError

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)
MAX_BUCKETS = 10_000
REDIS_TIMEOUT = 0.25  # seconds to connect to, and to hear back from, Redis: a request never hangs on it
REDIS_DOWN_PAUSE = 1.0  # after a failure, answer "unavailable" at once for this long instead of asking again
LOG_EVERY = 10.0  # seconds between two log lines about the same outage

# Refill by the time elapsed since the last take (Redis's own clock: every replica sees the same time), then take
# one token if there is one. Returns the seconds to wait as a string (Lua would truncate a number to an integer).
REFILL_AND_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class Limiter(Protocol):
    def take(self, caller: str) -> float:
        """0 when the request may go ahead, otherwise the seconds until it could."""
        ...


class LimiterUnavailable(TriageError):
    """The shared rate limiter cannot be asked (Redis down or too slow); `retry_after` in seconds."""

    def __init__(self, where: str, reason: str, retry_after: float = REDIS_DOWN_PAUSE) -> None:
        self.where, self.reason, self.retry_after = where, reason, retry_after
        super().__init__(f"rate limiter at {where} unavailable: {reason}")


class RateLimiter:
    """A token bucket per caller: `rate` requests a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 when the request may go ahead, otherwise the seconds until it could."""
        now = self.clock()
        with self._lock:
            if len(self._buckets) > MAX_BUCKETS:  # forget callers whose bucket has refilled: they lose nothing
                full = now - self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > full}
            tokens, last = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate


class RedisRateLimiter:
    """The same token bucket in Redis, so that every replica spends from one budget per caller.

    One Lua script refills and takes atomically; bucket keys are `<namespace>:<caller>` and expire once full.
    When Redis cannot be reached, `take` raises LimiterUnavailable (the gate answers 503 with Retry-After): we fail
    closed, because failing open would lift every limit, the refused-credentials one included, exactly when an
    attacker may be the cause of the outage. Timeouts are short and there is no retry, so no request hangs; after a
    failure Redis is left alone for REDIS_DOWN_PAUSE seconds, and the outage is logged at most every LOG_EVERY s."""

    def __init__(self, client: redis.Redis, rate: float, burst: int, namespace: str, where: str = "redis") -> None:
        self.client, self.rate, self.burst, self.namespace, self.where = client, rate, burst, namespace, where
        self._script = client.register_script(REFILL_AND_TAKE)
        self._down_until = 0.0
        self._logged = -LOG_EVERY

    @classmethod
    def from_url(cls, url: str, rate: float, burst: int, namespace: str) -> RedisRateLimiter:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        host = client.connection_pool.connection_kwargs.get("host", "?")
        port = client.connection_pool.connection_kwargs.get("port", "?")
        return cls(client, rate, burst, namespace, where=f"redis {host}:{port}")

    def take(self, caller: str) -> float:
        import redis

        now = time.monotonic()
        if now < self._down_until:
            raise LimiterUnavailable(self.where, "down a moment ago", self._down_until - now)
        try:
            return float(self._script(keys=[f"{self.namespace}:{caller}"], args=[self.rate, self.burst]))
        except (redis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + REDIS_DOWN_PAUSE
            failure = LimiterUnavailable(self.where, f"{type(exc).__name__}: {exc}")
            if now - self._logged >= LOG_EVERY:
                self._logged = now
                log.error("%s; refusing requests with 503 until it answers", failure)
            raise failure from exc
