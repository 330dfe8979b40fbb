"""The distilled reward model: features, save/load, training on results files, and the backend
served over real HTTP."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from judge_service.judge.distilled import (
    CLIP_FEATURES, LOG_DURATION_INDEX, N_MELS, DistilledConfig, DistilledRewardModel, baseline_tone_terms, clip_features,
    syllable_nuclei,
)
from judge_service.features import log_mel_spectrogram
from judge_service.judge.analysers import PROSODY_FEATURES
from judge_service.judge.prosody import count_syllables, measure_prosody

RATE_COLUMN = LOG_DURATION_INDEX + 1 + PROSODY_FEATURES.index("speaking_rate_syllables_per_s")
RATE_MISSING_COLUMN = LOG_DURATION_INDEX + 1 + PROSODY_FEATURES.index("rate_missing")
from judge_service.judge.training.distill import agreement, distill
from judge_service.testing import RunningServer, b64, voiced_clip, voiced_wav


def test_clip_features_are_per_clip_and_batch_invariant() -> None:
    clips = [voiced_clip(d, f0_hz=f, seed=k) for k, (d, f) in enumerate([(0.5, 120), (2.3, 220), (1.1, 180)])]
    for speaking_rate in ("none", "nuclei"):
        together = clip_features(clips, speaking_rate)
        alone = np.stack([clip_features([c], speaking_rate)[0] for c in clips])
        assert together.shape == (3, CLIP_FEATURES)
        np.testing.assert_allclose(together, alone, atol=1e-5)
        assert together[1, LOG_DURATION_INDEX] == pytest.approx(np.log(2.3), abs=1e-3)
    torch.manual_seed(0)
    learned = DistilledRewardModel(DistilledConfig("t", "1", speaking_rate="learned"))
    together = learned.clip_features(clips)
    np.testing.assert_allclose(together, np.stack([learned.clip_features([c])[0] for c in clips]), atol=1e-4)
    with pytest.raises(ValueError, match="speaking_rate 'words'"):
        clip_features(clips, "words")


def _mel(clip: np.ndarray) -> np.ndarray:
    mel, frames = log_mel_spectrogram([torch.from_numpy(clip)], n_mels=N_MELS)
    return mel[0, :, : int(frames[0])].numpy()


def syllable_train(count: int, period_s: float = 0.25) -> np.ndarray:
    """``count`` voiced 150 ms 'syllables' every ``period_s``, a quiet breathy gap between."""
    syllable = voiced_clip(0.15, f0_hz=140, seed=1)
    gap = np.zeros(int(16_000 * period_s) - syllable.shape[0], np.float32)
    gap += 1e-3 * np.random.default_rng(0).standard_normal(gap.shape[0]).astype(np.float32)
    return np.concatenate([np.zeros(1600, np.float32)] + [np.concatenate([syllable, gap])] * count)


@pytest.mark.parametrize("count", [1, 4, 9])
def test_syllable_nuclei_counts_loudness_peaks_of_the_vowel_band(count: int) -> None:
    assert syllable_nuclei(_mel(syllable_train(count))) == count
    assert syllable_nuclei(_mel(np.zeros(16_000, np.float32))) in (0, 1)  # flat: at most one peak
    assert syllable_nuclei(np.zeros((N_MELS, 2), np.float32)) == 0


def test_nuclei_rate_fills_the_rate_slot_with_the_teachers_rule() -> None:
    clip = syllable_train(8)
    none, nuclei = clip_features([clip], "none")[0], clip_features([clip], "nuclei")[0]
    assert none[RATE_COLUMN] == 0.0 and none[RATE_MISSING_COLUMN] == 1.0
    speech_s = measure_prosody(clip, None).speech_duration_s
    assert nuclei[RATE_MISSING_COLUMN] == 0.0
    assert nuclei[RATE_COLUMN] == pytest.approx(8 / speech_s, rel=1e-5)
    others = [c for c in range(CLIP_FEATURES) if c not in (RATE_COLUMN, RATE_MISSING_COLUMN)]
    np.testing.assert_array_equal(none[others], nuclei[others])


def test_syllable_nuclei_track_the_syllables_of_real_speech() -> None:
    """The bundled example clips (TTS and recorded): nuclei within 25% of the text's syllables."""
    from judge_service.audio import AudioLimits, decode_audio
    from judge_service.demo import examples_dir, load_example_pairs

    texts = {}
    for pair in load_example_pairs():
        texts[pair["query"]], texts[pair["response"]] = pair["query_text"], pair["response_text"]
    for name, text in sorted(texts.items()):
        samples = decode_audio(name, (examples_dir() / "audio" / name).read_bytes(), AudioLimits()).samples
        syllables = count_syllables(text)
        assert abs(syllable_nuclei(_mel(samples)) - syllables) <= 0.25 * syllables, (name, text)


def test_learned_rate_counts_with_the_models_own_counter_and_round_trips(tmp_path: Path) -> None:
    from judge_service.judge.prosody import speech_duration_s

    torch.manual_seed(0)
    model = DistilledRewardModel(DistilledConfig("t", "1", speaking_rate="learned"))
    clip = syllable_train(8)
    row = model.clip_features([clip])[0]
    mel = torch.from_numpy(_mel(clip))[None]
    with torch.no_grad():
        count = float(model.syllable_counter(mel, torch.tensor([mel.shape[2]])))
    assert count >= 1.0 and row[RATE_MISSING_COLUMN] == 0.0
    assert row[RATE_COLUMN] == pytest.approx(count / speech_duration_s(clip), rel=1e-4)
    model.save(tmp_path / "model")
    loaded = DistilledRewardModel.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.clip_features([clip]), model.clip_features([clip]))
    with torch.no_grad():  # a counter that hears less than one syllable: the rate stays missing
        model.syllable_counter.out.bias.fill_(-20.0)
    assert model.clip_features([clip])[0][RATE_MISSING_COLUMN] == 1.0
    with pytest.raises(ValueError, match="syllable_counter is needed"):
        clip_features([clip], "learned")


def test_baseline_tone_terms_follow_the_baseline_rubric() -> None:
    """The vectorised tone terms equal the baseline's own ``arousal_from_prosody`` and tone fit on
    the student's prosody (nuclei rate), clip by clip, including clips with no F0 or no rate."""
    from judge_service.judge import baseline
    from judge_service.judge.prosody import syllable_rate

    speech = [voiced_clip(d, f0_hz=f, seed=k, amplitude=a) for k, (d, f, a) in
              enumerate([(1.5, 110, 0.05), (2.0, 230, 0.3), (0.8, 170, 0.6)])]  # fmt: skip
    noise = np.random.default_rng(0).normal(0, 0.05, 16_000).astype(np.float32)  # no F0, some nuclei
    clips = [*speech, noise, np.zeros(16_000, dtype=np.float32) + 1e-4 * speech[0][:16_000]]  # neither
    features = clip_features(clips, "nuclei")
    expected = []
    for clip, row in zip(clips, features):
        prosody = measure_prosody(clip, None)
        mel, frames = log_mel_spectrogram([torch.from_numpy(clip)], n_mels=N_MELS)
        nuclei = syllable_nuclei(mel[0, :, : int(frames[0])].numpy())
        if nuclei:
            prosody = dataclasses.replace(prosody, speaking_rate_syllables_per_s=syllable_rate(nuclei, prosody.speech_duration_s))
        expected.append(baseline.arousal_from_prosody(prosody))
    f0_missing = features[:, LOG_DURATION_INDEX + 1 + PROSODY_FEATURES.index("f0_missing")]
    assert f0_missing.tolist() == [0, 0, 0, 1, 1] and features[:, RATE_MISSING_COLUMN].tolist() == [0, 0, 0, 0, 1]
    x = torch.from_numpy(features)
    for q in range(len(clips)):
        terms = baseline_tone_terms(x[[q] * len(clips)], x).numpy()
        np.testing.assert_allclose(terms[:, 0], expected[q], atol=1e-5)
        np.testing.assert_allclose(terms[:, 1], expected, atol=1e-5)
        fit = [min(1.0, max(0.0, 1.0 - abs(a - baseline.MIRROR_FRACTION * expected[q]))) for a in expected]
        np.testing.assert_allclose(terms[:, 2], fit, atol=1e-5)


@pytest.mark.parametrize(("architecture", "clip_inputs"), [("flat", "all"), ("towers", "summary"), ("towers", "all")])
def test_save_load_round_trip(tmp_path: Path, architecture: str, clip_inputs: str) -> None:
    torch.manual_seed(0)
    model = DistilledRewardModel(DistilledConfig("teacher", "v1", architecture=architecture, clip_inputs=clip_inputs))
    x = torch.randn(5, 2 * CLIP_FEATURES)
    model.save(tmp_path / "m")
    loaded = DistilledRewardModel.load(tmp_path / "m")
    assert torch.equal(model(x), loaded(x)) and ((loaded(x) >= 1) & (loaded(x) <= 5)).all()
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "format": "other/9"}))
    with pytest.raises(ValueError, match="format 'other/9'"):
        DistilledRewardModel.load(tmp_path / "m")


def test_summary_inputs_ignore_the_mel_statistics_and_towers_measure_both_clips_alike() -> None:
    torch.manual_seed(0)
    model = DistilledRewardModel(DistilledConfig("teacher", "v1", architecture="towers", clip_inputs="summary"))
    x = torch.randn(6, 2 * CLIP_FEATURES)
    moved = x.clone()
    moved[:, : 2 * N_MELS] += 5.0  # the query's per-bin mel statistics
    moved[:, CLIP_FEATURES : CLIP_FEATURES + 2 * N_MELS] -= 3.0  # and the response's
    assert torch.equal(model(x), model(moved))
    # One tower for both sides: swapping the clips swaps their embeddings and nothing else.
    swapped = torch.cat([x[:, CLIP_FEATURES:], x[:, :CLIP_FEATURES]], dim=1)
    q = model.students[0].clip_tower(((x - model.input_mean) / model.input_std)[:, model.clip_columns])
    r = model.students[0].clip_tower(((swapped - model.input_mean) / model.input_std)[:, model.clip_columns])
    assert not torch.allclose(q, r)
    assert torch.equal(model.students[0].clip_tower(((swapped - model.input_mean) / model.input_std)[:, CLIP_FEATURES + model.clip_columns]), q)


def _save_as_single_student_format(model: DistilledRewardModel, folder: Path, config: dict) -> None:
    """Write ``model`` as formats /1 to /3 did: one student, its weights at the top level."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({k.removeprefix("students.0."): v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def test_ensemble_scores_the_mean_of_its_students_and_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = DistilledRewardModel(DistilledConfig("teacher", "v1", architecture="towers", clip_inputs="summary", members=3))
    model.input_std.uniform_(0.5, 2.0)
    x = torch.randn(5, 2 * CLIP_FEATURES)
    with torch.no_grad():
        each = torch.stack([model.student_scores(k, x) for k in range(3)])
        assert each.std(dim=0).min() > 0  # the students differ
        torch.testing.assert_close(model(x), each.mean(dim=0))
        model.save(tmp_path / "m")
        loaded = DistilledRewardModel.load(tmp_path / "m")
        assert loaded.config.members == 3 and torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="members"):
        DistilledConfig("teacher", "v1", members=0)


def test_format_3_single_students_load_as_one_member(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = DistilledRewardModel(DistilledConfig("teacher", "v1", architecture="towers", clip_inputs="summary",
                                                 speaking_rate="nuclei"))  # fmt: skip
    config = {"teacher_name": "teacher", "teacher_version": "v1", "hidden": 64, "architecture": "towers",
              "clip_inputs": "summary", "clip_embedding": 16, "speaking_rate": "nuclei", "format": "paras2s-distilled/3"}
    _save_as_single_student_format(model, tmp_path / "m", config)
    loaded = DistilledRewardModel.load(tmp_path / "m")
    assert loaded.config.members == 1
    x = torch.randn(3, 2 * CLIP_FEATURES)
    assert torch.equal(model(x), loaded(x))


def test_format_1_models_still_load_as_flat_over_all_features(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = DistilledRewardModel(DistilledConfig("teacher", "v1"))
    _save_as_single_student_format(model, tmp_path / "m", {"teacher_name": "teacher", "teacher_version": "v1",
                                                           "hidden": 64, "format": "paras2s-distilled/1"})  # fmt: skip
    loaded = DistilledRewardModel.load(tmp_path / "m")
    assert (loaded.config.architecture, loaded.config.clip_inputs, loaded.config.speaking_rate) == ("flat", "all", "none")
    x = torch.randn(3, 2 * CLIP_FEATURES)
    assert torch.equal(model(x), loaded(x))
    with pytest.raises(ValueError, match="architecture 'deep'"):
        DistilledConfig("teacher", "v1", architecture="deep")


def test_cli_choices_match_the_model() -> None:
    from judge_service.cli import (
        DISTILLED_ARCHITECTURES, DISTILLED_CLIP_INPUTS, DISTILLED_PAIR_PRIORS, DISTILLED_SPEAKING_RATES,
    )
    from judge_service.judge.distilled import ARCHITECTURES, CLIP_INPUTS, PAIR_PRIORS, SPEAKING_RATES

    assert DISTILLED_ARCHITECTURES == ARCHITECTURES and DISTILLED_CLIP_INPUTS == tuple(CLIP_INPUTS)
    assert DISTILLED_SPEAKING_RATES == SPEAKING_RATES and DISTILLED_PAIR_PRIORS == PAIR_PRIORS


def _results(tmp_path: Path, name: str, system: str, n: int, teacher: str = "t", transcripts: bool = False) -> Path:
    """A small results file: louder responses got higher teacher scores (a learnable rule);
    with ``transcripts``, the teacher's transcripts of both clips too."""
    items = []
    for k in range(n):
        q, r = tmp_path / f"{name}-q{k}.wav", tmp_path / f"{name}-r{k}.wav"
        q.write_bytes(voiced_wav(0.6, seed=k))
        amplitude = 0.02 + 0.3 * (k % 5) / 4
        import soundfile as sf

        sf.write(r, voiced_clip(0.7, seed=100 + k, amplitude=amplitude), 16_000)
        items.append({"query_audio": str(q), "response_audio": str(r), "score": 1.0 + 4.0 * (k % 5) / 4})
        if transcripts:
            items[-1].update(query_transcript="how are you", response_transcript="fine " * (1 + k % 3))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"run": {"system": system, "judge": {"name": teacher, "version": "1"}}, "items": items}))
    return path


@pytest.mark.parametrize(("architecture", "clip_inputs"), [("flat", "all"), ("towers", "summary")])
def test_distill_learns_its_teacher_and_refuses_mixed_teachers(tmp_path: Path, architecture: str, clip_inputs: str) -> None:
    train = _results(tmp_path, "train", "topline", 40)
    held_out = _results(tmp_path, "eval", "reversed", 20)
    metrics = distill([train], [held_out], tmp_path / "model", epochs=300, architecture=architecture,
                      clip_inputs=clip_inputs, log=lambda _: None)  # fmt: skip
    assert metrics["eval"]["pearson"] > 0.9 and set(metrics["eval_by_system"]) == {"reversed"}
    assert DistilledRewardModel.load(tmp_path / "model").config.architecture == metrics["config"]["architecture"] == architecture
    assert (tmp_path / "model" / "metrics.json").is_file()


def test_distill_with_a_learned_rate_fits_a_counter_on_the_teachers_transcripts(tmp_path: Path) -> None:
    train = _results(tmp_path, "train", "topline", 30, transcripts=True)
    held_out = _results(tmp_path, "eval", "reversed", 10, transcripts=True)
    metrics = distill([train], [held_out], tmp_path / "model", epochs=40, hidden=32, clip_embedding=8,
                      speaking_rate="learned", log=lambda _: None)  # fmt: skip
    counter = metrics["syllable_counter"]
    assert counter["training_clips"] == 60 and counter["eval"]["clips"] == counter["eval_nuclei"]["clips"] == 20
    model = DistilledRewardModel.load(tmp_path / "model")
    assert model.config.speaking_rate == "learned" and model.syllable_counter is not None
    without = _results(tmp_path, "bare", "topline", 12)
    with pytest.raises(ValueError, match="teacher's transcripts"):
        distill([without], [held_out], tmp_path / "m2", epochs=1, speaking_rate="learned", log=lambda _: None)


def test_an_ensembles_first_student_is_the_single_student_of_its_seed(tmp_path: Path) -> None:
    train = _results(tmp_path, "train", "topline", 40)
    held_out = _results(tmp_path, "eval", "reversed", 20)
    kwargs = dict(epochs=60, architecture="towers", clip_inputs="summary", hidden=32, clip_embedding=8, log=lambda _: None)
    single = distill([train], [held_out], tmp_path / "one", members=1, **kwargs)
    pair = distill([train], [held_out], tmp_path / "two", members=2, **kwargs)
    one, two = DistilledRewardModel.load(tmp_path / "one"), DistilledRewardModel.load(tmp_path / "two")
    assert two.config.members == 2 and len(pair["kept_epochs"]) == 2 and single["kept_epochs"] == pair["kept_epochs"][:1]
    first = two.students[0].state_dict()
    assert all(torch.equal(v, first[k]) for k, v in one.students[0].state_dict().items())
    x = one.input_mean + one.input_std * torch.randn(4, 2 * CLIP_FEATURES)  # inputs of the training data's scale
    with torch.no_grad():
        assert torch.equal(one(x), two.student_scores(0, x)) and not torch.equal(one(x), two(x))
    other = _results(tmp_path, "other", "topline", 5, teacher="someone-else")
    with pytest.raises(ValueError, match="one teacher at a time"):
        distill([train, other], [held_out], tmp_path / "m2", epochs=1, log=lambda _: None)
    assert agreement(np.array([1.0, 2.0]), np.array([1.0, 2.0]))["pairs"] == 2


@pytest.mark.parametrize("recipe", [{}, {"speaking_rate": "learned", "pair_prior": "baseline-tone", "members": 2}])
def test_distilled_backend_over_http_is_batch_invariant(tmp_path: Path, recipe: dict) -> None:
    torch.manual_seed(1)
    DistilledRewardModel(DistilledConfig("paras2s-baseline", "x", **recipe)).save(tmp_path / "model")
    env = {"JUDGE_BACKEND": "paras2s-distilled", "JUDGE_DISTILLED_MODEL_PATH": str(tmp_path / "model"),
           "JUDGE_REDIS_URL": "", "JUDGE_CACHE_MAX_ENTRIES": "0"}  # fmt: skip
    pairs = [{"id": f"p{k}", "query": {"audio": b64(voiced_wav(0.8, seed=k))},
              "response": {"audio": b64(voiced_wav(1.0 + 0.2 * k, seed=50 + k))}} for k in range(4)]  # fmt: skip
    with RunningServer(env) as server:
        batch = httpx.post(server.url + "/v1/score", json={"items": pairs}, timeout=60).json()
        alone = [httpx.post(server.url + "/v1/score", json={"items": [p]}, timeout=60).json()["results"][0]["score"]
                 for p in pairs]  # fmt: skip
        info = httpx.get(server.url + "/v1/judge").json()
    assert batch["judge"]["name"] == "paras2s-distilled" and info["name"] == "paras2s-distilled"
    assert batch["judge"]["rubric_version"] == "distilled-from:paras2s-baseline/x"
    got = [r["score"] for r in batch["results"]]
    assert all(1.0 <= s <= 5.0 for s in got) and got == pytest.approx(alone, abs=1e-5)


def test_the_shipped_distilled_model_loads_and_says_what_it_learned() -> None:
    from judge_service.backends.distilled import DistilledBackend
    from judge_service.judge.distilled import default_distilled_model_path

    folder = default_distilled_model_path()
    backend = DistilledBackend(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert backend.model.config.teacher_name == metrics["teacher"]["name"] == "paras2s-baseline"
    assert {"pearson", "spearman", "mae"} <= set(metrics["eval"]) and metrics["eval_pairs"] > 1000
    backend.warm_up()
