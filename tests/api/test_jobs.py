"""The jobs API over HTTP, embedded mode (fake backend: job mechanics, not judging)."""

from __future__ import annotations

import time

import httpx
import pytest

from judge_service.testing import RunningServer, b64, voiced_wav
from tests.distributed.payloads import pair_item, score_body


def wait_for(url: str, job_id: str, states: tuple[str, ...] = ("succeeded", "cancelled", "failed"),
             timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", params={"limit": 0}).json()
        if job["status"] in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def all_results(url: str, job_id: str, page: int = 40) -> list[dict | None]:
    results, offset = [], 0
    while offset is not None:
        body = httpx.get(f"{url}/v1/jobs/{job_id}", params={"offset": offset, "limit": page}).json()
        results += body["results"]
        offset = body["next_offset"]
    return results


@pytest.fixture(scope="module")
def server():
    env = {"JUDGE_BACKEND": "fake", "JUDGE_MAX_ITEMS_PER_REQUEST": "16", "JUDGE_MAX_JOB_ITEMS": "200",
           "JUDGE_JOB_TTL_S": "3", "JUDGE_MAX_REQUEST_BYTES": str(256 * 1024)}
    with RunningServer(env) as running:
        yield running


def test_job_scores_every_item_like_score_does_with_bad_items_failing_alone(server):
    body = score_body(0, 90, metadata={"run": "nightly"})
    body["items"][7]["response"]["audio"] = b64(b"not audio at all")
    body["items"][50]["query"]["audio"] = "###"
    # The job body (about 2.7 MB) is over JUDGE_MAX_REQUEST_BYTES; /v1/jobs has its own limit.
    created = httpx.post(server.url + "/v1/jobs", json=body, timeout=60)
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running") and job["total"] == 90 and job["priority"] == "bulk"
    finished = wait_for(server.url, job["id"])
    assert finished["status"] == "succeeded" and finished["done"] == 90 and finished["errors"] == 2
    assert finished["metadata"] == {"run": "nightly"} and finished["judge"]["name"] == "fake-for-tests-only"
    assert finished["expires_at"] > finished["finished_at"] >= finished["started_at"] >= finished["created_at"]
    results = all_results(server.url, job["id"])
    assert [r["id"] for r in results] == [item["id"] for item in body["items"]]
    assert results[7]["error"]["type"] == "audio_unreadable" and results[50]["error"]["type"] == "invalid_base64"
    direct = httpx.post(server.url + "/v1/score", json={"items": body["items"][:2]}, timeout=60).json()["results"]
    assert [r["score"] for r in results[:2]] == [r["score"] for r in direct]


def test_idempotency_key_returns_the_first_job(server):
    body = score_body(1000, 3)
    first = httpx.post(server.url + "/v1/jobs", json=body, headers={"Idempotency-Key": "nightly-42"})
    again = httpx.post(server.url + "/v1/jobs", json=body, headers={"Idempotency-Key": "nightly-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = httpx.post(server.url + "/v1/jobs", json=body, headers={"Idempotency-Key": "nightly-43"})
    assert other.json()["id"] != first.json()["id"]


def test_multipart_job_pairs_files_in_order(server):
    files = [("query", ("q0.wav", voiced_wav(1.0, seed=1))), ("response", ("r0.wav", voiced_wav(1.0, seed=2))),
             ("query", ("q1.wav", voiced_wav(1.0, seed=3))), ("response", ("r1.wav", voiced_wav(1.0, seed=4)))]
    items = '[{"id": "a", "labels": {"emotion": "sad"}}, {"id": "b"}]'
    created = httpx.post(server.url + "/v1/jobs", files=files, data={"items": items})
    assert created.status_code == 202, created.text
    wait_for(server.url, created.json()["id"])
    results = all_results(server.url, created.json()["id"])
    assert [r["id"] for r in results] == ["a", "b"]
    assert results[0]["query_labels"]["emotion"]["label"] == "sad"
    unpaired = httpx.post(server.url + "/v1/jobs", files=files[:3])
    assert unpaired.status_code == 422 and "as many 'query' as 'response'" in unpaired.json()["error"]["message"]


def test_limits_and_unknown_jobs(server):
    too_many = httpx.post(server.url + "/v1/jobs", json={"items": [pair_item(f"x{i}", 5000 + i, 0.2) for i in range(201)]}, timeout=60)
    assert too_many.status_code == 413 and too_many.json()["error"]["type"] == "too_many_items"
    assert httpx.get(server.url + "/v1/jobs/job_doesnotexist").status_code == 404
    assert httpx.get(server.url + "/v1/jobs/..%2f..%2fetc").status_code == 404
    assert httpx.post(server.url + "/v1/jobs", json={"items": []}).status_code == 422
    assert httpx.get(server.url + "/v1/jobs/x", params={"limit": 5000}).status_code == 422


def test_finished_jobs_expire_after_their_ttl(server):
    created = httpx.post(server.url + "/v1/jobs", json=score_body(2000, 2)).json()
    wait_for(server.url, created["id"])
    time.sleep(3.2)
    assert httpx.get(f"{server.url}/v1/jobs/{created['id']}").status_code == 404


def test_cancel_stops_a_running_job_and_keeps_what_was_scored():
    env = {"JUDGE_BACKEND": "fake", "JUDGE_FAKE_BACKEND_DELAY_MS": "300", "JUDGE_MAX_ITEMS_PER_REQUEST": "4",
           "JUDGE_MAX_BATCH_ITEMS": "8"}
    with RunningServer(env) as server:
        job = httpx.post(server.url + "/v1/jobs", json=score_body(3000, 60)).json()
        wait_for(server.url, job["id"], states=("running",))
        while httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()["done"] == 0:
            time.sleep(0.05)
        cancelled = httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200
        final = wait_for(server.url, job["id"])
        assert final["status"] == "cancelled" and 0 < final["done"] < 60
        results = all_results(server.url, job["id"])
        assert sum(r is not None for r in results) == final["done"]
        # Cancelling a finished job changes nothing.
        assert httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
