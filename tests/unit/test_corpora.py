"""Real-split corpus loaders: fake corpus trees for every layout, plus the real ../shared/speech copies."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark_client.corpora import (
    CORPUS_LOADERS,
    CorpusError,
    build_real_split,
    detect_corpus,
    load_cremad,
    load_emodb,
    load_iemocap,
    load_ravdess,
    load_tess,
    real_replies,
    subsample,
)
from benchmark_client.manifest import RUBRIC_LEVELS, load_manifest
from judge_service.judge.labels import EMOTIONS
from judge_service.judge.polytone.styles import REPLY_TONE_LABELS

SAMPLE_RATE_HZ = 16_000
CLIP_S = 0.2
_TIME_S = np.arange(int(SAMPLE_RATE_HZ * CLIP_S)) / SAMPLE_RATE_HZ
_TONE = (0.1 * np.sin(2 * np.pi * 220.0 * _TIME_S)).astype(np.float32)
SPEECH_DIR = Path(os.environ.get("PARAS2S_SPEECH_DIR") or Path(__file__).resolve().parents[3] / "shared" / "speech")
speech = pytest.mark.skipif(not SPEECH_DIR.is_dir(), reason=f"{SPEECH_DIR} is absent")


def _clip(path: Path) -> Path:
    """A 0.2 s, 16 kHz sine clip at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _TONE, SAMPLE_RATE_HZ, format="FLAC" if path.suffix.lower() == ".flac" else "WAV")
    return path


def _tree(root: Path, names: list[str]) -> Path:
    for name in names:
        _clip(root / name)
    return root


def _by_id(load) -> dict:
    return {item.id: item for item in load.items}


# ---------------------------------------------------------------- TESS
def test_tess_our_layout(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tess", [
        "OAF/angry/OAF_back_angry.flac", "OAF/surprised/OAF_back_surprised.flac", "YAF/fearful/YAF_dog_fearful.wav",
        "OAF/angry/notes.wav", "OAF/angry/OAF_back_calm.wav",
    ])  # fmt: skip
    (root / "OAF" / "angry" / "README.txt").write_text("not audio")
    load = load_tess(root)
    items = _by_id(load)
    assert sorted(items) == ["tess:OAF_back_angry", "tess:OAF_back_surprised", "tess:YAF_dog_fearful"]
    oaf = items["tess:OAF_back_angry"]
    assert (oaf.split, oaf.dimension, oaf.style) == ("real", "emotion", "angry")
    assert oaf.labels == {"emotion": "angry", "gender": "female", "age": "senior"}
    assert oaf.text == "Say the word back." and oaf.contrast_group == "tess:OAF:back" and oaf.speaker == "tess:OAF"
    assert Path(oaf.audio).is_absolute() and Path(oaf.audio) == root / "OAF/angry/OAF_back_angry.flac"
    assert oaf.duration_s == pytest.approx(CLIP_S)
    assert items["tess:YAF_dog_fearful"].labels == {"emotion": "fearful", "gender": "female", "age": "adult"}
    assert items["tess:OAF_back_surprised"].contrast_group == "tess:OAF:back"
    assert load.skipped == {"unparsed file name": 1, "unknown emotion: calm": 1}
    assert [r.level for r in oaf.reference_replies] == list(RUBRIC_LEVELS)


def test_tess_original_layout_ps_and_case(tmp_path: Path) -> None:
    root = _tree(tmp_path / "TESS Toronto emotional speech set data", [
        "OAF_angry/OAF_back_angry.wav", "OAF_Pleasant_surprise/OAF_back_ps.wav", "OAF_Fear/OAF_back_fear.wav",
        "YAF_pleasant_surprised/YAF_Dog_pleasant_surprise.WAV", "oaf_neutral/OA_bite_neutral.wav",
    ])  # fmt: skip
    items = _by_id(load_tess(root))
    assert items["tess:OAF_back_ps"].style == "surprised"
    assert items["tess:OAF_back_fear"].style == "fearful"
    yaf = items["tess:YAF_Dog_pleasant_surprise"]
    assert (yaf.style, yaf.speaker, yaf.contrast_group) == ("surprised", "tess:YAF", "tess:YAF:dog")
    assert yaf.text == "Say the word dog."
    # The original corpus's one "OA_" file sits in OAF's folder: the folder names the speaker.
    assert items["tess:OA_bite_neutral"].speaker == "tess:OAF"
    assert items["tess:OA_bite_neutral"].labels["age"] == "senior"


# ---------------------------------------------------------------- EMO-DB
def test_emodb(tmp_path: Path) -> None:
    root = _tree(tmp_path / "emodb", [
        "wav/03a01Fa.wav", "wav/03a01Wa.wav", "wav/03a01Lb.wav", "wav/08b10Td.flac", "wav/03x01Fa.wav",
        "wav/16a02Xa.wav", "wav/99a04Na.wav", "wav/09a05ec.wav",
    ])  # fmt: skip
    load = load_emodb(root)
    items = _by_id(load)
    assert sorted(items) == ["emodb:03a01Fa", "emodb:03a01Wa", "emodb:08b10Td", "emodb:09a05ec", "emodb:99a04Na"]
    assert items["emodb:03a01Fa"].labels == {"emotion": "happy", "gender": "male", "age": "adult"}
    assert items["emodb:03a01Wa"].style == "angry" and items["emodb:03a01Wa"].contrast_group == "emodb:03:a01"
    assert items["emodb:08b10Td"].labels == {"emotion": "sad", "gender": "female", "age": "adult"}
    assert items["emodb:09a05ec"].style == "disgust"  # lower-case letters still parse by position
    assert items["emodb:99a04Na"].labels == {"emotion": "neutral"}  # unknown speaker: no gender/age
    assert all(item.text is None for item in items.values())
    assert load.skipped == {
        "emotion not in label set: boredom": 1, "unknown emotion code: X": 1, "unparsed file name": 1,
    }  # fmt: skip


# ---------------------------------------------------------------- RAVDESS
def test_ravdess(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ravdess", [
        "Actor_01/03-01-05-01-01-01-01.wav", "Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-01-02-01-01-01-01.wav",
        "Actor_01/03-02-05-01-01-01-01.wav", "Actor_01/01-01-05-01-01-01-01.wav", "Actor_02/03-01-08-02-02-02-02.wav",
        "Actor_02/03-01-09-01-01-01-02.wav", "Actor_02/03-01-03.wav",
    ])  # fmt: skip
    load = load_ravdess(root)
    items = _by_id(load)
    assert sorted(items) == [
        "ravdess:03-01-01-01-01-01-01", "ravdess:03-01-05-01-01-01-01", "ravdess:03-01-08-02-02-02-02",
    ]  # fmt: skip
    angry = items["ravdess:03-01-05-01-01-01-01"]
    assert angry.labels == {"emotion": "angry", "gender": "male", "age": "adult"}
    assert (angry.contrast_group, angry.speaker) == ("ravdess:01:01", "ravdess:01")
    assert angry.text == "Kids are talking by the door."
    assert items["ravdess:03-01-01-01-01-01-01"].contrast_group == "ravdess:01:01"
    surprised = items["ravdess:03-01-08-02-02-02-02"]
    assert surprised.labels["gender"] == "female" and surprised.text == "Dogs are sitting by the door."
    assert load.skipped == {
        "emotion not in label set: calm": 1, "not audio-only (modality 01)": 1, "song (vocal channel 02)": 1,
        "unknown emotion code: 09": 1, "unparsed file name": 1,
    }  # fmt: skip


# ---------------------------------------------------------------- CREMA-D
_CREMAD_FILES = ["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1001_DFA_HAP_HI.wav", "AudioWAV/1002_ieo_neu_xx.wav",
                 "AudioWAV/1003_XYZ_SAD_LO.wav", "AudioWAV/1001_DFA_CAL_XX.wav", "AudioWAV/1001_DFA.wav"]  # fmt: skip


def test_cremad_without_demographics(tmp_path: Path) -> None:
    load = load_cremad(_tree(tmp_path / "crema-d", _CREMAD_FILES))
    items = _by_id(load)
    assert sorted(items) == [
        "cremad:1001_DFA_ANG_XX", "cremad:1001_DFA_HAP_HI", "cremad:1002_ieo_neu_xx", "cremad:1003_XYZ_SAD_LO",
    ]  # fmt: skip
    angry = items["cremad:1001_DFA_ANG_XX"]
    assert angry.labels == {"emotion": "angry"}
    assert (angry.contrast_group, angry.speaker) == ("cremad:1001:DFA", "cremad:1001")
    assert angry.text == "Don't forget a jacket."
    assert items["cremad:1001_DFA_HAP_HI"].contrast_group == angry.contrast_group
    assert items["cremad:1002_ieo_neu_xx"].text == "It's eleven o'clock."
    assert items["cremad:1003_XYZ_SAD_LO"].text is None  # unknown sentence code: kept, text unknown
    assert load.skipped == {"unknown emotion code: CAL": 1, "unparsed file name": 1}


@pytest.mark.parametrize("csv_in_parent", [False, True])
def test_cremad_with_demographics(tmp_path: Path, csv_in_parent: bool) -> None:
    root = _tree(tmp_path / "crema-d", _CREMAD_FILES)
    csv_dir = tmp_path if csv_in_parent else root
    (csv_dir / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,62,Female,Asian,Not Hispanic\n"
    )
    items = _by_id(load_cremad(root))
    assert items["cremad:1001_DFA_ANG_XX"].labels == {"emotion": "angry", "gender": "male", "age": "adult"}
    assert items["cremad:1002_ieo_neu_xx"].labels == {"emotion": "neutral", "gender": "female", "age": "senior"}
    assert items["cremad:1003_XYZ_SAD_LO"].labels == {"emotion": "sad"}  # not in the CSV


def test_cremad_files_directly_under_root(tmp_path: Path) -> None:
    root = _tree(tmp_path / "flat", ["1001_DFA_ANG_XX.flac"])
    assert [item.id for item in load_cremad(root).items] == ["cremad:1001_DFA_ANG_XX"]


# ---------------------------------------------------------------- IEMOCAP
_EVAL = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]
C-E2:\tExcited;\t()

[14.8872 - 18.0175]\tSes01F_impro01_F002\tfru\t[2.0000, 3.5000, 3.5000]

[20.0000 - 21.0000]\tSes01F_impro01_M003\tang\t[1.5000, 4.0000, 4.0000]
"""
_TRANSCRIPT = """Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
Ses01F_impro01_M001 [010.0100-011.3925]: Do you have your forms?
Ses01F_impro01_F002 [014.8872-018.0175]: Yeah.
"""


def test_iemocap(tmp_path: Path) -> None:
    session = tmp_path / "IEMOCAP_full_release" / "Session1"
    (session / "dialog" / "EmoEvaluation" / "Categorical").mkdir(parents=True)
    (session / "dialog" / "transcriptions").mkdir(parents=True)
    (session / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(_EVAL)
    (session / "dialog" / "EmoEvaluation" / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07junk")
    (session / "dialog" / "transcriptions" / "Ses01F_impro01.txt").write_text(_TRANSCRIPT)
    wav = session / "sentences" / "wav" / "Ses01F_impro01"
    _tree(wav, ["Ses01F_impro01_F000.wav", "Ses01F_impro01_M001.wav", "Ses01F_impro01_F002.wav"])  # M003 missing
    root = tmp_path / "IEMOCAP_full_release"
    load = load_iemocap(root)
    items = _by_id(load)
    assert sorted(items) == ["iemocap:Ses01F_impro01_F000", "iemocap:Ses01F_impro01_M001"]
    f000 = items["iemocap:Ses01F_impro01_F000"]
    assert f000.labels == {"emotion": "neutral", "gender": "female"}
    assert (f000.speaker, f000.contrast_group) == ("iemocap:Ses01F", "iemocap:Ses01F_impro01_F000")
    assert f000.text == "Excuse me."
    m001 = items["iemocap:Ses01F_impro01_M001"]
    assert m001.style == "happy" and m001.speaker == "iemocap:Ses01M" and m001.labels["gender"] == "male"
    assert m001.text == "Do you have your forms?"
    assert load.skipped == {"emotion not in label set: fru": 1, "missing audio": 1}
    assert detect_corpus(root) == "iemocap"


# ---------------------------------------------------------------- errors, detection, replies
@pytest.mark.parametrize("name", sorted(CORPUS_LOADERS))
def test_empty_folder_is_a_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(CorpusError, match=r"no .* under .*expected"):
        CORPUS_LOADERS[name](tmp_path)
    with pytest.raises(CorpusError, match="is not a folder"):
        CORPUS_LOADERS[name](tmp_path / "missing")


def test_all_skipped_error_lists_reasons(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="boredom"):
        load_emodb(_tree(tmp_path, ["03a01La.wav"]))


def test_unreadable_and_duplicate_audio_are_counted(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["03a01Fa.wav", "copy/03a01Fa.flac"])
    (root / "03a01Wa.wav").write_bytes(b"not audio at all")
    assert load_emodb(root).skipped == {"duplicate id": 1, "unreadable audio": 1}


def test_detect_corpus(tmp_path: Path) -> None:
    assert detect_corpus(_tree(tmp_path / "t", ["OAF/angry/OAF_back_angry.wav", "YAF_ps/YAF_dog_ps.wav"])) == "tess"
    assert detect_corpus(_tree(tmp_path / "e", ["03a01Fa.wav"])) == "emodb"
    assert detect_corpus(_tree(tmp_path / "r", ["Actor_01/03-01-05-01-01-01-01.wav"])) == "ravdess"
    assert detect_corpus(_tree(tmp_path / "c", ["AudioWAV/1001_DFA_ANG_XX.wav"])) == "cremad"
    assert detect_corpus(_tree(tmp_path / "x", ["a.wav", "b.flac"])) is None
    assert detect_corpus(tmp_path / "missing") is None


def test_real_replies_cover_every_emotion() -> None:
    replies = real_replies()
    assert set(replies) == set(EMOTIONS)
    for emotion, levels in replies.items():
        assert [r.level for r in levels] == list(RUBRIC_LEVELS), emotion
        for reply in levels:
            assert reply.tone in REPLY_TONE_LABELS, (emotion, reply)
            assert len(reply.text.split()) <= 30 and reply.text.isascii(), (emotion, reply)
        assert len({r.text for r in levels}) == len(levels), emotion


# ---------------------------------------------------------------- build_real_split
def _fake_tess(root: Path, words: int = 6) -> Path:
    names = [f"{spk}/{emo}/{spk}_w{k}_{emo}.wav" for spk in ("OAF", "YAF") for emo in ("angry", "sad", "happy")
             for k in range(words)]  # fmt: skip
    return _tree(root, names)


def test_build_real_split_round_trip(tmp_path: Path) -> None:
    tess = _fake_tess(tmp_path / "tess", words=2)
    emodb = _tree(tmp_path / "emodb", ["03a01Fa.wav", "03a01Wa.wav", "03a01Lb.wav"])
    manifest = build_real_split(tmp_path / "out", {"tess": tess, "emodb": emodb})
    assert manifest.path == tmp_path / "out" / "manifest.jsonl"
    reread = load_manifest(tmp_path / "out")
    assert reread.items == manifest.items and len(manifest.items) == 12 + 2
    generator = manifest.header["generator"]
    assert generator["name"] == "paras2s-bench real" and generator["max_per_style"] is None and generator["seed"] == 0
    assert generator["corpora"] == {"emodb": str(emodb), "tess": str(tess)}
    assert generator["skipped"] == {"emodb": {"emotion not in label set: boredom": 1}, "tess": {}}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", manifest.header["created"])
    for item in manifest.items:
        assert item.split == "real" and item.audio_path.is_file() and len(item.reference_replies) == 5
    assert manifest.by_id()["emodb:03a01Fa"].reference_replies == real_replies()["happy"]


def test_build_real_split_subsamples_whole_groups_deterministically(tmp_path: Path) -> None:
    tess = _fake_tess(tmp_path / "tess", words=6)  # 12 groups of 3 (angry, sad, happy)
    ids = {}
    for seed in (0, 0, 1):
        out = tmp_path / f"out{len(ids)}"
        manifest = build_real_split(out, {"tess": tess}, max_per_style=4, seed=seed)
        assert Counter(item.style for item in manifest.items) == {"angry": 4, "sad": 4, "happy": 4}
        assert set(Counter(item.contrast_group for item in manifest.items).values()) == {3}  # whole groups
        assert manifest.header["generator"]["max_per_style"] == 4
        ids.setdefault(seed, []).append([item.id for item in manifest.items])
    assert ids[0][0] == ids[0][1]
    assert ids[0][0] != ids[1][0]


def test_subsample_fills_with_partial_groups_when_whole_ones_do_not_fit(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["03a01Fa.wav", "03a01Fb.wav", "03a01Wa.wav", "08a01Wa.wav", "08a01Ta.wav"])
    chosen = subsample(load_emodb(root).items, max_per_style=1, seed=0)
    assert Counter(item.style for item in chosen) == {"happy": 1, "angry": 1, "sad": 1}


def test_build_real_split_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unknown corpus"):
        build_real_split(tmp_path, {"librispeech": tmp_path})
    with pytest.raises(CorpusError, match="no corpora"):
        build_real_split(tmp_path, {})
    with pytest.raises(ValueError, match="max_per_style"):
        build_real_split(tmp_path, {"tess": tmp_path}, max_per_style=0)


# ---------------------------------------------------------------- the real copies in ../shared/speech
@speech
@pytest.mark.speech
def test_real_tess() -> None:
    load = load_tess(SPEECH_DIR / "tess")
    assert len(load.items) == 2800 and load.skipped == {}
    assert Counter((item.speaker, item.style) for item in load.items) == {
        (f"tess:{spk}", emo): 200 for spk in ("OAF", "YAF") for emo in EMOTIONS
    }
    assert len({item.text for item in load.items}) == 200
    assert set(Counter(item.contrast_group for item in load.items).values()) == {7}
    ages = {item.speaker: item.labels["age"] for item in load.items}
    assert ages == {"tess:OAF": "senior", "tess:YAF": "adult"}
    assert {item.labels["gender"] for item in load.items} == {"female"}


@speech
@pytest.mark.speech
def test_real_emodb() -> None:
    files = sorted((SPEECH_DIR / "emodb").glob("*.flac"))
    boredom = sum(1 for path in files if path.stem[5] == "L")
    load = load_emodb(SPEECH_DIR / "emodb")
    assert len(files) == 535 and boredom > 0
    assert load.skipped == {"emotion not in label set: boredom": boredom}
    assert len(load.items) == len(files) - boredom
    assert {item.style for item in load.items} == set(EMOTIONS) - {"surprised"}
    genders = {item.speaker: item.labels["gender"] for item in load.items}
    males = {"03", "10", "11", "12", "15"}
    assert genders == {f"emodb:{s}": "male" if s in males else "female"
                       for s in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")}  # fmt: skip
    assert all(item.labels["age"] == "adult" for item in load.items)
