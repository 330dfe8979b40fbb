"""Distributed mode against real Redis and real processes (fake backend: these tests are of
the queueing, delivery and recovery layers, not of the judge)."""

from __future__ import annotations

import uuid

import pytest
import redis

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix():
    """A key prefix of this test's own on the shared Redis; every key under it is deleted after."""
    value = f"test-dist-{uuid.uuid4().hex[:10]}:"
    yield value
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def distributed_env(prefix: str, redis_url: str = SHARED_REDIS_URL, **extra: str) -> dict[str, str]:
    """Settings for an API replica or worker of one test's deployment."""
    return {
        "JUDGE_BACKEND": "fake",
        "JUDGE_MODE": "distributed",
        "JUDGE_REDIS_URL": redis_url,
        "JUDGE_REDIS_KEY_PREFIX": prefix,
        "JUDGE_WORKER_HEARTBEAT_S": "0.5",
        **extra,
    }
