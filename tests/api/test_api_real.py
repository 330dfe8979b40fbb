"""The real multi-stage judges over a real uvicorn server: the trained PolyTone judge (the
default) and the heuristic baseline, with the same contracts."""

from __future__ import annotations

import base64
import itertools

import httpx
import pytest

from judge_service.demo import example_score_request, examples_dir, load_example_pairs
from judge_service.testing import RunningServer

from .bad_inputs import BAD_AUDIO

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=["paras2s-polytone", "paras2s-baseline"])
def judge_server(request):
    # No cache: every score below is computed, so batch invariance is really tested.
    env = {"JUDGE_CACHE_MAX_ENTRIES": "0", "JUDGE_MAX_CLIP_DURATION_S": "10", "JUDGE_BACKEND": request.param}
    with RunningServer(env) as server:
        server.backend = request.param
        yield server


def audio_b64(name: str) -> str:
    return base64.b64encode((examples_dir() / "audio" / name).read_bytes()).decode()


def sixteen_pairs() -> list[dict]:
    """16 distinct (query, response) pairs from the bundled clips, with and without labels."""
    pairs = load_example_pairs()
    queries = sorted({p["query"] for p in pairs})
    responses = sorted({p["response"] for p in pairs})
    items = []
    for i, (q, r) in enumerate(itertools.islice(itertools.product(queries, responses), 16)):
        labels = {"emotion": "sad"} if i % 3 == 0 else None
        items.append({"id": f"{q}|{r}", "query": {"audio": audio_b64(q), "labels": labels}, "response": {"audio": audio_b64(r)}})
    return items


def score(server, items) -> dict[str, dict]:
    reply = httpx.post(server.url + "/v1/score", json={"items": items}, timeout=300)
    assert reply.status_code == 200, reply.text
    return {r["id"]: r for r in reply.json()["results"]}


def test_bundled_examples_are_heard_and_scored(judge_server):
    reply = httpx.post(judge_server.url + "/v1/score", json=example_score_request(), timeout=300)
    assert reply.status_code == 200
    body = reply.json()
    assert body["judge"]["name"] == judge_server.backend and len(body["judge"]["version"]) == 16
    results = {r["id"]: r for r in body["results"]}
    assert "job" in results["job-sad+comfort"]["query"]["transcript"].lower()
    assert "sorry" in results["job-sad+comfort"]["response"]["transcript"].lower()
    assert "promotion" in results["promo-happy+congrats"]["query"]["transcript"].lower()
    for result in results.values():
        assert 1.0 <= result["score"] <= 5.0 and result["rationale"]
        prosody = result["query"]["prosody"]
        assert 60 < prosody["f0_median_hz"] < 400 and prosody["speaking_rate_syllables_per_s"] > 1
        assert result["response"]["tone"]["description"]
        assert result["query"]["clip"]["sample_rate_hz"] == 16_000
    # The stereo 22.05 kHz WAV and the OGG reply were downmixed/resampled and heard.
    assert results["promo-happy+flat"]["response"]["clip"]["source_channels"] == 2
    assert "congratulations" in results["promo-happy+congrats"]["response"]["transcript"].lower()


def test_a_pair_scores_the_same_alone_in_a_batch_of_16_and_in_another_order(judge_server):
    items = sixteen_pairs()
    alone = {}
    for item in items:
        alone.update(score(judge_server, [item]))
    batched = score(judge_server, items)
    reordered = score(judge_server, list(reversed(items)))
    for item_id, result in alone.items():
        for other in (batched[item_id], reordered[item_id]):
            assert abs(other["score"] - result["score"]) <= TOLERANCE, item_id
            assert other["response"]["transcript"] == result["response"]["transcript"]
            assert other["query"]["prosody"] == result["query"]["prosody"]


def test_scores_are_deterministic(judge_server):
    items = sixteen_pairs()[:4]
    assert score(judge_server, items) == score(judge_server, items)


def test_bad_items_do_not_change_their_neighbours(judge_server):
    good = sixteen_pairs()[:3]
    alone = score(judge_server, good)
    mixed = [good[0]]
    for name, data, _ in BAD_AUDIO:
        mixed.append({"id": f"bad-{name}", "query": {"audio": data}, "response": {"audio": good[1]["response"]["audio"]}})
    mixed += good[1:]
    results = score(judge_server, mixed)
    for name, _, error_type in BAD_AUDIO:
        assert results[f"bad-{name}"]["error"]["type"] == error_type
    for item in good:
        assert abs(results[item["id"]]["score"] - alone[item["id"]]["score"]) <= TOLERANCE


def test_group_analyses_the_query_once_and_matches_pair_scores(judge_server):
    pairs = load_example_pairs()
    query = pairs[0]["query"]
    responses = sorted({p["response"] for p in pairs})[:4]
    body = {"id": "g", "query": {"audio": audio_b64(query), "labels": {"emotion": "sad"}},
            "responses": [{"id": r, "audio": audio_b64(r)} for r in responses]}
    reply = httpx.post(judge_server.url + "/v1/score/group", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-batch-clips"] == "5" and reply.headers["x-batch-unique-clips"] == "5"
    group = reply.json()
    singles = score(judge_server, [
        {"id": r, "query": {"audio": audio_b64(query), "labels": {"emotion": "sad"}}, "response": {"audio": audio_b64(r)}}
        for r in responses
    ])
    for result in group["results"]:
        assert abs(result["score"] - singles[result["id"]]["score"]) <= TOLERANCE
    assert group["group"]["count"] == 4 and group["query"]["transcript"]


def test_analyze_reports_transcript_labels_and_prosody(judge_server):
    body = {"items": [{"id": "q", "audio": audio_b64(load_example_pairs()[0]["query"])}]}
    reply = httpx.post(judge_server.url + "/v1/analyze", json=body, timeout=120)
    analysis = reply.json()["results"][0]["analysis"]
    assert "job" in analysis["transcript"].lower() and analysis["transcript_source"] == "asr"
    assert analysis["labels"]["gender"]["label"] in ("male", "female")
    if judge_server.backend == "paras2s-polytone":
        assert set(analysis["labels"]) == {"emotion", "sarcasm", "age", "gender"}
        assert abs(sum(analysis["labels"]["emotion"]["probabilities"].values()) - 1.0) < 1e-3
    assert {"f0_median_hz", "f0_range_semitones", "energy_dbfs", "speaking_rate_syllables_per_s"} <= set(analysis["prosody"])


def test_client_transcript_skips_asr(judge_server):
    item = sixteen_pairs()[0]
    item["query"]["text"] = "a transcript the client already had"
    result = score(judge_server, [item])[item["id"]]
    assert result["query"]["transcript"] == "a transcript the client already had"
    assert result["query"]["transcript_source"] == "client"
