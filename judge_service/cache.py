"""Content-addressed result cache: in-process LRU by default, Redis when configured.

Keys hash everything a result depends on: the clips' PCM hashes, the judge name, version
(weights hash) and rubric version, and the request options (known labels, client texts).
A Redis outage never fails a request: lookups count as misses, writes are skipped, the
outage is logged once and exported as ``judge_cache_available 0``, and Redis is retried
after ``retry_interval_s``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from judge_service.backends.base import JudgeInfo
from judge_service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

CACHE_SCHEMA = 1
"""Bump when the cached value's layout changes; old entries then never match."""


def cache_key(namespace: str, judge: JudgeInfo, parts: dict[str, Any]) -> str:
    """Stable key for a result: sha256 of a canonical JSON of the inputs and judge identity."""
    payload = {
        "schema": CACHE_SCHEMA,
        "ns": namespace,
        "judge": judge.name,
        "version": judge.version,
        "rubric": judge.rubric_version,
        **parts,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{namespace}:{hashlib.sha256(canonical.encode()).hexdigest()}"


class ResultCache(Protocol):
    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]: ...

    async def set_many(self, entries: dict[str, dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class NoCache:
    """Caching disabled (``JUDGE_CACHE_MAX_ENTRIES=0`` and no Redis)."""

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        return [None] * len(keys)

    async def set_many(self, entries: dict[str, dict[str, Any]]) -> None:
        return None

    async def close(self) -> None:
        return None


class InProcessCache:
    """LRU of at most ``max_entries`` results, private to this process."""

    def __init__(self, max_entries: int, metrics: ServiceMetrics) -> None:
        self.max_entries = max_entries
        self.metrics = metrics
        self._entries: OrderedDict[str, str] = OrderedDict()
        metrics.cache_available.set(1)

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        found: list[dict[str, Any] | None] = []
        for key in keys:
            value = self._entries.get(key)
            if value is None:
                found.append(None)
                self.metrics.cache_lookups.labels(result="miss").inc()
            else:
                self._entries.move_to_end(key)
                found.append(json.loads(value))
                self.metrics.cache_lookups.labels(result="hit").inc()
        return found

    async def set_many(self, entries: dict[str, dict[str, Any]]) -> None:
        for key, value in entries.items():
            # Stored as JSON so a cached result can never be mutated by a caller.
            self._entries[key] = json.dumps(value)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Results shared by every replica pointing at the same Redis, with a TTL."""

    def __init__(
        self,
        url: str,
        key_prefix: str,
        ttl_s: int,
        retry_interval_s: float,
        metrics: ServiceMetrics,
    ) -> None:
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self.retry_interval_s = retry_interval_s
        self.metrics = metrics
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=1.0, health_check_interval=30
        )
        self._down_until = 0.0
        self._down = False
        metrics.cache_available.set(1)

    def _skipping(self) -> bool:
        return time.monotonic() < self._down_until

    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_interval_s
        self.metrics.cache_available.set(0)
        if not self._down:
            log.warning(
                "Redis cache unavailable (%s: %s); scoring without the cache, retrying in %.0f s",
                type(exc).__name__, exc, self.retry_interval_s,
            )
        self._down = True

    def _mark_up(self) -> None:
        if self._down:
            log.warning("Redis cache is back; caching again")
        self._down = False
        self.metrics.cache_available.set(1)

    async def get_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        if self._skipping():
            self.metrics.cache_lookups.labels(result="error").inc(len(keys))
            return [None] * len(keys)
        try:
            values = await self._client.mget([self.key_prefix + k for k in keys])
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            self.metrics.cache_lookups.labels(result="error").inc(len(keys))
            return [None] * len(keys)
        self._mark_up()
        found: list[dict[str, Any] | None] = []
        for value in values:
            if value is None:
                found.append(None)
                self.metrics.cache_lookups.labels(result="miss").inc()
                continue
            try:
                found.append(json.loads(value))
                self.metrics.cache_lookups.labels(result="hit").inc()
            except ValueError:
                log.warning("ignoring a corrupt cache entry")
                found.append(None)
                self.metrics.cache_lookups.labels(result="miss").inc()
        return found

    async def set_many(self, entries: dict[str, dict[str, Any]]) -> None:
        if not entries or self._skipping():
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(self.key_prefix + key, json.dumps(value), ex=self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            return
        self._mark_up()

    async def close(self) -> None:
        await self._client.aclose()
