"""The bounded job queue, counted in clips, with all-or-nothing admission.

Single-threaded by design: only the event loop touches it (routes put, the scheduler takes).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from judge_service.backends.base import BackendJob
from judge_service.batching.policy import QueuedJob
from judge_service.errors import QueueFullError


@dataclass(eq=False)
class ScheduledJob:
    """A job on its way through the scheduler. ``future`` receives ``(JobResult, JobTiming)``
    or a ``JudgeError``."""

    work: BackendJob
    priority: int
    deadline_s: float
    future: asyncio.Future[Any]
    job_id: int = 0
    enqueued_s: float = 0.0
    cancelled: bool = False

    def view(self) -> QueuedJob:
        return QueuedJob(
            job_id=self.job_id,
            priority=self.priority,
            enqueued_s=self.enqueued_s,
            num_clips=self.work.num_clips,
            longest_clip_s=self.work.longest_clip_s,
        )


@dataclass(frozen=True)
class JobTiming:
    """Where a job's time went, in milliseconds, and the batch it ran in."""

    queue_ms: float
    compute_ms: float
    batch_clips: int
    batch_jobs: int
    batch_unique_clips: int
    stage_ms: dict[str, float] = field(default_factory=dict)


class JobQueue:
    """Pending jobs, bounded by ``max_items`` clips in total."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._jobs: dict[int, ScheduledJob] = {}
        self._ids = itertools.count(1)
        self._items = 0
        self.changed = asyncio.Event()
        self._clips_per_s_ewma: float | None = None

    @property
    def num_items(self) -> int:
        return self._items

    @property
    def num_jobs(self) -> int:
        return len(self._jobs)

    def put_all(self, jobs: list[ScheduledJob]) -> None:
        """Enqueue every job or none: raises ``QueueFullError`` with a Retry-After estimate."""
        needed = sum(job.work.num_clips for job in jobs)
        if self._items + needed > self.max_items:
            raise QueueFullError(
                f"the queue is full ({self._items} of {self.max_items} clips waiting, this "
                f"request needs {needed}); retry later",
                retry_after_s=self.retry_after_s(needed),
            )
        now = time.monotonic()
        for job in jobs:
            job.job_id = next(self._ids)
            job.enqueued_s = now
            self._jobs[job.job_id] = job
            self._items += job.work.num_clips
        self.changed.set()

    def views(self) -> list[QueuedJob]:
        return [job.view() for job in self._jobs.values()]

    def jobs(self) -> list[ScheduledJob]:
        return list(self._jobs.values())

    def take(self, job_ids: tuple[int, ...]) -> list[ScheduledJob]:
        taken = [self._jobs.pop(job_id) for job_id in job_ids]
        self._items -= sum(job.work.num_clips for job in taken)
        return taken

    def discard(self, job: ScheduledJob) -> bool:
        """Remove a queued job (cancelled or expired); False if it already left the queue."""
        if self._jobs.pop(job.job_id, None) is None:
            return False
        self._items -= job.work.num_clips
        self.changed.set()
        return True

    def record_throughput(self, clips: int, seconds: float) -> None:
        """Feed the Retry-After estimate with a finished batch."""
        if seconds <= 0:
            return
        rate = clips / seconds
        self._clips_per_s_ewma = rate if self._clips_per_s_ewma is None else (
            0.8 * self._clips_per_s_ewma + 0.2 * rate
        )

    def retry_after_s(self, needed_items: int) -> int:
        """Whole seconds until enough of the queue should have drained (at least 1)."""
        rate = self._clips_per_s_ewma or 1.0
        excess = self._items + needed_items - self.max_items
        return max(1, math.ceil(excess / rate))
