"""The HTTP API over a real uvicorn process, with the fake backend (no models)."""

from __future__ import annotations

import numpy as np
import httpx
import pytest

from judge_service.backends.fake import FAIL_BATCH_TEXT
from judge_service.testing import b64, encode_audio, metric_value, voiced_clip, voiced_wav

from .bad_inputs import BAD_AUDIO, GOOD_VARIANTS


def pair(item_id: str, seed: int, **query_extra):
    return {
        "id": item_id,
        "query": {"audio": b64(voiced_wav(1.0, seed=seed)), **query_extra},
        "response": {"audio": b64(voiced_wav(1.0, seed=seed + 500))},
    }


def test_score_batch_returns_a_result_per_item_with_judge_and_timings(fake_server):
    reply = httpx.post(fake_server.url + "/v1/score", json={"items": [pair("a", 1), pair("b", 2, labels={"emotion": "sad"})]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["judge"] == {"name": "fake-for-tests-only", "version": "fake-0", "rubric_version": "fake-rubric/0"}
    assert [r["id"] for r in body["results"]] == ["a", "b"]
    for result in body["results"]:
        assert 1.0 <= result["score"] <= 5.0 and result["error"] is None
        assert result["query"]["clip"]["id"] == f"{result['id']}/query"
    assert body["results"][1]["query_labels"]["emotion"]["label"] == "sad"
    for header in ("x-judge-name", "x-judge-version", "x-rubric-version", "x-queue-time-ms",
                   "x-compute-time-ms", "x-decode-time-ms", "x-total-time-ms", "x-batch-clips"):
        assert header in reply.headers
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_bad_audio_fails_only_its_own_item(fake_server):
    items = [pair("good-0", 10)]
    for name, data, _ in BAD_AUDIO:
        items.append({"id": f"bad-{name}", "query": {"audio": data}, "response": {"audio": b64(voiced_wav(1.0))}})
        items.append(pair(f"good-after-{name}", 11 + len(items)))
    for name, data in GOOD_VARIANTS:
        items.append({"id": f"variant-{name}", "query": {"audio": data}, "response": {"audio": b64(voiced_wav(1.0))}})
    reply = httpx.post(fake_server.url + "/v1/score", json={"items": items}, timeout=60)
    assert reply.status_code == 200, reply.text
    results = {r["id"]: r for r in reply.json()["results"]}
    for name, _, error_type in BAD_AUDIO:
        result = results[f"bad-{name}"]
        assert result["score"] is None and result["error"]["type"] == error_type, (name, result)
        assert f"bad-{name}/query" in result["error"]["message"]
        assert results[f"good-after-{name}"]["score"] is not None
    for name, _ in GOOD_VARIANTS:
        assert results[f"variant-{name}"]["score"] is not None, results[f"variant-{name}"]


def test_bad_response_audio_is_reported_too(fake_server):
    item = pair("x", 3)
    item["response"]["audio"] = b64(b"")
    reply = httpx.post(fake_server.url + "/v1/score", json={"items": [item]})
    assert reply.json()["results"][0]["error"]["type"] == "audio_empty"
    assert "x/response" in reply.json()["results"][0]["error"]["message"]


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"items": []}, "items"),
        ({"items": [{"id": "a", "query": {}, "response": {"audio": "AA=="}}]}, "query.audio"),
        ({"items": [pair("a", 1), pair("a", 2)]}, "more than once"),
        ({"items": [pair("a", 1, labels={"emotion": "ecstatic"})]}, "emotion"),
        ({"items": [pair("a", 1)], "priority": "urgent"}, "priority"),
        ({"items": [pair("a", 1)], "surprise": 1}, "surprise"),
        ({"items": [{**pair("a", 1), "id": ""}]}, "id"),
    ],
)
def test_invalid_requests_get_422_with_a_clear_message(fake_server, body, needle):
    reply = httpx.post(fake_server.url + "/v1/score", json=body)
    assert reply.status_code == 422
    assert reply.json()["error"]["type"] == "invalid_request"
    assert needle in reply.json()["error"]["message"]


def test_not_json_is_invalid_request(fake_server):
    assert httpx.post(fake_server.url + "/v1/score", content=b"{nope").json()["error"]["type"] == "invalid_request"
    reply = httpx.post(fake_server.url + "/v1/score", content=b"x=1", headers={"content-type": "text/plain"})
    assert reply.status_code == 422 and "content-type" in reply.json()["error"]["message"]


def test_too_many_items(fake_server):
    tiny = b64(voiced_wav(0.2))
    items = [{"id": f"p{i}", "query": {"audio": tiny}, "response": {"audio": tiny}} for i in range(65)]
    reply = httpx.post(fake_server.url + "/v1/score", json={"items": items}, timeout=30)
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "too_many_items"


def test_multipart_single_pair(fake_server):
    files = {"query": ("q.wav", voiced_wav(1.0, seed=5)), "response": ("r.flac", encode_audio(voiced_clip(1.0, seed=6), 16_000, "FLAC"))}
    reply = httpx.post(fake_server.url + "/v1/score", files=files, data={"id": "mp", "emotion": "happy", "priority": "bulk"})
    assert reply.status_code == 200, reply.text
    result = reply.json()["results"][0]
    assert result["id"] == "mp" and result["query_labels"]["emotion"]["label"] == "happy"


@pytest.mark.parametrize(
    "query,status,error_type",
    [
        (b"not audio at all" * 20, 400, "audio_unreadable"),
        (b"", 400, "audio_empty"),
        (encode_audio(voiced_clip(0.02), 16_000), 422, "audio_too_short"),
        (encode_audio(voiced_clip(11.0), 16_000), 413, "audio_too_long"),
    ],
)
def test_multipart_item_error_answers_with_its_status(fake_server, query, status, error_type):
    files = {"query": ("q.wav", query), "response": ("r.wav", voiced_wav(1.0))}
    reply = httpx.post(fake_server.url + "/v1/score", files=files)
    assert reply.status_code == status
    assert reply.json()["error"]["type"] == error_type


def test_multipart_missing_field(fake_server):
    reply = httpx.post(fake_server.url + "/v1/score", files={"query": ("q.wav", voiced_wav(1.0))})
    assert reply.status_code == 422 and "response" in reply.json()["error"]["message"]


def test_group_scores_and_stats(fake_server):
    body = {
        "id": "g1",
        "query": {"audio": b64(voiced_wav(1.0, seed=20)), "labels": {"emotion": "sad"}},
        "responses": [{"id": f"r{i}", "audio": b64(voiced_wav(1.0, seed=30 + i))} for i in range(4)]
        + [{"id": "broken", "audio": b64(b"garbage" * 50)}],
    }
    reply = httpx.post(fake_server.url + "/v1/score/group", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    scores = [r["score"] for r in data["results"][:4]]
    assert data["results"][4]["error"]["type"] == "audio_unreadable"
    assert data["group"]["count"] == 4
    assert data["group"]["mean"] == pytest.approx(float(np.mean(scores)))
    assert data["group"]["std"] == pytest.approx(float(np.std(scores, ddof=1)))
    assert data["group"]["advantages"][4] is None
    assert data["query"]["clip"]["id"] == "g1/query"
    assert reply.headers["x-batch-clips"] == "5", "one job: the query once plus 4 responses"


def test_group_with_bad_query_fails_as_a_whole(fake_server):
    body = {"query": {"audio": b64(b"")}, "responses": [{"id": "r", "audio": b64(voiced_wav(1.0))}]}
    reply = httpx.post(fake_server.url + "/v1/score/group", json=body)
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "audio_empty"


def test_group_multipart(fake_server):
    files = [("query", ("q.wav", voiced_wav(1.0, seed=40)))] + [
        ("response", (f"resp-{i}.wav", voiced_wav(1.0, seed=41 + i))) for i in range(3)
    ]
    reply = httpx.post(fake_server.url + "/v1/score/group", files=files, data={"emotion": "angry"})
    assert reply.status_code == 200, reply.text
    assert [r["id"] for r in reply.json()["results"]] == ["resp-0.wav", "resp-1.wav", "resp-2.wav"]


def test_analyze_json_and_multipart(fake_server):
    body = {"items": [{"id": "c1", "audio": b64(voiced_wav(1.0, seed=50))}, {"id": "c2", "audio": b64(b"")}]}
    reply = httpx.post(fake_server.url + "/v1/analyze", json=body)
    assert reply.status_code == 200
    first, second = reply.json()["results"]
    assert first["analysis"]["transcript"].startswith("fake transcript")
    assert second["error"]["type"] == "audio_empty"
    reply = httpx.post(fake_server.url + "/v1/analyze", files={"audio": ("a.wav", voiced_wav(1.0, seed=51))})
    assert reply.status_code == 200 and reply.json()["results"][0]["id"] == "clip"


def test_second_identical_request_comes_from_the_cache(fake_server):
    body = {"items": [pair("cache-me", 77)]}
    first = httpx.post(fake_server.url + "/v1/score", json=body).json()["results"][0]
    second_reply = httpx.post(fake_server.url + "/v1/score", json=body)
    second = second_reply.json()["results"][0]
    assert first["cached"] is False and second["cached"] is True
    assert second["score"] == first["score"]
    assert second_reply.headers["x-cache-hits"] == "1"


def test_backend_failure_is_a_typed_error_and_service_survives(fake_server):
    body = {"items": [pair("doomed", 90, text=FAIL_BATCH_TEXT)]}
    result = httpx.post(fake_server.url + "/v1/score", json=body).json()["results"][0]
    assert result["error"]["type"] == "backend_error"
    assert httpx.post(fake_server.url + "/v1/score", json={"items": [pair("fine", 91)]}).json()["results"][0]["score"]


def test_meta_endpoints(fake_server):
    judge = httpx.get(fake_server.url + "/v1/judge").json()
    assert judge["version"] == "fake-0" and "emotion" in judge["labels"]
    assert judge["limits"]["max_request_bytes"] == 3 * 1024 * 1024
    assert httpx.get(fake_server.url + "/healthz").json()["status"] == "ok"
    assert httpx.get(fake_server.url + "/readyz").json()["status"] == "ready"
    metrics = httpx.get(fake_server.url + "/metrics").text
    for name in ("judge_queue_depth_clips", "judge_batch_size_clips_bucket", "judge_queue_time_seconds_bucket",
                 "judge_compute_time_seconds_bucket", "judge_cache_lookups_total", "judge_requests_total"):
        assert name in metrics
    assert metric_value(metrics, "judge_requests_total", route="/v1/score", status="200") >= 1
    spec = httpx.get(fake_server.url + "/openapi.json").json()
    assert {"/v1/score", "/v1/score/group", "/v1/analyze", "/v1/judge"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/score"]["post"]["requestBody"]["content"]


def test_unknown_route_is_a_json_404(fake_server):
    reply = httpx.get(fake_server.url + "/v2/nothing")
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "not_found"


def test_body_over_the_limit_is_refused_from_content_length(fake_server):
    reply = httpx.post(fake_server.url + "/v1/score", content=b"x" * (5 * 1024 * 1024),
                       headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "payload_too_large"


def test_body_over_the_limit_is_refused_while_streaming(fake_server):
    def chunks():
        for _ in range(80):
            yield b"x" * 65536  # 5 MiB in all, no Content-Length (chunked)

    reply = httpx.post(fake_server.url + "/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["type"] == "payload_too_large"
