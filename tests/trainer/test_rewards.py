"""Reward adapters against real judge processes: TRL-style calls, OpenRLHF's protocol over real
HTTP, verl's compute_score. The fake backend checks the plumbing (which scores go where); one
test uses the real judge and real TTS."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from judge_service.testing import RunningServer, ThreadedUvicorn, metric_value, voiced_wav
from trainer_client.client import Pair, SyncJudgeClient
from trainer_client.rewards import AsyncParaS2SReward, ParaS2SReward, query_groups
from trainer_client.speech import completion_text, split_tone

FAKE = {"JUDGE_BACKEND": "fake", "JUDGE_REDIS_URL": "", "JUDGE_CACHE_MAX_ENTRIES": "0"}


@pytest.fixture(scope="module")
def fake_judge():
    with RunningServer(FAKE) as server:
        yield server


def _tone_audio(completion, **row):
    """A stand-in TTS for plumbing tests: the pitch encodes the text, so different texts differ."""
    text = completion_text(completion)
    if text == "BROKEN":
        return b"garbage, not audio"
    return voiced_wav(0.6, f0_hz=100.0 + 7 * (sum(map(ord, text)) % 40))


def _trl_batch(tmp_path: Path) -> dict:
    """Two prompts x 3 generations, as TRL's GRPOTrainer lays them out (groups contiguous)."""
    paths = []
    for k in range(2):
        path = tmp_path / f"q{k}.wav"
        path.write_bytes(voiced_wav(0.8, seed=k))
        paths.append(str(path))
    completions = ["[happy] Great!", "Okay.", "BROKEN", "[sad-comforting] I'm sorry.", "Sure.", "Noted."]
    return {"prompts": ["<q0>"] * 3 + ["<q1>"] * 3, "completions": completions,
            "query_audio": [paths[0]] * 3 + [paths[1]] * 3, "emotion": ["happy"] * 3 + ["sad"] * 3}


def test_helpers() -> None:
    assert query_groups(["a", "a", "b", "a"]) == [(0, 2), (2, 3), (3, 4)]
    assert query_groups([]) == []
    assert split_tone("[sad-comforting]  I'm sorry.") == ("sad-comforting", "I'm sorry.")
    assert split_tone("[shouting] Hey") == ("neutral", "[shouting] Hey")
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"


def test_trl_reward_scores_each_group_in_one_call_and_none_for_unscorable(tmp_path, fake_judge) -> None:
    batch = _trl_batch(tmp_path)
    before = metric_value(httpx.get(fake_judge.url + "/metrics").text, "judge_requests_total", route="/v1/score/group")
    reward = ParaS2SReward(fake_judge.url, _tone_audio)
    rewards = reward(**batch)
    reward.close()
    after = metric_value(httpx.get(fake_judge.url + "/metrics").text, "judge_requests_total", route="/v1/score/group")
    assert after - before == 2  # one group call per prompt
    assert rewards[2] is None and all(1.0 <= r <= 5.0 for k, r in enumerate(rewards) if k != 2)
    with SyncJudgeClient(fake_judge.url) as judge:  # each reward is that pair's judge score
        expected = [judge.score([Pair(batch["query_audio"][k], _tone_audio(c))])[0].score
                    for k, c in enumerate(batch["completions"]) if k != 2]  # fmt: skip
    assert [r for k, r in enumerate(rewards) if k != 2] == expected
    unit = ParaS2SReward(fake_judge.url, _tone_audio, reward_scale="unit")
    assert [None if r is None else (r - 1) / 4 for r in rewards] == pytest.approx(unit(**batch), nan_ok=True)
    unit.close()
    assert reward.__name__ == "paras2s_judge"


def test_async_trl_reward_matches_the_sync_one(tmp_path, fake_judge) -> None:
    batch = _trl_batch(tmp_path)
    sync = ParaS2SReward(fake_judge.url, _tone_audio)
    expected = sync(**batch)
    sync.close()

    async def go():
        reward = AsyncParaS2SReward(fake_judge.url, _tone_audio)
        try:
            return await reward(**batch)
        finally:
            await reward.aclose()

    assert asyncio.run(go()) == expected


def test_reward_errors_name_the_fix(tmp_path, fake_judge) -> None:
    batch = _trl_batch(tmp_path)
    del batch["query_audio"]
    with pytest.raises(KeyError, match="no column 'query_audio'.*query_audio_column"):
        ParaS2SReward(fake_judge.url, _tone_audio)(**batch)
    with pytest.raises(ValueError, match="reward_scale"):
        ParaS2SReward(fake_judge.url, reward_scale="log")


def test_reward_function_pickles_without_its_connection(tmp_path, fake_judge) -> None:
    from pickle import dumps, loads  # a round trip of our own object, as trainers do; never for models

    reward = ParaS2SReward(fake_judge.url)  # default hook: SpeakCompletion
    reward._client = SyncJudgeClient(fake_judge.url)
    clone = loads(dumps(reward))
    assert clone._client is None and clone.judge_url == fake_judge.url
    reward.close()


class _FakeSpeak:
    def __call__(self, completion, **row):
        return _tone_audio(completion)


def test_openrlhf_remote_reward_protocol_over_http(tmp_path, fake_judge) -> None:
    from trainer_client.openrlhf_server import create_app

    batch = _trl_batch(tmp_path)
    queries = [p + c for p, c in zip(batch["prompts"], batch["completions"])]
    with ThreadedUvicorn(create_app(fake_judge.url, failure_reward=-1.0, speak=_FakeSpeak())) as server:
        url = server.url
        reply = httpx.post(url + "/get_reward", json={"query": queries, "prompts": batch["prompts"],
                                                      "labels": batch["query_audio"]}, timeout=60)  # fmt: skip
        missing = httpx.post(url + "/get_reward", json={"query": queries}, timeout=60)
    assert reply.status_code == 200
    body = reply.json()
    sync = ParaS2SReward(fake_judge.url, _tone_audio)
    expected = sync(**batch)
    sync.close()
    assert body["rewards"] == [-1.0 if e is None else e for e in expected]
    assert body["extra_logs"]["judge_score"][2] is None
    assert missing.status_code == 422 and "label_key" in missing.json()["error"]


def test_verl_compute_score(tmp_path, fake_judge, monkeypatch) -> None:
    from trainer_client import verl

    batch = _trl_batch(tmp_path)
    monkeypatch.setenv(verl.JUDGE_URL_ENV, fake_judge.url)
    monkeypatch.setattr(verl, "SpeakCompletion", _FakeSpeak)
    verl._STATE.clear()
    one = verl.compute_score("paras2s", "Okay.", batch["query_audio"][0])
    many = verl.compute_score_batch(["paras2s"] * 6, batch["completions"], batch["query_audio"])
    assert one == many[1] and 1.0 <= one["score"] <= 5.0
    assert many[2]["score"] == 0.0 and many[2]["error"].startswith("audio_unreadable")
    monkeypatch.delenv(verl.JUDGE_URL_ENV)
    verl._STATE.clear()
    with pytest.raises(RuntimeError, match="PARAS2S_JUDGE_URL"):
        verl.compute_score("paras2s", "Okay.", batch["query_audio"][0])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_real_judge_hears_the_spoken_completions() -> None:
    """Real judge, real TTS (SpeakCompletion): a tone tag changes the audio and the judge's view
    of the reply's tone; the reward is the judge's score of that audio."""
    from judge_service.demo import examples_dir, load_example_pairs

    pair = load_example_pairs()[0]
    query = str(examples_dir() / "audio" / pair["query"])
    with RunningServer({"JUDGE_REDIS_URL": ""}) as judge:
        reward = ParaS2SReward(judge.url)
        completions = ["[sad-comforting] I'm so sorry. That sounds really hard.",
                       "[excited] I'm so sorry. That sounds really hard."]  # fmt: skip
        rewards = reward(prompts=["q", "q"], completions=completions, query_audio=[query, query])
        tones = [s.result["response"]["tone"] for s in reward.last_groups[0].scores]
        reward.close()
    assert all(isinstance(r, float) and 1.0 <= r <= 5.0 for r in rewards)
    # The tag reached the audio: the comforting rendering is heard as calmer than the excited one.
    assert tones[0]["arousal"] < tones[1]["arousal"]
