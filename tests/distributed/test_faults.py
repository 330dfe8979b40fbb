"""Fault drills: a worker killed mid-batch, SIGTERM drains, Redis restarted mid-run."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest
import redis

from judge_service.distributed.keys import CONSUMER_GROUP, StreamKeys
from judge_service.distributed.testing import RunningWorker, TempRedis
from judge_service.testing import RunningServer
from tests.distributed.conftest import SHARED_REDIS_URL, distributed_env
from tests.distributed.payloads import post_all, score_body


def _answered_once(responses: list[httpx.Response], bodies: list[dict]) -> None:
    """Every request got one 200 whose results are its own items, each scored."""
    for response, body in zip(responses, bodies):
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["id"] for r in results] == [item["id"] for item in body["items"]]
        assert all(r["error"] is None and 1.0 <= r["score"] <= 5.0 for r in results), results


def _wait_for_batch_start(prefix: str, redis_url: str = SHARED_REDIS_URL, timeout_s: float = 20.0) -> None:
    """Until some worker holds entries (read, not yet acknowledged)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while sum(client.xpending(s, CONSUMER_GROUP)["pending"] for s in StreamKeys(prefix).all_work()) == 0:
            assert time.monotonic() < deadline, "no worker took the work"
            time.sleep(0.02)
    finally:
        client.close()


def test_kill9_worker_mid_batch_every_request_answered_once(prefix):
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="3000", JUDGE_STREAM_CLAIM_IDLE_S="1")
    bodies = [score_body(5000 + 10 * i, 2) for i in range(4)]
    with RunningServer(env, wait_ready=False) as api, RunningWorker(env, "doomed") as doomed:
        while httpx.get(api.url + "/readyz").status_code != 200:
            time.sleep(0.1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post_all, api.url + "/v1/score", bodies)
            _wait_for_batch_start(prefix)
            doomed.kill()
            with RunningWorker(env, "rescuer") as rescuer:
                responses = pending.result(timeout=60)
                _answered_once(responses, bodies)
                assert "claimed" in rescuer.log_text()
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    keys = StreamKeys(prefix)
    assert sum(client.xpending(s, CONSUMER_GROUP)["pending"] for s in keys.all_work()) == 0
    assert list(client.scan_iter(match=keys.result("*"))) == []  # every result was collected
    client.close()


def test_sigterm_worker_finishes_its_batch_before_exit(prefix):
    """The batch in hand is finished and acknowledged (nothing is left for a claim); work it
    had not read yet waits in the stream for the next worker."""
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="2000", JUDGE_STREAM_CLAIM_IDLE_S="1")
    bodies = [score_body(6000 + 10 * i, 1) for i in range(3)]
    with RunningWorker(env, "w1") as worker, RunningServer(env) as api:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post_all, api.url + "/v1/score", bodies)
            _wait_for_batch_start(prefix)
            started = time.monotonic()
            assert worker.stop() == 0
            assert time.monotonic() - started > 1.0  # it waited for the batch, not killed it
            assert "stopped after 1 batches" in worker.log_text()
            with RunningWorker(env, "w2") as successor:
                _answered_once(pending.result(timeout=30), bodies)
                assert "claimed" not in successor.log_text()


def test_sigterm_api_answers_in_flight_requests_before_exit(prefix):
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="2000")
    bodies = [score_body(7000 + 10 * i, 1) for i in range(3)]
    with RunningWorker(env, "w1"), RunningServer(env) as api:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post_all, api.url + "/v1/score", bodies)
            _wait_for_batch_start(prefix)
            # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
            assert api.stop() in (0, -15)
            assert "Application shutdown complete" in api.log_text()
            _answered_once(pending.result(timeout=30), bodies)


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_redis_restart_mid_run_loses_no_request(prefix, persistent):
    """Requests flow while Redis is killed -9 and restarted: none fails, no process restarts.
    With an append-only file the work survives in Redis; without one the API replica re-sends
    the jobs it still waits for."""
    with TempRedis(persistent=persistent) as server:
        env = distributed_env(prefix, redis_url=server.url, JUDGE_FAKE_BACKEND_DELAY_MS="200")
        with RunningWorker(env, "w1") as worker, RunningServer(env) as api:
            bodies = [score_body(8000 + 10 * i, 1) for i in range(40)]
            responses: list[httpx.Response] = []

            def client_loop() -> None:
                for body in bodies:
                    responses.append(httpx.post(api.url + "/v1/score", json=body, timeout=60))
                    time.sleep(0.05)

            sender = threading.Thread(target=client_loop)
            sender.start()
            time.sleep(1.0)
            server.restart(down_s=1.0)
            sender.join(timeout=120)
            _answered_once(responses, bodies)
            assert worker.process.poll() is None and api.process.poll() is None  # nobody restarted
            assert "Redis unavailable" in worker.log_text() + api.log_text()


def test_job_outlives_the_api_replica_that_accepted_it(prefix):
    """kill -9 the replica running a job: another replica takes its lapsed lease and finishes
    the job from the first unscored item; every item is counted once."""
    env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="200", JUDGE_MAX_ITEMS_PER_REQUEST="4",
                          JUDGE_JOB_LEASE_S="2")
    with RunningWorker(env, "w1"), RunningServer(env) as first, RunningServer(env) as second:
        body = score_body(9000, 40)
        job = httpx.post(first.url + "/v1/jobs", json=body, timeout=30).json()
        deadline = time.monotonic() + 30
        while httpx.get(f"{second.url}/v1/jobs/{job['id']}").json()["done"] < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.process.kill()
        first.process.wait()
        at_kill = httpx.get(f"{second.url}/v1/jobs/{job['id']}", params={"limit": 0}).json()
        assert at_kill["status"] == "running" and at_kill["done"] < 40  # the rest is the second's
        while (state := httpx.get(f"{second.url}/v1/jobs/{job['id']}", params={"limit": 0}).json())["status"] != "succeeded":
            assert time.monotonic() < deadline + 30, state
            time.sleep(0.1)
        assert state["done"] == 40 and state["errors"] == 0
        results = httpx.get(f"{second.url}/v1/jobs/{job['id']}", params={"limit": 100}).json()["results"]
        assert [r["id"] for r in results] == [item["id"] for item in body["items"]]


def test_a_stuck_worker_exits_and_its_work_is_claimed(prefix):
    """A batch that outlives JUDGE_WORKER_BATCH_TIMEOUT_S makes the worker leave (status 3);
    its entries are claimed and answered by a healthy worker."""
    stuck_env = distributed_env(prefix, JUDGE_FAKE_BACKEND_DELAY_MS="60000", JUDGE_WORKER_BATCH_TIMEOUT_S="1",
                                JUDGE_STREAM_CLAIM_IDLE_S="1")
    healthy_env = distributed_env(prefix, JUDGE_STREAM_CLAIM_IDLE_S="1")
    bodies = [score_body(9500, 2)]
    with RunningServer(healthy_env, wait_ready=False) as api, RunningWorker(stuck_env, "stuck") as stuck:
        while httpx.get(api.url + "/readyz").status_code != 200:
            time.sleep(0.1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post_all, api.url + "/v1/score", bodies)
            assert stuck.process.wait(timeout=30) == 3
            assert "is stuck" in stuck.log_text()
            with RunningWorker(healthy_env, "healthy") as healthy:
                _answered_once(pending.result(timeout=30), bodies)
                assert "claimed" in healthy.log_text()
