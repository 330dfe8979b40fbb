"""Pure batching policy: which queued jobs form the next batch, and when.

No clocks, no I/O: the scheduler passes the queue's state and the time, and gets a decision.

Rules, in order:
  1. The *anchor* is the most urgent job: highest priority (lowest number), then oldest.
  2. Other jobs join by priority first, then by similar length (smallest |log length ratio|
     to the anchor's longest clip), then age, while the batch stays within
     ``max_items`` clips and ``max_audio_s`` of *padded* audio (longest clip x clips).
  3. A job that alone exceeds the limits still runs, alone (it is never starved).
  4. The batch runs now when it is full (no other queued job fits) or the anchor has waited
     ``max_wait_s``; otherwise the decision says how long to wait before asking again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

PRIORITY_INTERACTIVE = 0
PRIORITY_BULK = 1
PRIORITIES = {"interactive": PRIORITY_INTERACTIVE, "bulk": PRIORITY_BULK}


@dataclass(frozen=True)
class QueuedJob:
    """What the policy needs to know of a queued job."""

    job_id: int
    priority: int
    enqueued_s: float
    num_clips: int
    longest_clip_s: float


@dataclass(frozen=True)
class BatchLimits:
    max_items: int
    max_audio_s: float
    max_wait_s: float


@dataclass(frozen=True)
class BatchDecision:
    """``job_ids`` to run now (empty: nothing yet), else re-decide after ``wait_s`` seconds or
    when a job arrives."""

    job_ids: tuple[int, ...]
    wait_s: float


def padded_audio_s(jobs: Sequence[QueuedJob]) -> float:
    """Audio the backend processes for these jobs once padded: longest clip x total clips."""
    if not jobs:
        return 0.0
    return max(j.longest_clip_s for j in jobs) * sum(j.num_clips for j in jobs)


def _length_distance(job: QueuedJob, anchor_s: float) -> float:
    return abs(math.log(max(job.longest_clip_s, 1e-3) / max(anchor_s, 1e-3)))


def select_batch(queued: Sequence[QueuedJob], now_s: float, limits: BatchLimits) -> BatchDecision:
    """Decide the next batch; see the module docstring."""
    if not queued:
        return BatchDecision((), math.inf)
    anchor = min(queued, key=lambda j: (j.priority, j.enqueued_s, j.job_id))
    chosen = [anchor]
    items = anchor.num_clips
    longest_s = anchor.longest_clip_s
    others = sorted(
        (j for j in queued if j.job_id != anchor.job_id),
        key=lambda j: (j.priority, _length_distance(j, anchor.longest_clip_s), j.enqueued_s, j.job_id),
    )
    left_out = 0
    for job in others:
        new_items = items + job.num_clips
        new_longest_s = max(longest_s, job.longest_clip_s)
        if new_items <= limits.max_items and new_longest_s * new_items <= limits.max_audio_s:
            chosen.append(job)
            items, longest_s = new_items, new_longest_s
        else:
            left_out += 1
    full = left_out > 0 or items >= limits.max_items
    waited_s = now_s - anchor.enqueued_s
    if full or waited_s >= limits.max_wait_s:
        return BatchDecision(tuple(j.job_id for j in chosen), 0.0)
    return BatchDecision((), limits.max_wait_s - waited_s)
