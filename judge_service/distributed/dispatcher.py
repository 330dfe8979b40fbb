"""The scheduler of an API replica in distributed mode: jobs go to Redis Streams, not a thread.

``StreamDispatcher`` has the ``Scheduler``'s interface (``start``, ``submit``, ``cancel``,
``stop``), so ``JudgeService`` runs unchanged on top of it. It owns three background tasks:

* the **sender** XADDs queued jobs to the stream of their priority (retrying while Redis is
  down, until the job's deadline);
* the **listener** pops finished job ids from this replica's reply list (BLPOP), fetches the
  results and resolves the jobs' futures;
* the **sweeper** fails jobs past their deadline (and deletes their entries so no worker
  computes them), picks up results whose notification was missed, re-sends jobs whose entry
  vanished without a result (Redis restarted without persistence), and keeps the list of live
  workers, from whose heartbeats it learns the judge's identity.

Admission is per replica: at most ``max_queue_items`` clips in flight, then 429 with a
Retry-After from this replica's measured completion rate. A job id is its result's idempotency
key, so a job re-sent or claimed twice is still answered exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from judge_service.backends.base import BackendJob, BatchReport, JobResult, JudgeInfo
from judge_service.batching.queue import JobTiming
from judge_service.batching.scheduler import fail_future
from judge_service.config import Settings
from judge_service.distributed.keys import PRIORITY_STREAMS, StreamKeys
from judge_service.distributed.wire import (
    WireFormatError,
    WorkEnvelope,
    decode_result,
    decode_worker_notice,
    encode_work,
)
from judge_service.errors import (
    error_class_for,
    BackendError,
    ClientDisconnectedError,
    DeadlineExceededError,
    JudgeError,
    QueueFullError,
    ShuttingDownError,
)
from judge_service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

LISTEN_BLOCK_S = 1
SWEEP_INTERVAL_S = 0.5
LOST_CHECK_INTERVAL_S = 2.0
"""How often a sent job is checked for a missed notification or a vanished entry."""
RATE_WINDOW_S = 10.0
"""Completions over this window estimate Retry-After."""


@dataclass(eq=False)
class RemoteJob:
    """A job handed to the workers. ``future`` receives ``(JobResult, JobTiming)`` or a
    ``JudgeError``, as with the embedded scheduler."""

    job_id: str
    work: BackendJob
    priority: int
    deadline_s: float
    deadline_unix_s: float
    future: asyncio.Future[Any]
    enqueued_s: float
    enqueued_unix_s: float
    stream: str = ""
    entry_id: bytes | None = None
    checked_s: float = 0.0
    cancelled: bool = False
    sends: int = 0


class StreamDispatcher:
    """Sends an API replica's jobs to the workers through Redis and gathers their results."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics, client: aioredis.Redis | None = None) -> None:
        if not settings.redis_url and client is None:
            raise ValueError("distributed mode needs JUDGE_REDIS_URL")
        self.settings = settings
        self.metrics = metrics
        self.keys = StreamKeys(settings.redis_key_prefix)
        self.replica_id = uuid.uuid4().hex
        self.client = client or aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1.0, socket_timeout=LISTEN_BLOCK_S + 4.0
        )
        self.redis_up = False
        self.workers: dict[str, dict[str, Any]] = {}
        self._last_info: JudgeInfo | None = None
        self._pending: dict[str, RemoteJob] = {}
        self._unsent: list[RemoteJob] = []
        self._wake_sender = asyncio.Event()
        self._inflight_clips = 0
        self._completions: collections.deque[tuple[float, int]] = collections.deque()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- identity and readiness -------------------------------------------------------------

    def judge_info(self) -> JudgeInfo | None:
        """The judge served by the workers of our backend: the newest announced, kept while no
        worker is live (None until one has announced itself)."""
        infos = [w["info"] for w in self.workers.values() if w["backend"] == self.settings.backend]
        if infos:
            self._last_info = infos[0]
        return self._last_info

    def live_workers(self) -> int:
        return sum(1 for w in self.workers.values() if w["backend"] == self.settings.backend)

    def readiness_problem(self) -> str | None:
        if not self.redis_up:
            return "Redis is unreachable"
        if self.live_workers() == 0:
            return f"no live worker serves backend {self.settings.backend!r} (start `paras2s-judge worker`)"
        return None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for name, coro in (("sender", self._sender()), ("listener", self._listener()), ("sweeper", self._sweeper())):
            self._tasks.append(asyncio.create_task(coro, name=f"dispatcher-{name}"))

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop taking work, wait for in-flight jobs (up to ``drain_timeout_s``), fail the rest."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout_s
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for job in list(self._pending.values()):
            self._finish(job, ShuttingDownError("the service is shutting down; retry on another replica"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()

    # --- submission -------------------------------------------------------------------------

    def submit(self, works: list[BackendJob], priority: int, deadline_s: float) -> list[RemoteJob]:
        """Queue jobs (all or none); raises ``QueueFullError`` or ``ShuttingDownError``."""
        if self._stopping:
            raise ShuttingDownError("the service is shutting down; retry on another replica")
        needed = sum(w.num_clips for w in works)
        limit = self.settings.max_queue_items
        if self._inflight_clips + needed > limit:
            self.metrics.rejections.labels(reason="queue_full").inc()
            rate = self.completion_rate_clips_per_s() or 1.0
            excess = self._inflight_clips + needed - limit
            raise QueueFullError(
                f"this replica has {self._inflight_clips} of {limit} clips in flight and this "
                f"request needs {needed}; retry later",
                retry_after_s=max(1, math.ceil(excess / rate)),
            )
        loop = asyncio.get_running_loop()
        now, now_unix = time.monotonic(), time.time()
        jobs = []
        for work in works:
            job = RemoteJob(
                job_id=uuid.uuid4().hex, work=work, priority=priority, deadline_s=deadline_s,
                deadline_unix_s=now_unix + (deadline_s - now), future=loop.create_future(),
                enqueued_s=now, enqueued_unix_s=now_unix, stream=self.keys.work(priority),
            )
            self._pending[job.job_id] = job
            self._unsent.append(job)
            jobs.append(job)
        self._inflight_clips += needed
        self._update_gauges()
        self._wake_sender.set()
        return jobs

    def cancel(self, job: RemoteJob) -> None:
        """The caller went away: forget the job and delete its entry if no worker took it."""
        job.cancelled = True
        if job.job_id in self._pending:
            self.metrics.dropped_jobs.labels(reason="client_disconnected").inc()
            self._finish(job, ClientDisconnectedError("the client disconnected"))
            self._delete_entries([job])

    def _finish(self, job: RemoteJob, outcome: tuple[JobResult, JobTiming] | JudgeError) -> None:
        if self._pending.pop(job.job_id, None) is None:
            return
        self._inflight_clips -= job.work.num_clips
        self._update_gauges()
        if isinstance(outcome, JudgeError):
            fail_future(job.future, outcome)
        elif not job.future.done():
            job.future.set_result(outcome)

    def _delete_entries(self, jobs: list[RemoteJob]) -> None:
        sent = [(j.stream, j.entry_id) for j in jobs if j.entry_id is not None]
        if sent:
            task = asyncio.ensure_future(self._xdel(sent))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _xdel(self, entries: list[tuple[str, bytes]]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for stream, entry_id in entries:
                    pipe.xdel(stream, entry_id)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # best effort: a worker that reads it skips it once the deadline has passed

    # --- the sender -------------------------------------------------------------------------

    async def _sender(self) -> None:
        backoff_s = 0.1
        while True:
            await self._wake_sender.wait()
            self._wake_sender.clear()
            batch = [j for j in self._unsent if j.job_id in self._pending]
            self._unsent = []
            if not batch:
                continue
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for job in batch:
                        envelope = WorkEnvelope(job.job_id, self.replica_id, job.work, job.deadline_unix_s, job.enqueued_unix_s)
                        pipe.xadd(job.stream, encode_work(envelope))
                    entry_ids = await pipe.execute()
            except (RedisError, OSError) as exc:
                self._redis_down(exc)
                self._unsent = batch + self._unsent  # keep order; the sweeper fails expired ones
                await asyncio.sleep(backoff_s)
                backoff_s = min(2.0, backoff_s * 2)
                self._wake_sender.set()
                continue
            backoff_s = 0.1
            self._redis_back()
            now = time.monotonic()
            for job, entry_id in zip(batch, entry_ids):
                job.entry_id, job.checked_s, job.sends = entry_id, now, job.sends + 1

    # --- the listener -----------------------------------------------------------------------

    async def _listener(self) -> None:
        replies = self.keys.replies(self.replica_id)
        while True:
            try:
                popped = await self.client.blpop([replies], timeout=LISTEN_BLOCK_S)
                if popped is None:
                    continue
                more = await self.client.lpop(replies, 255) or []
                await self._collect([popped[1], *more])
                self._redis_back()
            except (RedisError, OSError) as exc:
                self._redis_down(exc)
                await asyncio.sleep(0.5)

    async def _collect(self, job_ids: list[bytes | str]) -> None:
        """Fetch and delete the results of these jobs, and resolve the ones we still wait for."""
        ids = [j.decode() if isinstance(j, bytes) else j for j in job_ids]
        keys = [self.keys.result(j) for j in ids]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.mget(keys)
            pipe.delete(*keys)
            payloads, _ = await pipe.execute()
        for job_id, payload in zip(ids, payloads):
            job = self._pending.get(job_id)
            if job is None or payload is None:
                continue  # a duplicate answer, or the caller already gave up
            self._finish(job, self._outcome(job, payload))

    def _outcome(self, job: RemoteJob, payload: bytes) -> tuple[JobResult, JobTiming] | JudgeError:
        try:
            decoded = decode_result(payload)
        except WireFormatError as exc:
            log.error("job %s: unreadable result from a worker (%s)", job.job_id, exc)
            return BackendError("a worker returned an unreadable result; the request can be retried")
        if isinstance(decoded[0], str):
            error_type, message = decoded
            return error_from_wire(error_type, message)
        result, timing = decoded
        assert isinstance(timing, JobTiming)
        self._observe(timing, job)
        return result, timing

    def _observe(self, timing: JobTiming, job: RemoteJob) -> None:
        self.metrics.queue_time_s.observe(timing.queue_ms / 1000.0)
        self.metrics.compute_time_s.observe(timing.compute_ms / 1000.0)
        now = time.monotonic()
        self._completions.append((now, job.work.num_clips))
        while self._completions and self._completions[0][0] < now - RATE_WINDOW_S:
            self._completions.popleft()

    def completion_rate_clips_per_s(self) -> float | None:
        """Clips this replica got answered per second over the last ``RATE_WINDOW_S``."""
        if len(self._completions) < 2:
            return None
        span_s = max(self._completions[-1][0] - self._completions[0][0], 1e-3)
        return sum(clips for _, clips in self._completions) / max(span_s, 1.0)

    # --- the sweeper ------------------------------------------------------------------------

    async def _sweeper(self) -> None:
        last_workers_s = 0.0
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self._expire()
            try:
                now = time.monotonic()
                if now - last_workers_s >= min(self.settings.worker_heartbeat_s, 2.0):
                    await self._refresh_workers()
                    last_workers_s = now
                await self._check_lost(now)
                self._redis_back()
            except (RedisError, OSError) as exc:
                self._redis_down(exc)

    def _expire(self) -> None:
        now = time.monotonic()
        expired = [j for j in self._pending.values() if j.deadline_s <= now]
        for job in expired:
            self.metrics.dropped_jobs.labels(reason="deadline_exceeded").inc()
            self._finish(job, DeadlineExceededError("the request's deadline passed before it was scored"))
        self._delete_entries(expired)

    async def _refresh_workers(self) -> None:
        names = [key async for key in self.client.scan_iter(match=self.keys.worker_pattern(), count=200)]
        notices = await self.client.mget(names) if names else []
        workers = {}
        for payload in notices:
            if payload is None:
                continue
            try:
                notice = decode_worker_notice(payload)
            except WireFormatError:
                continue
            workers[notice["worker_id"]] = notice
        self.workers = workers
        self.metrics.workers_live.set(self.live_workers())
        async with self.client.pipeline(transaction=False) as pipe:
            for stream in self.keys.all_work():
                pipe.xlen(stream)
            lengths = await pipe.execute()
        for stream, length in zip(PRIORITY_STREAMS, lengths):
            self.metrics.stream_entries.labels(stream=stream).set(length)

    async def _check_lost(self, now: float) -> None:
        """Results whose notification we missed, and entries that vanished without a result."""
        due = [j for j in self._pending.values() if j.entry_id is not None and now - j.checked_s >= LOST_CHECK_INTERVAL_S]
        if not due:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for job in due:
                pipe.exists(self.keys.result(job.job_id))
                pipe.xrange(job.stream, min=job.entry_id, max=job.entry_id, count=1)
            replies = await pipe.execute()
        answered, lost = [], []
        for i, job in enumerate(due):
            job.checked_s = now
            has_result, entry = replies[2 * i], replies[2 * i + 1]
            if has_result:
                answered.append(job.job_id)
            elif not entry and job.job_id in self._pending:
                lost.append(job)
        if answered:
            await self._collect(answered)
        if lost:
            log.warning("re-sending %d jobs whose work entries vanished without a result "
                        "(Redis restarted without persistence?)", len(lost))
            for job in lost:
                job.entry_id = None
            self._unsent.extend(lost)
            self._wake_sender.set()

    # --- bookkeeping ------------------------------------------------------------------------

    def _redis_down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("Redis unavailable (%s: %s); jobs wait and are re-sent", type(exc).__name__, exc)
        self.redis_up = False

    def _redis_back(self) -> None:
        if not self.redis_up:
            log.info("Redis reachable; dispatching to workers")
        self.redis_up = True

    def _update_gauges(self) -> None:
        self.metrics.queue_depth_clips.set(self._inflight_clips)
        self.metrics.queue_depth_jobs.set(len(self._pending))


class RemoteBackend:
    """Stands for the workers' judge inside an API replica: its identity, never its compute."""

    def __init__(self, dispatcher: StreamDispatcher) -> None:
        self.dispatcher = dispatcher

    @property
    def info(self) -> JudgeInfo:
        info = self.dispatcher.judge_info()
        if info is None:
            raise RuntimeError("no live worker has announced the judge yet")
        return info

    def warm_up(self) -> None:
        return None

    def run_batch(self, jobs: list[BackendJob]) -> BatchReport:
        raise RuntimeError("in distributed mode the workers score; the API replica never runs a batch")


def error_from_wire(error_type: str, message: str) -> JudgeError:
    """Rebuild the typed error a worker reported (unknown types become ``BackendError``)."""
    error_class = error_class_for(error_type)
    return BackendError(message) if error_class is None else error_class(message)
