"""Per-API-key token buckets: in-process, or shared by every replica through Redis.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` tokens per second; each
request takes one token, and a request that finds less than one is refused with the seconds
until one will be there. ``take_token`` is the plain-Python reference; ``BUCKET_LUA`` is the
same arithmetic run atomically inside Redis (tests check that they agree step by step).

With ``JUDGE_REDIS_URL`` set the buckets live in Redis (``<prefix>ratelimit:<key name>``, a hash
that expires once it would be full again, so idle keys cost nothing). If Redis cannot be
reached, limits are still enforced, per process, by an in-process bucket: the log says so once,
and Redis is tried again after ``JUDGE_REDIS_RETRY_INTERVAL_S``. Never fail open, never 500.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 0.5
"""A rate-limit check is on every request's path: a Redis that stalls longer than this counts
as down (the in-process bucket answers) rather than stalling the request."""


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_s: float


def take_token(state: BucketState | None, now_s: float, rate_per_s: float, burst: int) -> tuple[BucketState, float]:
    """One request against a bucket (the reference for ``BUCKET_LUA``).

    Args:
        state: the bucket, or None for one never used (full).
        now_s: the time in seconds (any clock, as long as one bucket always uses the same one).

    Returns:
        The new state and the wait in seconds: 0.0 when the request may go ahead, else how long
        until a token will be there (the request took nothing).
    """
    if state is None:
        state = BucketState(float(burst), now_s)
    # A clock that steps back (another replica's, in Redis) must not mint or burn tokens.
    elapsed_s = max(0.0, now_s - state.updated_s)
    tokens = min(float(burst), state.tokens + elapsed_s * rate_per_s)
    updated_s = max(state.updated_s, now_s)
    if tokens >= 1.0:
        return BucketState(tokens - 1.0, updated_s), 0.0
    return BucketState(tokens, updated_s), (1.0 - tokens) / rate_per_s


BUCKET_LUA = """
-- KEYS[1]: the bucket hash. ARGV: rate_per_s, burst, now_s ('' = the Redis server's clock,
-- which every replica shares), ttl_ms. Returns {allowed 0/1, wait_s, tokens} (as strings:
-- Redis would truncate Lua numbers to integers).
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated_s')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
local elapsed = math.max(0, now - updated)
tokens = math.min(burst, tokens + elapsed * rate)
updated = math.max(updated, now)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated_s', string.format('%.17g', updated))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {allowed, string.format('%.17g', wait), string.format('%.17g', tokens)}
"""


def bucket_ttl_ms(rate_per_s: float, burst: int) -> int:
    """How long an untouched bucket must be kept: after this it is full again, which is what a
    missing one means, so expiring it changes nothing."""
    return math.ceil(burst / rate_per_s * 1000.0) + 1000


class RateLimiter(Protocol):
    async def acquire(self, name: str, rate_per_s: float, burst: int) -> float:
        """Take a token from the bucket of key ``name``: 0.0 if allowed, else seconds to wait."""

    async def close(self) -> None: ...


class InProcessRateLimiter:
    """Buckets in this process's memory (one per key name; bounded by the keys file)."""

    def __init__(self) -> None:
        self._buckets: dict[str, BucketState] = {}

    async def acquire(self, name: str, rate_per_s: float, burst: int) -> float:
        state, wait_s = take_token(self._buckets.get(name), time.monotonic(), rate_per_s, burst)
        self._buckets[name] = state
        return wait_s

    async def close(self) -> None:
        pass


class RedisRateLimiter:
    """Buckets in Redis, updated by one atomic script (EVALSHA), shared by every replica."""

    def __init__(self, url: str, key_prefix: str, retry_interval_s: float) -> None:
        self.key_prefix = key_prefix
        self.retry_interval_s = retry_interval_s
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._script = self._client.register_script(BUCKET_LUA)
        self._fallback = InProcessRateLimiter()
        self._down_until_s = 0.0
        self._down = False

    def bucket_key(self, name: str) -> str:
        return f"{self.key_prefix}ratelimit:{name}"

    async def take(self, name: str, rate_per_s: float, burst: int, now_s: float | None = None) -> tuple[float, float]:
        """Run the script once: (wait_s, tokens left). ``now_s`` None uses Redis's clock.

        Raises:
            RedisError, OSError: Redis did not answer (``acquire`` handles this).
        """
        reply = await self._script(
            keys=[self.bucket_key(name)],
            args=[repr(float(rate_per_s)), int(burst), "" if now_s is None else repr(float(now_s)),
                  bucket_ttl_ms(rate_per_s, burst)],
        )
        return float(reply[1]), float(reply[2])

    async def acquire(self, name: str, rate_per_s: float, burst: int) -> float:
        if self._down and time.monotonic() < self._down_until_s:
            return await self._fallback.acquire(name, rate_per_s, burst)
        try:
            wait_s, _ = await self.take(name, rate_per_s, burst)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            if not self._down:
                log.warning(
                    "Redis rate limiter unreachable (%s); limits are now enforced per process, so "
                    "each replica allows the full rate until Redis answers again (retrying every %.0f s)",
                    type(exc).__name__, self.retry_interval_s,
                )
            self._down = True
            self._down_until_s = time.monotonic() + self.retry_interval_s
            return await self._fallback.acquire(name, rate_per_s, burst)
        if self._down:
            self._down = False
            log.warning("Redis rate limiter is back; limits are shared by all replicas again")
        return wait_s

    async def close(self) -> None:
        await self._client.aclose()


def make_rate_limiter(redis_url: str | None, key_prefix: str, retry_interval_s: float) -> RateLimiter:
    """Redis-shared buckets when a Redis URL is configured, else in-process ones."""
    if redis_url:
        return RedisRateLimiter(redis_url, key_prefix, retry_interval_s)
    return InProcessRateLimiter()
