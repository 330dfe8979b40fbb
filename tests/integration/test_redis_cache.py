"""The Redis score cache against the real Redis at 127.0.0.1:6379 (and a private one we kill)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import httpx
import pytest
import redis

from judge_service.cache import RedisCache
from judge_service.metrics import ServiceMetrics
from judge_service.testing import RunningServer, b64, free_port, metric_value, voiced_wav


@pytest.fixture
def redis_client(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {redis_url}; it runs on every machine of this project")
    yield client
    keys = list(client.scan_iter(match=redis_prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_round_trip_with_ttl(redis_client, redis_url, redis_prefix):
    metrics = ServiceMetrics()
    cache = RedisCache(redis_url, redis_prefix, ttl_s=60, retry_interval_s=1.0, metrics=metrics)

    async def scenario():
        await cache.set_many({"score:abc": {"score": 4.5}})
        found = await cache.get_many(["score:abc", "score:missing"])
        await cache.close()
        return found

    assert asyncio.run(scenario()) == [{"score": 4.5}, None]
    assert 0 < redis_client.ttl(redis_prefix + "score:abc") <= 60
    text = metrics.render().decode()
    assert metric_value(text, "judge_cache_lookups_total", result="hit") == 1
    assert metric_value(text, "judge_cache_available") == 1


def test_unreachable_redis_is_a_fast_miss_not_an_error():
    metrics = ServiceMetrics()
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", "x:", ttl_s=60, retry_interval_s=30.0, metrics=metrics)

    async def scenario():
        started = time.perf_counter()
        first = await cache.get_many(["a"])
        await cache.set_many({"a": {"v": 1}})
        second = await cache.get_many(["a"])  # within the retry interval: not even tried
        elapsed = time.perf_counter() - started
        await cache.close()
        return first, second, elapsed

    first, second, elapsed = asyncio.run(scenario())
    assert first == [None] and second == [None] and elapsed < 1.5
    text = metrics.render().decode()
    assert metric_value(text, "judge_cache_available") == 0
    assert metric_value(text, "judge_cache_lookups_total", result="error") == 2


def _pair(seed: int) -> dict:
    return {"items": [{"id": "p", "query": {"audio": b64(voiced_wav(0.5, seed=seed))},
                       "response": {"audio": b64(voiced_wav(0.5, seed=seed + 1))}}]}


def test_replicas_share_scores_through_redis(redis_client, redis_url, redis_prefix):
    env = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": redis_url, "JUDGE_REDIS_KEY_PREFIX": redis_prefix}
    with RunningServer(env) as first, RunningServer(env) as second:
        a = httpx.post(first.url + "/v1/score", json=_pair(11)).json()["results"][0]
        b = httpx.post(second.url + "/v1/score", json=_pair(11)).json()["results"][0]
    assert a["cached"] is False and b["cached"] is True and a["score"] == b["score"]
    assert len(list(redis_client.scan_iter(match=redis_prefix + "score:*"))) == 1


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not installed")
def test_redis_outage_mid_run_keeps_scoring_and_recovers():
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    private = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        _wait_redis(port)
        env = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
               "JUDGE_REDIS_RETRY_INTERVAL_S": "0.5"}
        with RunningServer(env) as server:
            assert httpx.post(server.url + "/v1/score", json=_pair(1)).json()["results"][0]["cached"] is False
            assert httpx.post(server.url + "/v1/score", json=_pair(1)).json()["results"][0]["cached"] is True
            private.terminate()
            private.wait(timeout=10)
            for seed in (1, 2, 3):  # Redis is gone: still scored, just not cached
                reply = httpx.post(server.url + "/v1/score", json=_pair(seed))
                assert reply.status_code == 200 and reply.json()["results"][0]["score"] is not None
            metrics = httpx.get(server.url + "/metrics").text
            assert metric_value(metrics, "judge_cache_available") == 0
            assert "Redis cache unavailable" in server.log_text()
            private = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            _wait_redis(port)
            time.sleep(0.6)  # past the retry interval
            httpx.post(server.url + "/v1/score", json=_pair(4))
            assert httpx.post(server.url + "/v1/score", json=_pair(4)).json()["results"][0]["cached"] is True
            assert metric_value(httpx.get(server.url + "/metrics").text, "judge_cache_available") == 1
    finally:
        private.terminate()
        private.wait(timeout=10)


def _wait_redis(port: int) -> None:
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis-server did not start")
