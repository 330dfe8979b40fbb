"""``paras2s-judge worker``: score work from the Redis Streams, in batches across requests.

One loop per worker process:

  1. claim entries that a dead worker left pending longer than ``stream_claim_idle_s``
     (XAUTOCLAIM), then read new ones (XREADGROUP, interactive stream before bulk), at most
     ``max_batch_items`` entries;
  2. drop work whose caller's deadline has passed, fail work delivered more than
     ``stream_max_deliveries`` times (it killed or stalled every worker that took it);
  3. run the backend on sub-batches within the clip and padded-audio budgets, refreshing the
     entries' idle time meanwhile (XCLAIM JUSTID) so nobody claims work that is still running;
  4. store each result (SET NX: the first delivery to finish wins, so a job is answered once
     however often it ran), notify the caller's replica, and only then XACK + XDEL, all in one
     MULTI/EXEC.

A Redis outage never kills a worker: it backs off, keeps finished results in memory until they
can be written, and recreates the consumer group if Redis came back empty. SIGTERM stops
reading; the batch in hand finishes (up to ``drain_timeout_s``) before the process exits. A
batch that computes longer than ``worker_batch_timeout_s`` makes the worker exit (status 3),
since a stuck thread cannot be stopped and a stuck worker would otherwise keep its work forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from judge_service.backends.base import JudgeBackend
from judge_service.batching.queue import JobTiming
from judge_service.config import Settings
from judge_service.distributed.keys import CONSUMER_GROUP, PRIORITY_STREAMS, StreamKeys
from judge_service.distributed.wire import (
    WireFormatError,
    WorkEnvelope,
    decode_header,
    decode_work,
    encode_error,
    encode_result,
    encode_worker_notice,
)

log = logging.getLogger(__name__)

READ_BLOCK_MS = 500
"""How long an idle worker blocks on the streams before it looks for stale entries again."""
MAX_BACKOFF_S = 5.0
EXIT_STUCK = 3
"""Exit status of a worker that left because a batch outlived ``worker_batch_timeout_s``."""


@dataclass
class Delivery:
    """One stream entry in this worker's hands."""

    stream: str
    entry_id: bytes
    envelope: WorkEnvelope | None
    deliveries: int
    header: dict | None = None
    error: str | None = None


@dataclass
class Outcome:
    """What to write back for one delivery: a result/error payload, or nothing (just ack)."""

    delivery: Delivery
    payload: bytes | None


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def ensure_groups(client: aioredis.Redis, keys: StreamKeys) -> None:
    """Create the streams and the consumer group where missing (idempotent)."""
    for stream in keys.all_work():
        try:
            await client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class StreamWorker:
    """Consumes the work streams with ``backend`` until ``stop`` is set."""

    def __init__(self, settings: Settings, backend: JudgeBackend, client: aioredis.Redis) -> None:
        self.settings = settings
        self.backend = backend
        self.client = client
        self.keys = StreamKeys(settings.redis_key_prefix)
        self.worker_id = settings.worker_id or default_worker_id()
        self.claim_idle_ms = int(settings.stream_claim_idle_s * 1000)
        self.max_entries = settings.max_batch_items
        self.batches_done = 0
        self.jobs_done = 0
        self._busy = False
        self._unwritten: list[Outcome] = []

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        heartbeat = asyncio.create_task(self._heartbeat_loop(stop), name="worker-heartbeat")
        backoff_s = 0.2
        down = False
        try:
            while not stop.is_set():
                try:
                    if self._unwritten:
                        await self._write(self._unwritten)
                        self._unwritten = []
                    if down:  # Redis may have come back empty (no persistence): recreate
                        await ensure_groups(self.client, self.keys)
                    deliveries = await self._next_deliveries(stop)
                    if deliveries:
                        await self._process(deliveries)
                    if down:
                        log.warning("worker %s: Redis is back", self.worker_id)
                    down, backoff_s = False, 0.2
                except (RedisError, OSError) as exc:
                    if isinstance(exc, ResponseError) and "NOGROUP" not in str(exc):
                        raise
                    if not down:
                        log.warning("worker %s: Redis unavailable (%s: %s); retrying",
                                    self.worker_id, type(exc).__name__, exc)
                    down = True
                    await _sleep_or_stop(stop, backoff_s)
                    backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
            # Drain: results computed but not yet written get until drain_timeout_s.
            deadline = time.monotonic() + self.settings.drain_timeout_s
            while self._unwritten and time.monotonic() < deadline:
                try:
                    await self._write(self._unwritten)
                    self._unwritten = []
                except (RedisError, OSError):
                    await asyncio.sleep(0.5)
            await self._leave()
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _leave(self) -> None:
        """Remove the heartbeat, and the consumer if it holds no pending entries (deleting a
        consumer drops its pending list, so one with pending work is left for a claim)."""
        try:
            await self.client.delete(self.keys.worker(self.worker_id))
            for stream in self.keys.all_work():
                pending = await self.client.xpending_range(stream, CONSUMER_GROUP, "-", "+", 1, consumername=self.worker_id)
                if not pending:
                    await self.client.xgroup_delconsumer(stream, CONSUMER_GROUP, self.worker_id)
        except (RedisError, OSError) as exc:
            log.warning("worker %s: could not deregister (%s)", self.worker_id, exc)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        interval_s = self.settings.worker_heartbeat_s
        ttl_ms = int(max(3 * interval_s, 1.0) * 1000)
        while not stop.is_set():
            notice = encode_worker_notice(self.worker_id, self.backend.info, self.settings.backend,
                                          self.batches_done, self._busy)
            try:
                await self.client.set(self.keys.worker(self.worker_id), notice, px=ttl_ms)
            except (RedisError, OSError):
                pass  # the main loop logs the outage; the heartbeat just tries again
            await _sleep_or_stop(stop, interval_s)

    # --- reading ----------------------------------------------------------------------------

    async def _next_deliveries(self, stop: asyncio.Event) -> list[Delivery]:
        deliveries = await self._claim_stale()
        for priority in range(len(PRIORITY_STREAMS)):
            room = self.max_entries - len(deliveries)
            if room <= 0:
                break
            deliveries += await self._read({self.keys.work(priority): ">"}, room, block_ms=None)
        if not deliveries and not stop.is_set():
            streams = {stream: ">" for stream in self.keys.all_work()}
            deliveries = await self._read(streams, self.max_entries, block_ms=READ_BLOCK_MS)
        return deliveries

    async def _read(self, streams: dict[str, str], count: int, block_ms: int | None) -> list[Delivery]:
        reply = await self.client.xreadgroup(CONSUMER_GROUP, self.worker_id, streams, count=count, block=block_ms)
        out = []
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append(_delivery(stream.decode(), entry_id, fields, deliveries=1))
        return out

    async def _claim_stale(self) -> list[Delivery]:
        out: list[Delivery] = []
        for stream in self.keys.all_work():
            room = self.max_entries - len(out)
            if room <= 0:
                break
            _, entries, _deleted = await self.client.xautoclaim(
                stream, CONSUMER_GROUP, self.worker_id, self.claim_idle_ms, start_id="0-0", count=room
            )
            for entry_id, fields in entries:
                info = await self.client.xpending_range(stream, CONSUMER_GROUP, entry_id, entry_id, 1)
                times = int(info[0]["times_delivered"]) if info else 1
                log.warning("worker %s claimed %s from a stalled worker (delivery %d)",
                            self.worker_id, entry_id.decode(), times)
                out.append(_delivery(stream, entry_id, fields, deliveries=times))
        return out

    # --- processing -------------------------------------------------------------------------

    async def _process(self, deliveries: list[Delivery]) -> None:
        now = time.time()
        outcomes: list[Outcome] = []
        runnable: list[Delivery] = []
        for d in deliveries:
            if d.envelope is None:
                payload = None
                if d.header and d.header.get("job_id"):
                    payload = encode_error("backend_error", f"the work entry could not be read ({d.error})", self.worker_id)
                log.error("worker %s: unreadable work entry %s (%s)", self.worker_id, d.entry_id, d.error)
                outcomes.append(Outcome(d, payload))
            elif d.envelope.deadline_unix_s <= now:
                outcomes.append(Outcome(d, None))  # its caller has given up; do not compute
            elif d.deliveries > self.settings.stream_max_deliveries:
                message = (f"the work was delivered {d.deliveries} times and no worker finished it "
                           "(each died or stalled while scoring it); it is not retried again")
                outcomes.append(Outcome(d, encode_error("backend_error", message, self.worker_id)))
            else:
                runnable.append(d)
        for batch in _sub_batches(runnable, self.settings.max_batch_items, self.settings.max_batch_audio_s):
            outcomes += await self._run_batch(batch)
        await self._write(outcomes)

    async def _run_batch(self, batch: list[Delivery]) -> list[Outcome]:
        started_unix_s = time.time()
        started = time.monotonic()
        keepalive = asyncio.create_task(self._keep_claimed(batch))
        self._busy = True
        try:
            compute = asyncio.ensure_future(asyncio.to_thread(self.backend.run_batch, [d.envelope.work for d in batch]))
            done, _ = await asyncio.wait({compute}, timeout=self.settings.worker_batch_timeout_s)
            if not done:
                # A thread cannot be cancelled: leave. The entries stay pending, another worker
                # claims them, and a batch that stalls every worker fails by delivery count.
                log.critical("worker %s: a batch of %d jobs is stuck after %.0f s (JUDGE_WORKER_BATCH_TIMEOUT_S); "
                             "exiting so the worker is restarted", self.worker_id, len(batch),
                             self.settings.worker_batch_timeout_s)
                logging.shutdown()
                os._exit(EXIT_STUCK)
            report = compute.result()
            if len(report.results) != len(batch):
                raise RuntimeError(f"backend returned {len(report.results)} results for {len(batch)} jobs")
        except Exception as exc:  # the backend failed the batch: tell each caller, keep looping
            log.exception("worker %s: backend failed a batch of %d jobs", self.worker_id, len(batch))
            message = (f"the judge backend failed on this request's batch ({type(exc).__name__}); "
                       "the request can be retried")
            return [Outcome(d, encode_error("backend_error", message, self.worker_id)) for d in batch]
        finally:
            self._busy = False
            keepalive.cancel()
            await asyncio.gather(keepalive, return_exceptions=True)
        compute_ms = (time.monotonic() - started) * 1000.0
        clips = sum(d.envelope.work.num_clips for d in batch)
        self.batches_done += 1
        self.jobs_done += len(batch)
        outcomes = []
        for d, result in zip(batch, report.results):
            timing = JobTiming(
                queue_ms=max(0.0, (started_unix_s - d.envelope.enqueued_unix_s) * 1000.0),
                compute_ms=compute_ms, batch_clips=clips, batch_jobs=len(batch),
                batch_unique_clips=report.unique_clips, stage_ms=report.stage_ms,
            )
            outcomes.append(Outcome(d, encode_result(result, timing)))
        return outcomes

    async def _keep_claimed(self, batch: list[Delivery]) -> None:
        """Reset the entries' idle time while they compute, so no other worker claims them."""
        by_stream: dict[str, list[bytes]] = {}
        for d in batch:
            by_stream.setdefault(d.stream, []).append(d.entry_id)
        while True:
            await asyncio.sleep(self.claim_idle_ms / 3000.0)
            for stream, ids in by_stream.items():
                try:
                    await self.client.xclaim(stream, CONSUMER_GROUP, self.worker_id, 0, ids, justid=True)
                except (RedisError, OSError):
                    pass

    async def _write(self, outcomes: list[Outcome]) -> None:
        """Store results, notify callers, then acknowledge, atomically (MULTI/EXEC). On a Redis
        error the outcomes are kept and written on the next turn of the loop."""
        if not outcomes:
            return
        ttl_s = self.settings.result_ttl_s
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for o in outcomes:
                    env = o.delivery.envelope
                    job_id = env.job_id if env else (o.delivery.header or {}).get("job_id")
                    reply_to = env.reply_to if env else (o.delivery.header or {}).get("reply_to")
                    if o.payload is not None and job_id and reply_to:
                        pipe.set(self.keys.result(job_id), o.payload, nx=True, ex=ttl_s)
                        pipe.rpush(self.keys.replies(reply_to), job_id)
                        pipe.expire(self.keys.replies(reply_to), ttl_s)
                    pipe.xack(o.delivery.stream, CONSUMER_GROUP, o.delivery.entry_id)
                    pipe.xdel(o.delivery.stream, o.delivery.entry_id)
                await pipe.execute()
        except (RedisError, OSError):
            self._unwritten = outcomes
            raise


def _delivery(stream: str, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Delivery:
    try:
        return Delivery(stream, entry_id, decode_work(fields), deliveries)
    except WireFormatError as exc:
        try:
            header = decode_header(fields)
        except WireFormatError:
            header = None
        return Delivery(stream, entry_id, None, deliveries, header=header, error=str(exc))


def _sub_batches(deliveries: list[Delivery], max_clips: int, max_audio_s: float) -> list[list[Delivery]]:
    """Greedy split in arrival order (urgent stream first) under the clip and padded-audio
    budgets; a job that alone exceeds them runs alone."""
    batches: list[list[Delivery]] = []
    current: list[Delivery] = []
    clips, longest_s = 0, 0.0
    for d in deliveries:
        work = d.envelope.work
        new_clips, new_longest = clips + work.num_clips, max(longest_s, work.longest_clip_s)
        if current and (new_clips > max_clips or new_clips * new_longest > max_audio_s):
            batches.append(current)
            current, new_clips, new_longest = [], work.num_clips, work.longest_clip_s
        current.append(d)
        clips, longest_s = new_clips, new_longest
    if current:
        batches.append(current)
    return batches


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def serve_worker(settings: Settings, backend: JudgeBackend | None = None) -> int:
    """Load the judge, then consume until SIGTERM/SIGINT; returns the process exit code."""
    from judge_service.backends.registry import create_backend

    if not settings.redis_url:
        raise ValueError("a worker needs JUDGE_REDIS_URL (the work streams live in Redis)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if backend is None:
        backend = await asyncio.to_thread(create_backend, settings)
    await asyncio.to_thread(backend.warm_up)
    client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0,
                                     socket_timeout=READ_BLOCK_MS / 1000.0 + 5.0)
    worker = StreamWorker(settings, backend, client)
    log.info("worker %s serving judge %s %s from %s", worker.worker_id, backend.info.name,
             backend.info.version, settings.redis_key_prefix + "work:*")
    try:
        while not stop.is_set():
            try:
                await ensure_groups(client, worker.keys)
                break
            except (RedisError, OSError) as exc:
                log.warning("worker %s: waiting for Redis (%s)", worker.worker_id, exc)
                await _sleep_or_stop(stop, 1.0)
        await worker.run(stop)
    finally:
        await client.aclose()
    log.info("worker %s stopped after %d batches (%d jobs)", worker.worker_id, worker.batches_done, worker.jobs_done)
    return 0
