"""PolyTone synthesis: voices, styles, the renderer and a tiny dataset build."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("pyworld")
pytest.importorskip("piper")

from judge_service.judge.labels import AGES, GENDERS, LABEL_SETS  # noqa: E402
from judge_service.judge.polytone import render as render_module  # noqa: E402
from judge_service.judge.polytone.dataset import POLYTONE_VERSION, build_dataset, main, plan_clips, select_scenarios  # noqa: E402
from judge_service.judge.polytone.render import EspeakNotFoundError, Renderer  # noqa: E402
from judge_service.judge.polytone.styles import REPLY_TONE_LABELS, STYLES, labels_for_style  # noqa: E402
from judge_service.judge.polytone.voices import (  # noqa: E402
    ALL_VOICES,
    BENCHMARK_VOICES,
    HELDOUT_VOICES,
    TRAIN_VOICES,
    VOICE_SETS,
    VoiceProfile,
    voice_by_name,
)
from judge_service.judge.prosody import measure_prosody  # noqa: E402
from judge_service.judge.scenario_bank import REPLY_TONES  # noqa: E402

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

TEXTS = (
    "They moved the team meeting to Friday afternoon.",
    "My daughter is leaving for college on Saturday.",
    "My roommate is practicing the trumpet again tonight.",
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


# -- voices and styles -------------------------------------------------------------------------


def test_voice_sets_are_disjoint_and_each_covers_both_genders_and_all_ages():
    names = [v.name for v in ALL_VOICES]
    assert len(names) == len(set(names)) >= 16
    for a, b in [("train", "heldout"), ("train", "benchmark"), ("heldout", "benchmark")]:
        assert not {v.name for v in VOICE_SETS[a]} & {v.name for v in VOICE_SETS[b]}
        variants = [{v.espeak_voice.split("+")[-1] for v in VOICE_SETS[x] if v.engine == "espeak"} for x in (a, b)]
        assert not variants[0] & variants[1], (a, b)  # no espeak speaker in two sets
    for split, voices in VOICE_SETS.items():
        assert {v.gender for v in voices} == set(GENDERS), split
        assert {v.age for v in voices} == set(AGES), split
        assert {v.engine for v in voices} == {"piper", "espeak"}, split
        adults = [v for v in voices if v.age in ("adult", "senior")]
        assert {v.gender for v in adults} == set(GENDERS), split
    children = [v for v in ALL_VOICES if v.age == "child"]
    seniors = [v for v in ALL_VOICES if v.age == "senior"]
    assert len(children) >= 3 and len(seniors) >= 3
    # Genuinely different: distinct (engine, base voice, F0 target, formant warp) per profile.
    assert len({(v.engine, v.espeak_voice, v.f0_median_hz, v.formant_scale) for v in children}) == len(children)
    assert len({(v.engine, v.espeak_voice, v.f0_median_hz, v.formant_scale) for v in seniors}) == len(seniors)


def test_voice_profile_validates_its_fields():
    with pytest.raises(ValueError, match="gender"):
        VoiceProfile("x", "piper", "boy", "adult", f0_median_hz=120.0)
    with pytest.raises(ValueError, match="espeak_voice"):
        VoiceProfile("x", "espeak", "male", "adult")
    with pytest.raises(ValueError, match="f0_median_hz"):
        VoiceProfile("x", "piper", "male", "adult")
    with pytest.raises(KeyError, match="known voices"):
        voice_by_name("nobody")


def test_styles_cover_every_label_and_reply_tone_with_valid_labels():
    for style in LABEL_SETS["emotion"] + LABEL_SETS["sarcasm"] + REPLY_TONES:
        assert style in STYLES
    assert set(REPLY_TONE_LABELS) == set(REPLY_TONES)
    for style in list(STYLES) + list(AGES) + list(GENDERS):
        labels = labels_for_style(style)
        assert labels["emotion"] in LABEL_SETS["emotion"] and labels["sarcasm"] in LABEL_SETS["sarcasm"]
    assert labels_for_style("sarcastic") == {"emotion": "neutral", "sarcasm": "sarcastic"}
    assert labels_for_style("sad-comforting")["emotion"] == "sad"


# -- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize("voice", [pytest.param(v, id=v.name, marks=needs_espeak if v.engine == "espeak" else ())
                                   for v in ALL_VOICES])  # fmt: skip
def test_every_voice_renders_finite_16k_float32(renderer, voice):
    x = renderer.render("Hello there, how are you?", voice, "neutral", seed=0)
    assert x.dtype == np.float32 and x.ndim == 1
    assert np.isfinite(x).all()
    assert 0.05 < np.abs(x).max() < 1.0
    assert 0.7 < x.shape[0] / 16_000 < 4.0


@pytest.mark.parametrize("name", ["piper-alto", pytest.param("espeak-m4-senior", marks=needs_espeak)])
def test_render_is_deterministic_per_seed(renderer, name):
    voice = voice_by_name(name)
    a = renderer.render(TEXTS[0], voice, "fearful", seed=7)
    b = Renderer().render(TEXTS[0], voice, "fearful", seed=7)  # fresh process state, no cache
    c = renderer.render(TEXTS[0], voice, "fearful", seed=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def _prosody(renderer, voice, style, texts=TEXTS):
    ps = [measure_prosody(renderer.render(t, voice, style, seed=i), t) for i, t in enumerate(texts)]
    f0 = [p.f0_median_hz for p in ps if p.f0_median_hz is not None]
    ranges = [p.f0_range_semitones for p in ps if p.f0_range_semitones is not None]
    return {
        "f0": float(np.median(f0)) if f0 else float("nan"),
        "f0_range": float(np.mean(ranges)) if ranges else float("nan"),
        "duration": float(np.mean([p.duration_s for p in ps])),
        "energy": float(np.mean([p.energy_dbfs for p in ps])),
    }


@pytest.mark.parametrize("name", ["piper-alto", pytest.param("espeak-m3", marks=needs_espeak)])
def test_styles_move_prosody_in_the_documented_direction(renderer, name):
    voice = voice_by_name(name)
    sad, happy = _prosody(renderer, voice, "sad"), _prosody(renderer, voice, "happy")
    assert sad["duration"] > 1.15 * happy["duration"]  # slower
    assert sad["f0"] < 0.85 * happy["f0"]  # lower
    assert sad["energy"] < happy["energy"] - 6.0  # softer
    angry, neutral = _prosody(renderer, voice, "angry"), _prosody(renderer, voice, "neutral")
    assert angry["energy"] > neutral["energy"] + 4.0 and angry["duration"] < neutral["duration"]
    sincere, sarcastic = _prosody(renderer, voice, "sincere"), _prosody(renderer, voice, "sarcastic")
    assert sarcastic["duration"] > 1.1 * sincere["duration"]  # slower, drawn out
    assert sarcastic["f0"] < 0.95 * sincere["f0"]  # lower
    if voice.engine == "piper":
        # Exaggerated pitch movement. Not asserted for espeak: measure_prosody's YIN (threshold
        # 0.1, 49 ms frames) keeps only ~10 % of its frames, and drops the moving-pitch ones.
        assert sarcastic["f0_range"] > sincere["f0_range"] + 1.0


def _final_rise_semitones(samples: np.ndarray) -> float:
    """Median F0 of the last tenth of the voiced span minus that of its 0.6-0.7 tenth, in
    semitones (WORLD's harvest tracker: the analysers' YIN keeps too few final frames to see a
    rise reliably on a single clip)."""
    import pyworld

    f0, _ = pyworld.harvest(samples.astype(np.float64), 16_000, f0_floor=60.0, f0_ceil=600.0, frame_period=10.0)
    voiced = np.flatnonzero(f0 > 0)
    u = (voiced - voiced[0]) / (voiced[-1] - voiced[0])
    st = 12.0 * np.log2(f0[voiced])
    return float(np.median(st[u >= 0.9]) - np.median(st[(u >= 0.6) & (u < 0.7)]))


@needs_espeak
def test_surprise_ends_rising(renderer):
    """Surprise's terminal rise, the cue that tells it from happiness: espeak-ng ends a
    declarative in a steep fall, and before the final part was flattened the added rise still
    ended falling there (-2.7 semitones on espeak-m3, against +3.2 now)."""
    voice = voice_by_name("espeak-m3")

    def rise(style):
        return float(np.mean([_final_rise_semitones(renderer.render(t, voice, style, seed=i)) for i, t in enumerate(TEXTS)]))

    assert rise("surprised") > 1.0 and rise("surprised") > rise("neutral") + 3.0


def test_fear_trembles(renderer):
    """Fear's F0 irregularity (tremor and jitter), measured as the analysers measure it, sets it
    apart from the other high-pitched styles."""
    voice = voice_by_name("piper-joe")

    def jitter(style):
        return float(np.mean([measure_prosody(renderer.render(t, voice, style, seed=i), t).f0_jitter_st
                              for i, t in enumerate(TEXTS)]))

    assert jitter("fearful") > 1.5 * max(jitter("neutral"), jitter("happy"), jitter("surprised"))


@needs_espeak
def test_children_are_higher_than_adult_men_and_women_higher_than_men(renderer):
    def median_f0(voices):
        return float(np.median([_prosody(renderer, v, "neutral", TEXTS[:1])["f0"] for v in voices]))

    train_men = [v for v in TRAIN_VOICES if v.age == "adult" and v.gender == "male"]
    train_women = [v for v in TRAIN_VOICES if v.age == "adult" and v.gender == "female"]
    children = [v for v in ALL_VOICES if v.age == "child"]
    men, women, kids = median_f0(train_men), median_f0(train_women), median_f0(children)
    assert men < 150 < women < 260 < kids, (men, women, kids)


def test_piper_noise_is_refused_because_it_cannot_be_seeded(renderer):
    noisy = dataclasses.replace(voice_by_name("piper-joe"), piper_noise_scale=0.5)
    with pytest.raises(ValueError, match="cannot be seeded"):
        renderer.render(TEXTS[0], noisy, "neutral", seed=0)


def test_missing_espeak_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng here
    with pytest.raises(EspeakNotFoundError, match="espeak-ng is not installed.*apt-get install espeak-ng"):
        Renderer().render(TEXTS[0], voice_by_name("espeak-f2"), "neutral", seed=0)
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    with pytest.raises(EspeakNotFoundError):
        Renderer().render(TEXTS[0], voice_by_name("espeak-m3"), "neutral", seed=0)


# -- dataset -----------------------------------------------------------------------------------


def test_plan_renders_every_text_in_every_style_with_the_right_voices():
    scenarios = select_scenarios(max_per_dimension=6)
    specs = plan_clips(scenarios, seed=3, voices_per_style=4, heldout_voices_per_style=2)
    assert specs == plan_clips(scenarios, seed=3, voices_per_style=4, heldout_voices_per_style=2)
    train_names, heldout_names = {v.name for v in TRAIN_VOICES}, {v.name for v in HELDOUT_VOICES}
    assert not {s.voice for s in specs} & {v.name for v in BENCHMARK_VOICES}
    for sc in scenarios:
        queries = [s for s in specs if s.scenario_id == sc.id and s.role == "query"]
        replies = [s for s in specs if s.scenario_id == sc.id and s.role == "reply"]
        assert {q.style for q in queries} == set(sc.styles)
        assert {q.text for q in queries} == {sc.text}  # the PolyTone property: words carry no clue
        per_style = [sum(q.style == st for q in queries) for st in sc.styles]
        assert per_style[0] == per_style[1] == (4 if sc.split == "train" else 2)
        assert {q.voice for q in queries} <= (train_names if sc.split == "train" else heldout_names)
        assert len(replies) == 10 and len({r.voice for r in replies}) == 1
        for q in queries:
            if sc.dimension == "age":
                assert q.labels["age"] == q.style and q.render_style == "neutral"
            elif sc.dimension == "gender":
                assert q.labels["gender"] == q.style and q.labels["age"] != "child"
            else:
                assert q.labels[sc.dimension] == q.style
        if sc.dimension in ("emotion", "sarcasm"):  # same speakers for both styles
            assert {q.voice for q in queries if q.style == sc.styles[0]} == {
                q.voice for q in queries if q.style == sc.styles[1]
            }


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("polytone")
    records = build_dataset(
        out, workers=1, seed=0, max_seeds_per_dimension=2, voices_per_style=1, heldout_voices_per_style=1,
        dimensions=("emotion",), reply_levels=(5,), log=lambda *_: None,
    )  # fmt: skip
    return out, records


def test_tiny_build_manifest_is_valid(tiny_build):
    out, records = tiny_build
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert lines == records and len(records) == 8  # 2 scenarios x 2 styles x (1 query + 1 reply)
    assert {r["split"] for r in records} == {"train", "test"}
    for r in records:
        for dim, labels in LABEL_SETS.items():
            assert r["labels"][dim] in labels
        assert r["voice_split"] == {"train": "train", "test": "heldout"}[r["split"]]
        assert ("level" in r) == ("tone" in r) == (r["role"] == "reply")
        info = sf.info(str(out / r["path"]))
        assert info.samplerate == 16_000 and info.channels == 1 and info.subtype == "PCM_16"
        assert info.frames == round(r["duration_s"] * 16_000) and 0.5 < r["duration_s"] < 20
    by_scenario: dict[str, list[dict]] = {}
    for r in records:
        if r["role"] == "query":
            by_scenario.setdefault(r["scenario_id"], []).append(r)
    for queries in by_scenario.values():
        assert len({q["style"] for q in queries}) == 2 and len({q["text"] for q in queries}) == 1


def test_build_is_deterministic_and_resumable(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    kwargs = dict(workers=1, seed=5, max_seeds_per_dimension=1, voices_per_style=1, dimensions=("sarcasm",),
                  reply_levels=(), log=lambda *_: None)  # fmt: skip
    a = build_dataset(tmp_path / "a", **kwargs)
    b = build_dataset(tmp_path / "b", **kwargs)
    assert a == b and len(a) == 2
    for r in a:
        assert (tmp_path / "a" / r["path"]).read_bytes() == (tmp_path / "b" / r["path"]).read_bytes()
    # Resume: a missing clip is rendered again, bit-identical; the others are kept.
    missing = tmp_path / "a" / a[0]["path"]
    original = missing.read_bytes()
    missing.unlink()
    logs: list[str] = []
    assert build_dataset(tmp_path / "a", **{**kwargs, "log": logs.append}) == a
    assert "1 already on disk, 1 to render" in logs[0]
    assert missing.read_bytes() == original
    # A clip of another POLYTONE_VERSION (styles, voices or renderer changed since) is stale:
    # it is rendered again, not reused.
    manifest = tmp_path / "a" / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["polytone_version"] = "0.9"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    logs.clear()
    assert build_dataset(tmp_path / "a", **{**kwargs, "log": logs.append}) == a
    assert "1 already on disk, 1 to render" in logs[0]
    assert all(r["polytone_version"] == POLYTONE_VERSION for r in a)


def test_cli_dry_run_prints_the_plan(capsys, tmp_path):
    assert main(["--out", str(tmp_path), "--dry-run", "--max-seeds-per-dimension", "1"]) == 0
    assert "total" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--dimensions", "colour"])
