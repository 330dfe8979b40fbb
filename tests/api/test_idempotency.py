"""Idempotency-Key over real HTTP (fake backend: this tests the HTTP layer, not the judge)."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from judge_service.testing import RunningServer, b64, metric_value, voiced_wav


@pytest.fixture(scope="module")
def slow_fake_server():
    env = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_FAKE_BACKEND_DELAY_MS": "400",
           "JUDGE_CACHE_MAX_ENTRIES": "0"}  # no score cache: only the idempotency store can dedupe
    with RunningServer(env) as server:
        yield server


def _body(seed: int) -> dict:
    return {"items": [{"id": "p", "query": {"audio": b64(voiced_wav(0.5, seed=seed))},
                       "response": {"audio": b64(voiced_wav(0.5, seed=seed + 1))}}]}


def _batches(url: str) -> float:
    return metric_value(httpx.get(url + "/metrics").text, "judge_compute_time_seconds_count")


def test_concurrent_and_later_retries_are_answered_once(slow_fake_server) -> None:
    url = slow_fake_server.url + "/v1/score"
    before = _batches(slow_fake_server.url)
    headers = {"Idempotency-Key": "run-1/step-3/chunk-0"}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: httpx.post(url, json=_body(1), headers=headers, timeout=30), range(3)))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len({r.content for r in replies}) == 1
    assert sorted(r.headers.get("idempotent-replayed", "false") for r in replies) == ["false", "true", "true"]
    later = httpx.post(url, json=_body(1), headers=headers, timeout=30)
    assert later.headers["idempotent-replayed"] == "true" and later.content == replies[0].content
    assert _batches(slow_fake_server.url) - before == 1  # four requests, one piece of work
    fresh = httpx.post(url, json=_body(1), headers={"Idempotency-Key": "another"}, timeout=30)
    assert fresh.status_code == 200 and "idempotent-replayed" not in fresh.headers
    assert _batches(slow_fake_server.url) - before == 2


def test_a_key_reused_for_another_body_is_refused(slow_fake_server) -> None:
    url = slow_fake_server.url + "/v1/score"
    assert httpx.post(url, json=_body(5), headers={"Idempotency-Key": "k5"}, timeout=30).status_code == 200
    reused = httpx.post(url, json=_body(6), headers={"Idempotency-Key": "k5"}, timeout=30)
    assert reused.status_code == 422 and reused.json()["error"]["type"] == "idempotency_key_reused"


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9"])
def test_bad_keys_are_refused(slow_fake_server, key: str) -> None:
    reply = httpx.post(slow_fake_server.url + "/v1/score", json=_body(7),
                       headers={"Idempotency-Key": key.encode("utf-8")}, timeout=30)  # fmt: skip
    assert reply.status_code == 422 and "Idempotency-Key" in reply.json()["error"]["message"]


def test_per_item_errors_are_answers_and_are_replayed(slow_fake_server) -> None:
    url = slow_fake_server.url + "/v1/score/group"
    body = {"query": {"audio": b64(voiced_wav(0.5))}, "responses": [{"id": "r", "audio": "not base64!"}]}
    first = httpx.post(url, json=body, headers={"Idempotency-Key": "g1"}, timeout=30)
    again = httpx.post(url, json=body, headers={"Idempotency-Key": "g1"}, timeout=30)
    assert first.status_code == again.status_code == 200  # a per-item error is an answer: stored and replayed
    assert again.headers["idempotent-replayed"] == "true"
    oversized = httpx.post(slow_fake_server.url + "/v1/score", content=b"{" + b" " * (64 * 1024 * 1024),
                           headers={"Idempotency-Key": "big", "content-type": "application/json"}, timeout=30)
    assert oversized.status_code == 413


def test_a_429_is_not_stored_so_the_retry_does_the_work() -> None:
    env = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_FAKE_BACKEND_DELAY_MS": "500",
           "JUDGE_MAX_QUEUE_ITEMS": "2", "JUDGE_MAX_GROUP_SIZE": "1", "JUDGE_MAX_BATCH_ITEMS": "2",
           "JUDGE_CACHE_MAX_ENTRIES": "0"}
    with RunningServer(env) as server:
        url = server.url + "/v1/score"
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda k: httpx.post(url, json=_body(20 + 2 * k), headers={"Idempotency-Key": f"q{k}"},
                                                         timeout=30), range(4)))  # fmt: skip
        refused = [k for k, r in enumerate(replies) if r.status_code == 429]
        assert refused, [r.status_code for r in replies]
        k = refused[0]
        retry = httpx.post(url, json=_body(20 + 2 * k), headers={"Idempotency-Key": f"q{k}"}, timeout=30)
        assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
