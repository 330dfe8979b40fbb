"""The benchmark's judge client against a real (fake-backend) judge with a tiny queue."""

from __future__ import annotations

import asyncio

from benchmark_client.judge_client import JudgeClient, parse_server_timing
from judge_service.testing import RunningServer, voiced_wav


def test_parse_server_timing() -> None:
    assert parse_server_timing("features;dur=1.5, asr;dur=20.25,rubric;dur=0.1") == {
        "features": 1.5, "asr": 20.25, "rubric": 0.1}
    assert parse_server_timing("odd;desc=x, bad;dur=nan?, ;dur=3") == {}


def test_full_queue_429s_are_retried_until_every_pair_is_scored() -> None:
    env = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_FAKE_BACKEND_DELAY_MS": "150",
           "JUDGE_MAX_QUEUE_ITEMS": "4", "JUDGE_MAX_GROUP_SIZE": "2", "JUDGE_MAX_BATCH_ITEMS": "2", "JUDGE_CACHE_MAX_ENTRIES": "0"}
    with RunningServer(env) as server:

        async def score_all():
            client = JudgeClient(server.url)
            try:
                return await asyncio.gather(*(client.score(f"p{k}", voiced_wav(0.5, seed=k), voiced_wav(0.4, seed=100 + k))
                                              for k in range(12)))  # fmt: skip
            finally:
                await client.aclose()

        verdicts = asyncio.run(score_all())
    assert all(v.error is None and 1.0 <= v.result["score"] <= 5.0 for v in verdicts)
    assert max(v.timing["attempts"] for v in verdicts) > 1  # the queue did overflow, and nothing was lost
    assert all(v.judge["name"] == "fake-for-tests-only" for v in verdicts)
    assert all(v.timing["server_total_ms"] > 0 and "stages_ms" in v.timing for v in verdicts)


def test_unreachable_judge_is_an_error_not_an_exception() -> None:
    from judge_service.testing import free_port

    async def one():
        client = JudgeClient(f"http://127.0.0.1:{free_port()}", max_retries=1)
        try:
            return await client.score("x", voiced_wav(0.3), voiced_wav(0.3))
        finally:
            await client.aclose()

    verdict = asyncio.run(one())
    assert verdict.result is None and verdict.error["type"] == "judge_unreachable"
