"""The wire format and the worker loop, in-process against the real Redis."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import redis.asyncio as aioredis

from judge_service.audio import AudioLimits, decode_audio
from judge_service.backends.base import BackendJob, PairSpec
from judge_service.backends.fake import FakeBackendForTests
from judge_service.batching.queue import JobTiming
from judge_service.config import load_settings
from judge_service.distributed.keys import CONSUMER_GROUP, StreamKeys
from judge_service.distributed.wire import (
    WireFormatError,
    WorkEnvelope,
    decode_result,
    decode_work,
    encode_result,
    encode_work,
)
from judge_service.distributed.worker import StreamWorker, _sub_batches, ensure_groups
from judge_service.testing import voiced_wav
from tests.distributed.conftest import SHARED_REDIS_URL


def _clip(clip_id: str, seconds: float, seed: int):
    return decode_audio(clip_id, voiced_wav(seconds, seed=seed), AudioLimits())


def _job(seed: int, seconds: float = 1.0, labels: dict | None = None) -> BackendJob:
    return BackendJob(
        clips=[_clip(f"q{seed}", seconds, seed), _clip(f"r{seed}", seconds, seed + 1000)],
        clip_texts=[None, "client text"],
        pairs=[PairSpec(0, 1, labels or {})],
    )


def test_work_round_trip_keeps_samples_bit_exact():
    job = _job(1, labels={"emotion": "sad"})
    envelope = WorkEnvelope("job-1", "replica-a", job, 123.5, 100.25)
    back = decode_work(encode_work(envelope))
    assert back.job_id == "job-1" and back.reply_to == "replica-a"
    assert back.deadline_unix_s == 123.5 and back.enqueued_unix_s == 100.25
    assert back.work.clip_texts == [None, "client text"]
    assert back.work.pairs == job.pairs
    for original, decoded in zip(job.clips, back.work.clips):
        assert decoded.clip == original.clip
        assert decoded.samples.dtype == np.float32
        np.testing.assert_array_equal(decoded.samples, original.samples)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"header": b"not json", b"pcm": b""},
        {b"header": json.dumps({"v": 99}).encode(), b"pcm": b""},
        {b"header": json.dumps({"v": 1, "job_id": "x"}).encode(), b"pcm": b""},
    ],
)
def test_corrupt_work_entries_raise_wire_format_error(fields):
    with pytest.raises(WireFormatError):
        decode_work(fields)


def test_truncated_pcm_is_refused():
    fields = encode_work(WorkEnvelope("j", "r", _job(2), 1.0, 0.0))
    fields[b"pcm"] = fields[b"pcm"][:-4]
    with pytest.raises(WireFormatError, match="PCM bytes"):
        decode_work(fields)


def test_result_round_trip_and_errors():
    report = FakeBackendForTests().run_batch([_job(3)])
    timing = JobTiming(1.0, 2.0, 2, 1, 2, {"fake": 0.0})
    result, back_timing = decode_result(encode_result(report.results[0], timing))
    assert result == report.results[0] and back_timing == timing
    with pytest.raises(WireFormatError):
        decode_result(b"{}")


def test_sub_batches_respect_clip_and_padded_audio_budgets():
    from judge_service.distributed.worker import Delivery

    def delivery(seconds: float) -> Delivery:
        return Delivery("s", b"1-0", WorkEnvelope("j", "r", _job(4, seconds), 0.0, 0.0), 1)

    # 2 clips each: 3 jobs fit 6 clips; the 4th starts a new batch.
    batches = _sub_batches([delivery(1.0) for _ in range(4)], max_clips=6, max_audio_s=1000)
    assert [len(b) for b in batches] == [3, 1]
    # Padded audio: a 5 s job beside 1 s jobs pads them all to 5 s (4 clips x 5 s = 20 > 12).
    batches = _sub_batches([delivery(1.0), delivery(5.0), delivery(1.0)], max_clips=64, max_audio_s=12)
    assert [len(b) for b in batches] == [1, 1, 1]
    # A job over the budget alone still runs, alone.
    assert [len(b) for b in _sub_batches([delivery(10.0)], max_clips=1, max_audio_s=1)] == [1]


async def _run_worker_until(settings, check, timeout_s: float = 10.0) -> StreamWorker:
    client = aioredis.Redis.from_url(SHARED_REDIS_URL)
    worker = StreamWorker(settings, FakeBackendForTests(), client)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await check(client):
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.aclose()
    return worker


def _settings(prefix: str, **extra):
    return load_settings(backend="fake", mode="distributed", redis_url=SHARED_REDIS_URL,
                         redis_key_prefix=prefix, worker_id="w-test", **extra)


async def _pending(client, keys: StreamKeys) -> int:
    total = 0
    for stream in keys.all_work():
        info = await client.xpending(stream, CONSUMER_GROUP)
        total += info["pending"]
    return total


def test_poisoned_entries_fail_alone_and_are_acknowledged(prefix):
    settings = _settings(prefix)
    keys = StreamKeys(prefix)

    async def scenario():
        client = aioredis.Redis.from_url(SHARED_REDIS_URL)
        await ensure_groups(client, keys)
        good = encode_work(WorkEnvelope("good-job", "rep", _job(5), 4e9, 0.0))
        bad_pcm = dict(good)
        bad_pcm[b"header"] = bad_pcm[b"header"].replace(b"good-job", b"bad-job")
        bad_pcm[b"pcm"] = b"\x00\x01"
        await client.xadd(keys.work(0), {b"garbage": b"\xff\xfe"})
        await client.xadd(keys.work(0), bad_pcm)
        await client.xadd(keys.work(0), good)

        async def done(c):
            return await c.exists(keys.result("good-job"), keys.result("bad-job")) == 2

        await _run_worker_until(settings, done)
        good_result = decode_result(await client.get(keys.result("good-job")))
        bad_result = decode_result(await client.get(keys.result("bad-job")))
        assert not isinstance(good_result[0], str) and good_result[0].scores[0]["score"] >= 1.0
        assert bad_result[0] == "backend_error" and "could not be read" in bad_result[1]
        assert await client.lrange(keys.replies("rep"), 0, -1) == [b"bad-job", b"good-job"]
        assert await _pending(client, keys) == 0
        assert await client.xlen(keys.work(0)) == 0  # acknowledged and deleted, garbage too
        await client.aclose()

    asyncio.run(scenario())


def test_entry_delivered_too_often_fails_instead_of_killing_another_worker(prefix):
    settings = _settings(prefix, stream_claim_idle_s=0.2, stream_max_deliveries=2)
    keys = StreamKeys(prefix)

    async def scenario():
        client = aioredis.Redis.from_url(SHARED_REDIS_URL)
        await ensure_groups(client, keys)
        entry_id = await client.xadd(keys.work(1), encode_work(WorkEnvelope("doomed", "rep", _job(6), 4e9, 0.0)))
        # Two workers took it and died (delivery count 2); the next claim is delivery 3.
        await client.xreadgroup(CONSUMER_GROUP, "dead-1", {keys.work(1): ">"}, count=1)
        await client.xclaim(keys.work(1), CONSUMER_GROUP, "dead-2", 0, [entry_id])
        await asyncio.sleep(0.3)

        async def done(c):
            return await c.exists(keys.result("doomed")) == 1

        await _run_worker_until(settings, done)
        error_type, message = decode_result(await client.get(keys.result("doomed")))
        assert error_type == "backend_error" and "delivered 3 times" in message
        assert await _pending(client, keys) == 0
        await client.aclose()

    asyncio.run(scenario())


def test_expired_work_is_acknowledged_without_compute(prefix):
    settings = _settings(prefix)
    keys = StreamKeys(prefix)

    async def scenario():
        client = aioredis.Redis.from_url(SHARED_REDIS_URL)
        await ensure_groups(client, keys)
        await client.xadd(keys.work(0), encode_work(WorkEnvelope("late", "rep", _job(7), 1.0, 0.0)))

        async def drained(c):
            return await c.xlen(keys.work(0)) == 0

        worker = await _run_worker_until(settings, drained)
        assert worker.batches_done == 0
        assert await client.exists(keys.result("late")) == 0
        await client.aclose()

    asyncio.run(scenario())


def test_first_result_wins_when_a_job_runs_twice(prefix):
    """A claimed-and-recomputed job writes with SET NX: the caller sees the first answer."""
    settings = _settings(prefix)
    keys = StreamKeys(prefix)

    async def scenario():
        client = aioredis.Redis.from_url(SHARED_REDIS_URL)
        await ensure_groups(client, keys)
        await client.set(keys.result("twice"), b"first answer")
        await client.xadd(keys.work(0), encode_work(WorkEnvelope("twice", "rep", _job(8), 4e9, 0.0)))

        async def drained(c):
            return await c.xlen(keys.work(0)) == 0

        worker = await _run_worker_until(settings, drained)
        assert worker.batches_done == 1
        assert await client.get(keys.result("twice")) == b"first answer"
        await client.aclose()

    asyncio.run(scenario())
