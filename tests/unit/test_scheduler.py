"""The scheduler loop with the fake backend, in-process (no HTTP)."""

from __future__ import annotations

import asyncio
import time

import pytest

from judge_service.audio import AudioLimits, decode_audio
from judge_service.backends.base import BackendJob, PairSpec
from judge_service.backends.fake import FAIL_BATCH_TEXT, FakeBackendForTests
from judge_service.batching.policy import PRIORITY_BULK, PRIORITY_INTERACTIVE, BatchLimits
from judge_service.batching.scheduler import Scheduler
from judge_service.errors import BackendError, DeadlineExceededError, QueueFullError
from judge_service.metrics import ServiceMetrics
from judge_service.testing import metric_value, voiced_wav


def pair_job(seed: int, text: str | None = None) -> BackendJob:
    q = decode_audio(f"q{seed}", voiced_wav(0.5, seed=seed), AudioLimits())
    r = decode_audio(f"r{seed}", voiced_wav(0.5, seed=seed + 1000), AudioLimits())
    return BackendJob([q, r], [text, None], [PairSpec(0, 1)])


def make_scheduler(delay_ms=0.0, max_items=8, max_wait_s=0.005, queue=64):
    backend = FakeBackendForTests(delay_ms=delay_ms)
    metrics = ServiceMetrics()
    return Scheduler(backend, BatchLimits(max_items, 1000.0, max_wait_s), queue, metrics), backend, metrics


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_are_batched():
    async def scenario():
        scheduler, backend, _ = make_scheduler(delay_ms=50)
        scheduler.start()
        jobs = scheduler.submit([pair_job(i) for i in range(8)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        results = await asyncio.gather(*(j.future for j in jobs))
        await scheduler.stop()
        return results, backend.batches

    results, batches = run(scenario())
    assert len(results) == 8 and sum(batches) == 16
    assert batches[0] == 8, "the first batch takes max_batch_items clips"
    result, timing = results[0]
    assert 1.0 <= result.scores[0]["score"] <= 5.0
    assert timing.batch_clips == 8 and timing.compute_ms >= 50


def test_backend_error_reaches_every_job_of_the_batch_and_loop_survives():
    async def scenario():
        scheduler, _, metrics = make_scheduler(max_wait_s=0.05)
        scheduler.start()
        doomed = scheduler.submit([pair_job(1, FAIL_BATCH_TEXT), pair_job(2)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        outcomes = await asyncio.gather(*(j.future for j in doomed), return_exceptions=True)
        later = scheduler.submit([pair_job(3)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        fine = await later[0].future
        await scheduler.stop()
        return outcomes, fine, metrics.render().decode()

    outcomes, fine, text = run(scenario())
    assert all(isinstance(o, BackendError) for o in outcomes)
    assert outcomes[0].error_type == "backend_error"
    assert fine[0].scores[0]["score"] >= 1.0
    assert metric_value(text, "judge_backend_failures_total") == 1


def test_full_queue_rejects_at_once_with_retry_after():
    async def scenario():
        scheduler, _, metrics = make_scheduler(queue=8)  # not started: nothing drains
        scheduler.submit([pair_job(i) for i in range(4)], PRIORITY_BULK, time.monotonic() + 10)
        started = time.monotonic()
        with pytest.raises(QueueFullError) as raised:
            scheduler.submit([pair_job(9)], PRIORITY_BULK, time.monotonic() + 10)
        elapsed = time.monotonic() - started
        return raised.value, elapsed, metrics.render().decode()

    error, elapsed, text = run(scenario())
    assert error.retry_after_s >= 1 and elapsed < 0.05
    assert metric_value(text, "judge_rejections_total", reason="queue_full") == 1


def test_admission_is_all_or_nothing():
    async def scenario():
        scheduler, _, _ = make_scheduler(queue=8)
        scheduler.submit([pair_job(0)], PRIORITY_BULK, time.monotonic() + 10)
        with pytest.raises(QueueFullError):
            scheduler.submit([pair_job(i) for i in range(1, 5)], PRIORITY_BULK, time.monotonic() + 10)
        return scheduler.queue.num_items

    assert run(scenario()) == 2


def test_expired_job_is_dropped_before_compute():
    async def scenario():
        scheduler, backend, metrics = make_scheduler(delay_ms=200, max_items=2)
        scheduler.start()
        first = scheduler.submit([pair_job(1)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        await asyncio.sleep(0.02)  # first batch is now computing for 200 ms
        late = scheduler.submit([pair_job(2)], PRIORITY_INTERACTIVE, time.monotonic() + 0.05)
        outcome = await asyncio.gather(late[0].future, return_exceptions=True)
        await first[0].future
        await scheduler.stop()
        return outcome[0], backend.batches, metrics.render().decode()

    outcome, batches, text = run(scenario())
    assert isinstance(outcome, DeadlineExceededError)
    assert batches == [2], "the expired job never reached the backend"
    assert metric_value(text, "judge_dropped_jobs_total", reason="deadline_exceeded") == 1


def test_cancelled_job_is_dropped_from_the_queue():
    async def scenario():
        scheduler, backend, metrics = make_scheduler(delay_ms=100, max_items=2)
        scheduler.start()
        first = scheduler.submit([pair_job(1)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        await asyncio.sleep(0.02)
        gone = scheduler.submit([pair_job(2)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        scheduler.cancel(gone[0])
        await first[0].future
        await asyncio.sleep(0.05)
        await scheduler.stop()
        return backend.batches, metrics.render().decode()

    batches, text = run(scenario())
    assert batches == [2]
    assert metric_value(text, "judge_dropped_jobs_total", reason="client_disconnected") == 1


def test_interactive_overtakes_queued_bulk():
    async def scenario():
        scheduler, backend, _ = make_scheduler(delay_ms=60, max_items=2)
        scheduler.start()
        order: list[str] = []
        busy = scheduler.submit([pair_job(0)], PRIORITY_BULK, time.monotonic() + 10)
        await asyncio.sleep(0.02)
        bulk = scheduler.submit([pair_job(i) for i in range(1, 4)], PRIORITY_BULK, time.monotonic() + 10)
        urgent = scheduler.submit([pair_job(9)], PRIORITY_INTERACTIVE, time.monotonic() + 10)
        for name, jobs in (("bulk", bulk), ("urgent", urgent)):
            for job in jobs:
                job.future.add_done_callback(lambda _f, n=name: order.append(n))
        await asyncio.gather(*(j.future for j in busy + bulk + urgent))
        await scheduler.stop()
        return order

    assert run(scenario())[0] == "urgent"


def test_stop_drains_queued_work():
    async def scenario():
        scheduler, _, _ = make_scheduler(delay_ms=20, max_items=2)
        scheduler.start()
        jobs = scheduler.submit([pair_job(i) for i in range(5)], PRIORITY_BULK, time.monotonic() + 10)
        await scheduler.stop(drain_timeout_s=5)
        return [j.future.done() and j.future.exception() is None for j in jobs]

    assert all(run(scenario()))
