"""The trainer's judge client against real judge processes (fake backend: HTTP and scheduling)."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from judge_service.testing import RunningServer, free_port, metric_value, voiced_wav
from trainer_client.client import (
    ClipBudget,
    JudgeClient,
    JudgeDeadlineError,
    JudgeRequestError,
    JudgeUnavailableError,
    Pair,
    SyncJudgeClient,
    group_stats,
)

FAKE = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_CACHE_MAX_ENTRIES": "0"}


@pytest.fixture(scope="module")
def small_limits_server():
    env = {**FAKE, "JUDGE_MAX_ITEMS_PER_REQUEST": "3", "JUDGE_MAX_GROUP_SIZE": "4"}
    with RunningServer(env) as server:
        yield server


def _requests(url: str, route: str) -> float:
    return metric_value(httpx.get(url + "/metrics").text, "judge_requests_total", route=route)


def _pairs(n: int, seed: int = 0) -> list[Pair]:
    return [Pair(query=voiced_wav(0.5, seed=seed + k), response=voiced_wav(0.4, seed=seed + 100 + k), id=f"p{k}")
            for k in range(n)]  # fmt: skip


def test_pairs_are_chunked_to_the_servers_limit_and_keep_their_order(small_limits_server) -> None:
    url = small_limits_server.url
    before = _requests(url, "/v1/score")

    async def go():
        async with JudgeClient(url) as judge:
            return await judge.score(_pairs(8))

    scores = asyncio.run(go())
    assert [s.id for s in scores] == [f"p{k}" for k in range(8)]
    assert all(1.0 <= s.score <= 5.0 and s.error is None for s in scores)
    assert _requests(url, "/v1/score") - before == 3  # 3 + 3 + 2
    with SyncJudgeClient(url) as judge:  # the same scores one pair at a time
        assert [judge.score([p])[0].score for p in _pairs(8)] == [s.score for s in scores]


def test_big_groups_are_split_with_the_services_statistics(small_limits_server) -> None:
    query = voiced_wav(0.6, seed=7)
    responses = [voiced_wav(0.5, seed=200 + k) for k in range(10)]
    with SyncJudgeClient(small_limits_server.url) as judge:
        whole = judge.score_group(query, responses)  # 10 > max_group_size 4: split 4 + 4 + 2
        small = judge.score_group(query, responses[:4])  # one /v1/score/group call, stats by the service
    assert len(whole.scores) == 10 and all(s.score is not None for s in whole.scores)
    mean, std, advantages = group_stats([s.score for s in whole.scores])
    assert (whole.mean, whole.std) == pytest.approx((mean, std)) and whole.advantages == pytest.approx(advantages)
    assert [s.score for s in small.scores] == [s.score for s in whole.scores[:4]]
    s_mean, s_std, s_adv = group_stats([s.score for s in small.scores])
    assert (small.mean, small.std) == pytest.approx((s_mean, s_std)) and small.advantages == pytest.approx(s_adv)


def test_one_bad_pair_is_its_own_error_and_a_bad_request_raises(small_limits_server) -> None:
    pairs = _pairs(3)
    pairs[1] = Pair(query=b"not audio at all", response=voiced_wav(0.4), id="bad")
    with SyncJudgeClient(small_limits_server.url) as judge:
        scores = judge.score(pairs)
        assert scores[1].score is None and scores[1].error.type == "audio_unreadable"
        assert scores[0].score is not None and scores[2].score is not None
        with pytest.raises(JudgeRequestError) as info:
            judge.score([Pair(voiced_wav(0.5), voiced_wav(0.5), labels={"emotion": "ecstatic"})])
        assert info.value.status == 422
        with pytest.raises(ValueError, match="unique"):
            judge.score([Pair(voiced_wav(0.5), voiced_wav(0.5), id="x")] * 2)


def test_a_timed_out_attempt_is_retried_without_scoring_twice() -> None:
    env = {**FAKE, "JUDGE_FAKE_BACKEND_DELAY_MS": "1500"}
    with RunningServer(env) as server:
        before = metric_value(httpx.get(server.url + "/metrics").text, "judge_compute_time_seconds_count")
        with SyncJudgeClient(server.url, request_timeout_s=0.5, backoff_s=0.05, max_retries=10) as judge:
            scores = judge.score(_pairs(1, seed=50))
        assert scores[0].score is not None
        after = metric_value(httpx.get(server.url + "/metrics").text, "judge_compute_time_seconds_count")
        assert after - before == 1  # 3+ attempts, one scoring: the retries waited for the first attempt
        with SyncJudgeClient(server.url, deadline_s=0.6, request_timeout_s=0.2, backoff_s=0.05) as judge:
            with pytest.raises(JudgeDeadlineError, match="deadline passed"):
                judge.score(_pairs(1, seed=60))


def test_pairs_the_server_dropped_at_its_deadline_are_resent() -> None:
    """A bulk call fills the server's queue; where the server drains it slower than its request
    deadline, the tail comes back ``deadline_exceeded``, unscored, and the client resends it."""
    env = {**FAKE, "JUDGE_FAKE_BACKEND_DELAY_MS": "200", "JUDGE_MAX_BATCH_ITEMS": "4", "JUDGE_REQUEST_TIMEOUT_S": "1.5",
           "JUDGE_MAX_ITEMS_PER_REQUEST": "4", "JUDGE_MAX_GROUP_SIZE": "4"}  # fmt: skip

    def groups(seed: int) -> list:
        return [(voiced_wav(0.5, seed=seed + 100 * g), [voiced_wav(0.4, seed=seed + 100 * g + 1 + k) for k in range(8)])
                for g in range(6)]  # fmt: skip

    with RunningServer(env) as server:
        with SyncJudgeClient(server.url, max_retries=0) as judge:  # what the server does to a bulk call
            once = judge.score(_pairs(40, seed=700))
            once_groups = judge.score_groups(groups(2000))
        for results in (once, [s for g in once_groups for s in g.scores]):
            dropped = [s for s in results if s.error is not None]
            assert dropped and {s.error.type for s in dropped} == {"deadline_exceeded"}
        with SyncJudgeClient(server.url, backoff_s=0.05) as judge:
            scores = judge.score(_pairs(40, seed=800))
            scored_groups = judge.score_groups(groups(4000))
        assert [s.id for s in scores] == [f"p{k}" for k in range(40)] and all(s.score is not None for s in scores)
        for group in scored_groups:
            assert all(s.score is not None for s in group.scores)
            assert (group.mean, group.std, group.advantages) == group_stats([s.score for s in group.scores])


def test_429s_are_retried_after_retry_after() -> None:
    env = {**FAKE, "JUDGE_FAKE_BACKEND_DELAY_MS": "200", "JUDGE_MAX_QUEUE_ITEMS": "4", "JUDGE_MAX_GROUP_SIZE": "2",
           "JUDGE_MAX_BATCH_ITEMS": "2"}  # fmt: skip
    with RunningServer(env) as server:
        before = _requests(server.url, "/v1/score")

        async def one_client(k: int):  # separate clients: one client alone keeps within the queue
            async with JudgeClient(server.url, max_retries=20) as judge:
                return await judge.score(_pairs(1, seed=300 + 2 * k))

        async def go():
            return await asyncio.gather(*(one_client(k) for k in range(12)))

        results = asyncio.run(go())
        assert all(r[0].score is not None for r in results)
        text = httpx.get(server.url + "/metrics").text
        assert metric_value(text, "judge_requests_total", route="/v1/score", status="429") > 0
        assert _requests(server.url, "/v1/score") - before > 12


def test_one_client_keeps_its_chunks_within_the_servers_queue() -> None:
    """20 pairs in chunks of 2 pairs (4 clips), up to 12 chunks at once, against a queue of 8
    clips: without the clip budget 48 clips arrive at once and most chunks get 429s."""
    env = {**FAKE, "JUDGE_FAKE_BACKEND_DELAY_MS": "100", "JUDGE_MAX_QUEUE_ITEMS": "8", "JUDGE_MAX_GROUP_SIZE": "2",
           "JUDGE_MAX_BATCH_ITEMS": "4", "JUDGE_MAX_ITEMS_PER_REQUEST": "2"}  # fmt: skip
    with RunningServer(env) as server:
        with SyncJudgeClient(server.url, max_concurrent_requests=12, max_retries=0) as judge:
            scores = judge.score(_pairs(20, seed=500))
            group = judge.score_group(voiced_wav(0.5, seed=9), [voiced_wav(0.4, seed=600 + k) for k in range(6)])
        assert [s.id for s in scores] == [f"p{k}" for k in range(20)] and all(s.score is not None for s in scores)
        assert all(s.score is not None for s in group.scores)
        text = httpx.get(server.url + "/metrics").text
        assert metric_value(text, "judge_requests_total", route="/v1/score", status="429") == 0
        assert metric_value(text, "judge_requests_total", route="/v1/score/group", status="429") == 0
        assert _requests(server.url, "/v1/score") == 10


def test_clip_budget_admits_what_fits_and_an_oversized_request_alone() -> None:
    async def go():
        budget = ClipBudget(8)
        first = await budget.acquire(6)
        waiting = asyncio.ensure_future(budget.acquire(4))
        await asyncio.sleep(0.05)
        assert not waiting.done() and budget.in_flight == 6  # 6 + 4 > 8: waits
        budget.release(first)
        assert await asyncio.wait_for(waiting, 1.0) == 4 and budget.in_flight == 4
        with pytest.raises(asyncio.TimeoutError):
            await budget.acquire(6, timeout_s=0.05)  # 4 + 6 > 8: gives up, takes nothing
        assert budget.in_flight == 4
        cancelled = asyncio.ensure_future(budget.acquire(6))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.sleep(0.01)
        assert cancelled.cancelled() and budget.in_flight == 4
        budget.release(4)
        assert await budget.acquire(100) == 8 and budget.in_flight == 8  # too big for any budget: alone
        unlimited = ClipBudget(None)
        assert await unlimited.acquire(10**6) == 0

    asyncio.run(go())


def test_unavailable_and_wait_until_ready() -> None:
    port = free_port()
    with SyncJudgeClient(f"http://127.0.0.1:{port}", max_retries=1, backoff_s=0.01) as judge:
        with pytest.raises(JudgeUnavailableError, match="gave up after 2 attempts"):
            judge.score(_pairs(1))
    server = RunningServer(FAKE, port=port)
    starter = threading.Thread(target=lambda: (time.sleep(0.5), server.start()))
    starter.start()
    try:
        with SyncJudgeClient(f"http://127.0.0.1:{port}") as judge:
            info = judge.wait_until_ready(timeout_s=60)
            assert info.name == "fake-for-tests-only" and info.max_items_per_request >= 1
    finally:
        starter.join()
        server.stop()


def test_sync_client_works_inside_a_running_event_loop(small_limits_server) -> None:
    async def inside_a_loop():
        with SyncJudgeClient(small_limits_server.url) as judge:
            return judge.score(_pairs(2))

    assert len(asyncio.run(inside_a_loop())) == 2
