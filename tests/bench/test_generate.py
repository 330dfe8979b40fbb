"""The synthetic split: planning (pure, full size) and a tiny real rendering."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from benchmark_client.generate import choose_texts, generate, plan_items
from benchmark_client.manifest import load_manifest
from judge_service.judge.polytone.voices import BENCHMARK_VOICES, HELDOUT_VOICES, TRAIN_VOICES, voice_by_name
from judge_service.judge.scenario_bank import load_scenarios


@pytest.fixture(scope="module")
def full_plan():
    return plan_items(per_dimension=100, seed=0)


def test_full_split_is_4_dimensions_x_100_texts_x_2_styles(full_plan) -> None:
    items = [item for item, _ in full_plan]
    assert len(items) == 800
    assert Counter(i.dimension for i in items) == {"emotion": 200, "sarcasm": 200, "age": 200, "gender": 200}
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(item.contrast_group, []).append(item)
    assert len(groups) == 400
    for members in groups.values():
        a, b = members
        assert a.text == b.text and a.style != b.style and a.scenario_id == b.scenario_id
    for dimension in ("emotion", "sarcasm", "age", "gender"):
        texts = {i.text for i in items if i.dimension == dimension}
        assert len(texts) == 100, dimension  # distinct texts, not repeats


def test_only_test_split_scenarios_and_never_a_training_voice(full_plan) -> None:
    test_ids = {s.id for s in load_scenarios(split="test")}
    seen_voices = {job.voice for _, job in full_plan}
    assert {item.scenario_id for item, _ in full_plan} <= test_ids
    assert seen_voices <= {v.name for v in BENCHMARK_VOICES}
    assert not seen_voices & {v.name for v in TRAIN_VOICES + HELDOUT_VOICES}


def test_style_lives_in_the_voice_or_the_prosody_only(full_plan) -> None:
    by_group: dict[str, list] = {}
    for item, job in full_plan:
        by_group.setdefault(item.contrast_group, []).append((item, job))
        voice = voice_by_name(job.voice)
        assert item.labels[item.dimension] == item.style
        if item.dimension in ("emotion", "sarcasm"):
            assert job.style == item.style and voice.age == "adult"
        else:
            assert job.style == "neutral"
            assert (voice.age if item.dimension == "age" else voice.gender) == item.style
        assert [r.level for r in item.reference_replies] == [5, 4, 3, 2, 1]
    for members in by_group.values():
        if members[0][0].dimension in ("emotion", "sarcasm"):
            assert members[0][1].voice == members[1][1].voice  # same speaker, only the style differs


def test_plan_is_a_function_of_the_seed() -> None:
    a, b, c = (plan_items(per_dimension=20, seed=s) for s in (0, 0, 1))
    assert [(i.id, j.voice, j.seed, i.text) for i, j in a] == [(i.id, j.voice, j.seed, i.text) for i, j in b]
    assert [(j.voice, j.seed) for _, j in a] != [(j.voice, j.seed) for _, j in c]


def test_asking_for_more_texts_than_the_templates_make_is_an_error() -> None:
    scenarios = load_scenarios(dimension="age", split="test")[:1]
    with pytest.raises(ValueError, match="distinct texts"):
        choose_texts(scenarios, 500, seed=0)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_generate_renders_a_valid_deterministic_manifest(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", per_dimension=1, seed=3, workers=0, log=lambda _: None)
    assert len(first.items) == 8
    again = load_manifest(tmp_path / "a")
    assert [i.to_record() for i in again.items] == [i.to_record() for i in first.items]
    for item in first.items:
        info = sf.info(str(item.audio_path))
        assert info.samplerate == 16_000 and info.channels == 1
        assert item.duration_s == pytest.approx(info.frames / 16_000, abs=1e-3)
    # Deterministic audio: a second build of two of the same items gives identical samples.
    second = generate(tmp_path / "b", per_dimension=1, seed=3, workers=0, dimensions=("sarcasm",), log=lambda _: None)
    by_id = {i.id: i for i in first.items}
    for item in second.items:
        assert sf.read(item.audio_path)[0].tolist() == sf.read(by_id[item.id].audio_path)[0].tolist()
    # Resumable: a rerun renders nothing and rewrites the same items.
    log: list[str] = []
    generate(tmp_path / "a", per_dimension=1, seed=3, workers=0, log=log.append)
    assert not any(line.startswith("[render]") for line in log)


def test_cli_train_split_uses_train_scenarios_and_training_voices_only(tmp_path: Path) -> None:
    from benchmark_client.cli import main

    assert main(["generate", "--out", str(tmp_path), "--per-dimension", "1", "--split", "train", "--workers", "0"]) == 0
    manifest = load_manifest(tmp_path)
    assert len(manifest.items) == 8
    train_ids = {s.id for s in load_scenarios(split="train")}
    assert {i.scenario_id for i in manifest.items} <= train_ids
    assert {i.speaker for i in manifest.items} <= {v.name for v in TRAIN_VOICES}
