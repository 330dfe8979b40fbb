"""The scheduler: a background task that forms batches with the policy and runs them.

One batch computes at a time, in a worker thread, so the event loop keeps accepting and
rejecting requests meanwhile. Results and errors fan out to each job's future. A backend
exception fails only its batch (every job gets a ``BackendError``); the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from judge_service.backends.base import BackendJob, JudgeBackend
from judge_service.batching.policy import BatchLimits, select_batch
from judge_service.batching.queue import JobQueue, JobTiming, ScheduledJob
from judge_service.errors import (
    BackendError,
    ClientDisconnectedError,
    DeadlineExceededError,
    JudgeError,
    ShuttingDownError,
)
from judge_service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class Scheduler:
    """Owns the queue and the batching loop for one backend."""

    def __init__(
        self,
        backend: JudgeBackend,
        limits: BatchLimits,
        max_queue_items: int,
        metrics: ServiceMetrics,
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.metrics = metrics
        self.queue = JobQueue(max_queue_items)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._running: list[ScheduledJob] = []

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="judge-scheduler")

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop taking work, finish the queue (up to ``drain_timeout_s``), then end the loop."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout_s
        while (self.queue.num_jobs or self._running) and time.monotonic() < deadline:
            self.queue.changed.set()
            await asyncio.sleep(0.02)
        for job in self.queue.jobs():
            self.queue.discard(job)
            fail_future(job.future, ShuttingDownError("the service is shutting down; retry on another replica"))
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # --- submission -------------------------------------------------------------------------

    def submit(self, works: list[BackendJob], priority: int, deadline_s: float) -> list[ScheduledJob]:
        """Queue jobs (all or none); raises ``QueueFullError`` or ``ShuttingDownError``."""
        if self._stopping:
            raise ShuttingDownError("the service is shutting down; retry on another replica")
        loop = asyncio.get_running_loop()
        jobs = [ScheduledJob(w, priority, deadline_s, loop.create_future()) for w in works]
        try:
            self.queue.put_all(jobs)
        except JudgeError:
            self.metrics.rejections.labels(reason="queue_full").inc()
            raise
        self._update_gauges()
        return jobs

    def cancel(self, job: ScheduledJob) -> None:
        """The caller went away: drop the job if queued, discard its result if running."""
        job.cancelled = True
        if self.queue.discard(job):
            self.metrics.dropped_jobs.labels(reason="client_disconnected").inc()
            fail_future(job.future, ClientDisconnectedError("the client disconnected"))
            self._update_gauges()

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self.queue.changed.clear()
            self._expire_jobs()
            decision = select_batch(self.queue.views(), time.monotonic(), self.limits)
            if not decision.job_ids:
                try:
                    timeout = None if decision.wait_s == float("inf") else decision.wait_s
                    await asyncio.wait_for(self.queue.changed.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            jobs = self.queue.take(decision.job_ids)
            self._update_gauges()
            await self._run(jobs)

    def _expire_jobs(self) -> None:
        now = time.monotonic()
        for job in self.queue.jobs():
            if job.deadline_s <= now:
                self.queue.discard(job)
                self.metrics.dropped_jobs.labels(reason="deadline_exceeded").inc()
                fail_future(job.future, DeadlineExceededError("the request's deadline passed while it was queued"))

    async def _run(self, jobs: list[ScheduledJob]) -> None:
        started = time.monotonic()
        clips = sum(job.work.num_clips for job in jobs)
        longest_s = max(job.work.longest_clip_s for job in jobs)
        self.metrics.batch_clips.observe(clips)
        self.metrics.batch_audio_s.observe(longest_s * clips)
        for job in jobs:
            self.metrics.queue_time_s.observe(started - job.enqueued_s)
        self._running = jobs
        try:
            report = await asyncio.to_thread(self.backend.run_batch, [job.work for job in jobs])
            if len(report.results) != len(jobs):
                raise RuntimeError(
                    f"backend returned {len(report.results)} results for {len(jobs)} jobs"
                )
        except Exception as exc:  # the backend failed the batch: tell each job, keep looping
            log.exception("backend %s failed a batch of %d jobs", self.backend.info.name, len(jobs))
            self.metrics.backend_failures.inc()
            error = BackendError(
                f"the judge backend failed on this request's batch ({type(exc).__name__}); "
                "the request can be retried"
            )
            for job in jobs:
                fail_future(job.future, error)
            return
        finally:
            self._running = []
        finished = time.monotonic()
        compute_s = finished - started
        self.metrics.compute_time_s.observe(compute_s)
        for stage, stage_ms in report.stage_ms.items():
            self.metrics.stage_time_s.labels(stage=stage).observe(stage_ms / 1000.0)
        self.queue.record_throughput(clips, compute_s)
        for job, result in zip(jobs, report.results):
            if job.cancelled or job.future.done():
                continue
            timing = JobTiming(
                queue_ms=(started - job.enqueued_s) * 1000.0,
                compute_ms=compute_s * 1000.0,
                batch_clips=clips,
                batch_jobs=len(jobs),
                batch_unique_clips=report.unique_clips,
                stage_ms=report.stage_ms,
            )
            job.future.set_result((result, timing))

    def _update_gauges(self) -> None:
        self.metrics.queue_depth_clips.set(self.queue.num_items)
        self.metrics.queue_depth_jobs.set(self.queue.num_jobs)


def fail_future(future: asyncio.Future[Any], error: JudgeError) -> None:
    """Fail a job's future (once), shared with the distributed mode's dispatcher."""
    if not future.done():
        future.set_exception(error)
        # The caller may have gone; do not let asyncio warn about a never-retrieved error.
        future.add_done_callback(_consume_exception)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
