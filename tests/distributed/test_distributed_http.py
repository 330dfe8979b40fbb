"""API replicas and workers as real processes over HTTP and the shared Redis."""

from __future__ import annotations

import time

import httpx
import redis

from judge_service.distributed.keys import CONSUMER_GROUP, StreamKeys
from judge_service.distributed.testing import RunningWorker
from judge_service.testing import RunningServer, b64, metric_value
from tests.distributed.conftest import SHARED_REDIS_URL, distributed_env
from tests.distributed.payloads import pair_item, post_all, score_body


def _scores(response: httpx.Response) -> dict[str, float | str]:
    assert response.status_code == 200, response.text
    return {r["id"]: (r["score"] if r["error"] is None else r["error"]["type"]) for r in response.json()["results"]}


def _pending_entries(prefix: str) -> int:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        return sum(client.xpending(s, CONSUMER_GROUP)["pending"] for s in StreamKeys(prefix).all_work())
    finally:
        client.close()


def test_not_ready_without_workers_then_ready_and_equal_to_embedded(prefix):
    body = score_body(0, 5)
    body["items"].append({**pair_item("corrupt", 99), "response": {"audio": b64(b"RIFF not really a wav")}})
    with RunningServer({"JUDGE_BACKEND": "fake"}) as embedded:
        expected = _scores(httpx.post(embedded.url + "/v1/score", json=body, timeout=30))
    env = distributed_env(prefix)
    with RunningServer(env, wait_ready=False) as api:
        time.sleep(1.0)
        ready = httpx.get(api.url + "/readyz")
        assert ready.status_code == 503 and "no live worker" in ready.json()["error"]
        with RunningWorker(env, "w1"):
            deadline = time.monotonic() + 60
            while httpx.get(api.url + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, api.log_text()
                time.sleep(0.1)
            got = _scores(httpx.post(api.url + "/v1/score", json=body, timeout=30))
            assert got == expected
            assert got["corrupt"] == "audio_unreadable"
            group = httpx.post(api.url + "/v1/score/group", timeout=30, json={
                "id": "g", "query": body["items"][0]["query"],
                "responses": [{"id": f"r{i}", "audio": body["items"][i]["response"]["audio"]} for i in range(3)],
            })
            assert group.status_code == 200 and group.json()["group"]["count"] == 3
            info = httpx.get(api.url + "/v1/judge").json()
            assert info["name"] == "fake-for-tests-only"
            metrics = httpx.get(api.url + "/metrics").text
            assert metric_value(metrics, "judge_workers_live") == 1
            assert metric_value(metrics, "judge_stream_entries", stream="interactive") == 0
        # The only worker left: readiness follows (its heartbeat is deleted on a clean stop).
        deadline = time.monotonic() + 10
        while httpx.get(api.url + "/readyz").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert _pending_entries(prefix) == 0


def test_workers_batch_across_requests_and_share_the_load(prefix):
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="300")
    with RunningWorker(env, "w1") as w1, RunningWorker(env, "w2") as w2, RunningServer(env) as api:
        responses = post_all(api.url + "/v1/score", [score_body(1000 + 10 * i, 1) for i in range(24)])
        assert all(r.status_code == 200 for r in responses)
        assert all(r.json()["results"][0]["error"] is None for r in responses)
        batch_clips = [int(r.headers["x-batch-clips"]) for r in responses]
        assert max(batch_clips) >= 6, batch_clips  # several requests shared a batch
        w1.stop(), w2.stop()
        done = [int(log.rsplit("stopped after ", 1)[1].split()[0]) for log in (w1.log_text(), w2.log_text())]
        assert all(batches > 0 for batches in done), done  # both workers took work
    assert _pending_entries(prefix) == 0


def test_bad_items_fail_alone_and_priorities_reach_their_streams(prefix):
    env = distributed_env(prefix)
    with RunningWorker(env, "w1"), RunningServer(env) as api:
        bulk = score_body(2000, 3, priority="bulk")
        bulk["items"][1]["query"]["audio"] = "%%% not base64"
        got = _scores(httpx.post(api.url + "/v1/score", json=bulk, timeout=30))
        assert got["p2001"] == "invalid_base64"
        assert isinstance(got["p2000"], float) and isinstance(got["p2002"], float)
        client = redis.Redis.from_url(SHARED_REDIS_URL)
        groups = client.xinfo_groups(StreamKeys(prefix).work(1))
        client.close()
        assert groups[0]["entries-read"] == 2  # the two good pairs went through the bulk stream


def test_overload_gets_fast_429_with_retry_after_then_recovers(prefix):
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="1000", JUDGE_MAX_QUEUE_ITEMS="8",
                          JUDGE_MAX_BATCH_ITEMS="4", JUDGE_MAX_GROUP_SIZE="4")
    with RunningWorker(env, "w1"), RunningServer(env) as api:
        started = time.monotonic()
        responses = post_all(api.url + "/v1/score", [score_body(3000 + 10 * i, 1) for i in range(16)])
        statuses = [r.status_code for r in responses]
        assert statuses.count(429) >= 8 and statuses.count(200) >= 4, statuses
        rejected = [r for r in responses if r.status_code == 429]
        assert all(int(r.headers["retry-after"]) >= 1 for r in rejected)
        assert all(r.json()["error"]["type"] == "queue_full" for r in rejected)
        assert max(r.elapsed.total_seconds() for r in rejected) < 2.0  # refused at once, not queued
        assert time.monotonic() - started < 30
        again = httpx.post(api.url + "/v1/score", json=score_body(3999, 1), timeout=30)
        assert again.status_code == 200
