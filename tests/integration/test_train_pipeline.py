"""`paras2s-judge train` end to end on a tiny PolyTone build, then the trained judge served."""

from __future__ import annotations

import json

import httpx
import pytest

from judge_service.demo import example_score_request
from judge_service.testing import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from judge_service.judge.training.train import train_judge

    root = tmp_path_factory.mktemp("train")
    summary = train_judge(root / "model", root / "data", real_speech_dir=None, seed=0, workers=2,
                          max_seeds_per_dimension=2, log=lambda _: None)
    return root / "model", summary


def test_training_writes_loadable_safetensors_and_a_summary(tiny_model):
    model_dir, summary = tiny_model
    for name in ("analysers.safetensors", "analysers.json", "rubric.safetensors", "rubric.json", "training.json"):
        assert (model_dir / name).exists(), name
    assert summary["rubric_examples"] > 0 and summary["analyser_training_clips"] > 0
    training = json.loads((model_dir / "training.json").read_text())
    assert training["dataset"]["max_seeds_per_dimension"] == 2
    assert training["rubric_text"].startswith("whisper-transcripts")
    assert json.loads((model_dir / "rubric.json").read_text())["style_fit_weight"] > 0
    # The rubric trained on what Whisper heard: one transcript per query and per reply clip, cached.
    caches = sorted((model_dir.parent / "data" / "cache").glob("transcripts-*.json"))
    manifest = [json.loads(line) for line in (model_dir.parent / "data" / "manifest.jsonl").read_text().splitlines()]
    assert len(caches) == 2  # the query clips' and the reply clips'
    lengths = sorted(len(json.loads(p.read_text())) for p in caches)
    assert lengths == sorted([sum(r["role"] == "query" for r in manifest), sum(r["role"] == "reply" for r in manifest)])


def test_the_service_serves_a_freshly_trained_judge(tiny_model):
    model_dir, _ = tiny_model
    env = {"JUDGE_BACKEND": "paras2s-polytone", "JUDGE_JUDGE_MODEL_PATH": str(model_dir)}
    with RunningServer(env) as server:
        reply = httpx.post(server.url + "/v1/score", json=example_score_request(), timeout=300)
    assert reply.status_code == 200
    body = reply.json()
    assert body["judge"]["name"] == "paras2s-polytone"
    for result in body["results"]:
        assert 1.0 <= result["score"] <= 5.0
        assert set(result["query"]["labels"]) == {"emotion", "sarcasm", "age", "gender"}
