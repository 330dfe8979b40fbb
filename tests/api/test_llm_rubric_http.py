"""``paras2s-polytone-llm`` end to end: the real judge service (real models, real uvicorn) with
its rubric scorer pointed at a scripted OpenAI-compatible endpoint in this process. The scores
are the LLM's; a pair whose LLM call fails is that item's ``scorer_error``, never a default,
and its neighbours in the same request are scored."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from judge_service.demo import examples_dir
from judge_service.testing import RunningServer, metric_value
from tests.fake_chat_completions import FakeChatCompletionsServerForTests, Status, verdict

pytestmark = pytest.mark.slow
API_KEY = "sk-test-DO-NOT-LEAK-51e0b7"
MODEL = "fake-judge-1"


@pytest.fixture(scope="module")
def llm():
    with FakeChatCompletionsServerForTests() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(llm):
    env = {
        "JUDGE_BACKEND": "paras2s-polytone-llm",
        "JUDGE_LLM_RUBRIC_BASE_URL": llm.base_url,
        "JUDGE_LLM_RUBRIC_MODEL": MODEL,
        "JUDGE_LLM_RUBRIC_API_KEY": API_KEY,
        "JUDGE_LLM_RUBRIC_TIMEOUT_S": "1",
        "JUDGE_LLM_RUBRIC_MAX_RETRIES": "1",
        "JUDGE_LLM_RUBRIC_CONCURRENCY": "4",
        "JUDGE_MAX_CLIP_DURATION_S": "10",
        "JUDGE_LOG_LEVEL": "debug",  # the key must stay out of even the most talkative log
    }
    with RunningServer(env) as running:
        running.llm_requests_at_start = len(llm.requests)
        yield running


def audio(name: str) -> str:
    return base64.b64encode((examples_dir() / "audio" / name).read_bytes()).decode()


def item(item_id: str, query: str, response: str, reply_text: str, emotion: str | None = None) -> dict:
    labels = {"emotion": emotion} if emotion else None
    return {"id": item_id, "query": {"audio": audio(query), "labels": labels},
            "response": {"audio": audio(response), "text": reply_text}}


def score(server, items: list[dict]) -> dict[str, dict]:
    reply = httpx.post(server.url + "/v1/score", json={"items": items}, timeout=120)
    assert reply.status_code == 200, reply.text
    return {r["id"]: r for r in reply.json()["results"]}


def test_start_up_calls_no_llm_and_the_judge_says_what_it_is(server, llm):
    assert server.llm_requests_at_start == 0
    info = httpx.get(server.url + "/v1/judge", timeout=10).json()
    assert info["name"] == "paras2s-polytone-llm" and info["rubric_version"] == "paras2s-llm-rubric/1"
    assert MODEL in info["description"] and len(info["version"]) == 16


def test_a_failing_pair_is_its_own_error_and_its_neighbours_get_the_llms_scores(server, llm):
    llm.script("comfort", verdict(5, "Comforts the sad speaker in a soft voice."))
    llm.script("cheerful", verdict(1, "A cheerful reply to sadness."))
    llm.script("broken", Status(500))
    results = score(server, [
        item("comfort", "query_job_sad.flac", "reply_comfort_calm.wav", "I am so sorry. [[comfort]]", "sad"),
        item("broken", "query_promotion_happy.flac", "reply_congrats_happy.ogg", "Congratulations! [[broken]]"),
        item("cheerful", "query_job_sad.flac", "reply_great_happy.flac", "Great! Cheer up! [[cheerful]]", "sad"),
    ])
    comfort, cheerful, broken = results["comfort"], results["cheerful"], results["broken"]
    assert comfort["score"] == 5.0 and comfort["rationale"] == "Comforts the sad speaker in a soft voice."
    assert comfort["components"] == {"llm_score": 5.0}
    assert cheerful["score"] == 1.0 and cheerful["rationale"] == "A cheerful reply to sadness."
    assert broken["score"] is None and broken["error"]["type"] == "scorer_error"
    assert "HTTP 500" in broken["error"]["message"] and "2 attempts" in broken["error"]["message"]
    assert len(llm.requests_for("broken")) == 2

    # What the LLM was given is what the earlier stages extracted, and nothing else.
    (request,) = llm.requests_for("comfort")
    message = request.user_message
    assert json.dumps(comfort["query"]["transcript"].strip(), ensure_ascii=False) in message
    assert "job" in comfort["query"]["transcript"].lower()
    assert '"I am so sorry. [[comfort]]"' in message
    assert "emotion: sad (given)" in message
    sarcasm = comfort["query"]["labels"]["sarcasm"]
    assert f"sarcasm: {sarcasm['label']} (confidence {sarcasm['confidence']:.2f})" in message
    assert json.dumps(comfort["response"]["tone"]["description"], ensure_ascii=False) in message
    assert request.body["model"] == MODEL and request.headers["authorization"] == f"Bearer {API_KEY}"
    assert "paras2s" in request.system_message.lower()

    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert metric_value(metrics, "judge_item_errors_total", type="scorer_error") >= 1


def test_an_error_is_never_cached_so_a_retry_is_scored(server, llm):
    llm.script("flaky", Status(503), Status(503), verdict(4, "Right words, flat voice."))
    pair = item("flaky", "query_promotion_happy.flac", "reply_congrats_flat.wav", "Congratulations. [[flaky]]", "happy")
    assert score(server, [pair])["flaky"]["error"]["type"] == "scorer_error"
    again = score(server, [pair])["flaky"]
    assert again["score"] == 4.0 and again["cached"] is False
    assert score(server, [pair])["flaky"]["cached"] is True
    assert len(llm.requests_for("flaky")) == 3


def test_a_single_multipart_pair_that_fails_answers_502(server, llm):
    llm.script("mp-fail", Status(502))
    directory = examples_dir() / "audio"
    files = {"query": ("q.flac", (directory / "query_job_sad.flac").read_bytes()),
             "response": ("r.wav", (directory / "reply_comfort_calm.wav").read_bytes())}
    reply = httpx.post(server.url + "/v1/score", files=files, data={"response_text": "Sorry. [[mp-fail]]"}, timeout=120)
    assert reply.status_code == 502 and reply.json()["error"]["type"] == "scorer_error"


def test_a_group_keeps_scoring_around_a_failed_response(server, llm):
    llm.script("g-ok", verdict(5, "fits"))
    llm.script("g-fail", Status(500))
    body = {
        "id": "g", "query": {"audio": audio("query_job_sad.flac"), "labels": {"emotion": "sad"}},
        "responses": [{"id": "ok", "audio": audio("reply_comfort_calm.wav"), "text": "So sorry. [[g-ok]]"},
                      {"id": "bad", "audio": audio("reply_great_happy.flac"), "text": "Great! [[g-fail]]"}],
    }
    reply = httpx.post(server.url + "/v1/score/group", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    results = {r["id"]: r for r in reply.json()["results"]}
    assert results["ok"]["score"] == 5.0 and results["bad"]["error"]["type"] == "scorer_error"
    assert reply.json()["group"]["count"] == 1 and reply.json()["group"]["advantages"][1] is None


def test_the_api_key_is_never_logged(server):
    log = server.log_text()
    assert "LLM rubric scorer" in log  # the log was written, at debug level
    assert API_KEY not in log
