"""Where jobs live: in this process (embedded mode) or in Redis (distributed mode, where any
API replica answers for any job and a job outlives the replica that accepted it).

A job is its metadata (a small JSON document), its input items (``ScoreItemIn``-shaped dicts,
audio as base64) and its results (one wire result per item index). Input items are dropped
once the job ends; metadata and results are kept for ``job_ttl_s`` after that.

Which replica runs a job is decided by a lease (``claim``): the holder renews it while it
works; when a replica dies its lease lapses and another one resumes the job from the items
that have no result yet.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import redis.asyncio as aioredis

TERMINAL_STATES = ("succeeded", "cancelled", "failed")


class JobStore(Protocol):
    async def create(self, meta: dict[str, Any], items: list[dict[str, Any]], idempotency_key: str | None) -> str:
        """Store a new job; returns its id, or the id of the job created earlier with the same
        ``idempotency_key`` (then nothing new is stored)."""

    async def meta(self, job_id: str) -> dict[str, Any] | None: ...

    async def update(self, job_id: str, **fields: Any) -> None: ...

    async def items(self, job_id: str, indices: list[int]) -> list[dict[str, Any]]: ...

    async def done_indices(self, job_id: str) -> set[int]: ...

    async def put_results(self, job_id: str, results: dict[int, dict[str, Any]]) -> int:
        """Store results of items that have none yet (first write wins) and count them into
        the job's ``done`` and ``errors``, atomically; returns how many were new."""

    async def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any] | None]: ...

    async def claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Take or renew the job's lease; False when another owner holds it."""

    async def release(self, job_id: str, owner: str) -> None: ...

    async def active(self) -> list[str]:
        """Ids of jobs not yet in a terminal state."""

    async def finish(self, job_id: str, ttl_s: int, **fields: Any) -> None:
        """Record the terminal state, drop the inputs, keep the rest ``ttl_s`` seconds."""

    async def close(self) -> None: ...


class InMemoryJobStore:
    """Jobs of the embedded mode: lost when the process ends (like its queue)."""

    def __init__(self) -> None:
        self._meta: dict[str, dict[str, Any]] = {}
        self._items: dict[str, list[dict[str, Any]]] = {}
        self._results: dict[str, dict[int, dict[str, Any]]] = {}
        self._expires: dict[str, float] = {}
        self._by_key: dict[str, str] = {}

    def _purge(self) -> None:
        now = time.time()
        for job_id in [j for j, t in self._expires.items() if t <= now]:
            for table in (self._meta, self._items, self._results, self._expires):
                table.pop(job_id, None)
        self._by_key = {k: j for k, j in self._by_key.items() if j in self._meta}

    async def create(self, meta: dict[str, Any], items: list[dict[str, Any]], idempotency_key: str | None) -> str:
        self._purge()
        if idempotency_key is not None and idempotency_key in self._by_key:
            return self._by_key[idempotency_key]
        job_id = meta["id"]
        self._meta[job_id] = dict(meta)
        self._items[job_id] = list(items)
        self._results[job_id] = {}
        if idempotency_key is not None:
            self._by_key[idempotency_key] = job_id
        return job_id

    async def meta(self, job_id: str) -> dict[str, Any] | None:
        self._purge()
        meta = self._meta.get(job_id)
        return None if meta is None else dict(meta)

    async def update(self, job_id: str, **fields: Any) -> None:
        if job_id in self._meta:
            self._meta[job_id].update(fields)

    async def items(self, job_id: str, indices: list[int]) -> list[dict[str, Any]]:
        items = self._items.get(job_id, [])
        return [items[i] for i in indices]

    async def done_indices(self, job_id: str) -> set[int]:
        return set(self._results.get(job_id, {}))

    async def put_results(self, job_id: str, results: dict[int, dict[str, Any]]) -> int:
        stored = self._results.setdefault(job_id, {})
        new = {i: json.loads(json.dumps(r)) for i, r in results.items() if i not in stored}
        stored.update(new)
        meta = self._meta[job_id]
        meta["done"] += len(new)
        meta["errors"] += sum(1 for r in new.values() if r.get("error"))
        return len(new)

    async def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any] | None]:
        stored = self._results.get(job_id, {})
        total = self._meta.get(job_id, {}).get("total", 0)
        return [stored.get(i) for i in range(offset, min(total, offset + limit))]

    async def claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        return True  # one process: it always holds its own jobs

    async def release(self, job_id: str, owner: str) -> None:
        return None

    async def active(self) -> list[str]:
        self._purge()
        return [j for j, m in self._meta.items() if m["status"] not in TERMINAL_STATES]

    async def finish(self, job_id: str, ttl_s: int, **fields: Any) -> None:
        await self.update(job_id, **fields)
        self._items.pop(job_id, None)
        self._expires[job_id] = time.time() + ttl_s

    async def close(self) -> None:
        return None


class RedisJobStore:
    """Jobs shared by every API replica on one Redis, under ``<prefix>job:<id>:*``.

    Keys: ``:meta`` (JSON), ``:items`` (hash index -> item JSON), ``:results`` (hash index ->
    result JSON), ``:counts`` (hash: done, errors), ``:lease`` (owner, PX); ``<prefix>jobs:active`` (set of unfinished ids);
    ``<prefix>jobkey:<key>`` (idempotency key -> job id).
    """

    # Renew only our own lease, atomically (a lapsed lease taken by another owner stays theirs).
    _CLAIM = """
    local holder = redis.call('GET', KEYS[1])
    if holder == false or holder == ARGV[1] then
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
    end
    return 0
    """
    _PUT_RESULTS = """
    local added, errors = 0, 0
    for i = 1, #ARGV, 3 do
        if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
            added = added + 1
            errors = errors + tonumber(ARGV[i + 2])
        end
    end
    redis.call('HINCRBY', KEYS[2], 'done', added)
    redis.call('HINCRBY', KEYS[2], 'errors', errors)
    return added
    """
    _RELEASE = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=10.0)
        self.prefix = prefix
        self._claim = self.client.register_script(self._CLAIM)
        self._release = self.client.register_script(self._RELEASE)
        self._put_results = self.client.register_script(self._PUT_RESULTS)

    def _key(self, job_id: str, part: str) -> str:
        return f"{self.prefix}job:{job_id}:{part}"

    @property
    def _active_key(self) -> str:
        return f"{self.prefix}jobs:active"

    async def create(self, meta: dict[str, Any], items: list[dict[str, Any]], idempotency_key: str | None) -> str:
        job_id = meta["id"]
        if idempotency_key is not None:
            key = f"{self.prefix}jobkey:{idempotency_key}"
            if not await self.client.set(key, job_id, nx=True, ex=7 * 24 * 3600):
                existing = await self.client.get(key)
                if existing is not None and await self.client.exists(self._key(existing.decode(), "meta")):
                    return existing.decode()
                await self.client.set(key, job_id, ex=7 * 24 * 3600)  # the old job expired
        meta = {k: v for k, v in meta.items() if k not in ("done", "errors")}
        async with self.client.pipeline(transaction=True) as pipe:
            for start in range(0, len(items), 1000):
                pipe.hset(self._key(job_id, "items"),
                          mapping={str(i): json.dumps(item) for i, item in enumerate(items[start:start + 1000], start)})
            pipe.set(self._key(job_id, "meta"), json.dumps(meta))
            pipe.sadd(self._active_key, job_id)
            await pipe.execute()
        return job_id

    async def meta(self, job_id: str) -> dict[str, Any] | None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self._key(job_id, "meta"))
            pipe.hmget(self._key(job_id, "counts"), ["done", "errors"])
            raw, (done, errors) = await pipe.execute()
        if raw is None:
            return None
        return {**json.loads(raw), "done": int(done or 0), "errors": int(errors or 0)}

    async def update(self, job_id: str, **fields: Any) -> None:
        # Read-modify-write under WATCH, so a cancel from another replica is never overwritten.
        key = self._key(job_id, "meta")
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return
                    meta = {**json.loads(raw), **fields}
                    pipe.multi()
                    pipe.set(key, json.dumps(meta), keepttl=True)
                    await pipe.execute()
                    return
                except aioredis.WatchError:
                    continue

    async def items(self, job_id: str, indices: list[int]) -> list[dict[str, Any]]:
        raw = await self.client.hmget(self._key(job_id, "items"), [str(i) for i in indices])
        if any(r is None for r in raw):
            raise KeyError(f"job {job_id} lost some of its input items")
        return [json.loads(r) for r in raw]

    async def done_indices(self, job_id: str) -> set[int]:
        return {int(k) for k in await self.client.hkeys(self._key(job_id, "results"))}

    async def put_results(self, job_id: str, results: dict[int, dict[str, Any]]) -> int:
        if not results:
            return 0
        args: list[str] = []
        for i, r in results.items():
            args += [str(i), json.dumps(r), "1" if r.get("error") else "0"]
        keys = [self._key(job_id, "results"), self._key(job_id, "counts")]
        return int(await self._put_results(keys=keys, args=args))

    async def results(self, job_id: str, offset: int, limit: int) -> list[dict[str, Any] | None]:
        meta = await self.meta(job_id)
        total = meta["total"] if meta else 0
        fields = [str(i) for i in range(offset, min(total, offset + limit))]
        if not fields:
            return []
        raw = await self.client.hmget(self._key(job_id, "results"), fields)
        return [None if r is None else json.loads(r) for r in raw]

    async def claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        return bool(await self._claim(keys=[self._key(job_id, "lease")], args=[owner, int(lease_s * 1000)]))

    async def release(self, job_id: str, owner: str) -> None:
        await self._release(keys=[self._key(job_id, "lease")], args=[owner])

    async def active(self) -> list[str]:
        return [m.decode() for m in await self.client.smembers(self._active_key)]

    async def finish(self, job_id: str, ttl_s: int, **fields: Any) -> None:
        await self.update(job_id, **fields)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(job_id, "items"), self._key(job_id, "lease"))
            pipe.expire(self._key(job_id, "meta"), ttl_s)
            pipe.expire(self._key(job_id, "results"), ttl_s)
            pipe.expire(self._key(job_id, "counts"), ttl_s)
            pipe.srem(self._active_key, job_id)
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
