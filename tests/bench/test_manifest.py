"""Manifest format v1: round trip and one clear error per kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark_client.manifest import (
    MANIFEST_VERSION,
    BenchItem,
    ManifestError,
    ReferenceReply,
    load_manifest,
    make_header,
    write_manifest,
)
from judge_service.testing import voiced_wav


def _item(root: Path, item_id: str = "a.happy", **overrides) -> dict:
    (root / "audio").mkdir(exist_ok=True)
    (root / "audio" / f"{item_id}.wav").write_bytes(voiced_wav(0.3))
    record = {
        "id": item_id, "split": "synthetic", "dimension": "emotion", "style": "happy", "contrast_group": "a",
        "audio": f"audio/{item_id}.wav", "labels": {"emotion": "happy", "gender": "female"}, "text": "Hello there.",
        "scenario_id": "emotion-0001", "speaker": "v1", "duration_s": 0.3,
        "reference_replies": [{"level": 5, "text": "Yay!", "tone": "happy"}, {"level": 1, "text": "Oh no.", "tone": "sad-comforting"}],
    }  # fmt: skip
    record.update(overrides)
    return record


def _write(root: Path, records: list, header: dict | None = None) -> Path:
    path = root / "manifest.jsonl"
    head = header if header is not None else make_header({"name": "test"}, "2026-01-01T00:00:00+00:00")
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in [head, *records]) + "\n")
    return path


def test_round_trip_through_write_and_load(tmp_path: Path) -> None:
    record = _item(tmp_path)
    _write(tmp_path, [record, _item(tmp_path, "a.sad", style="sad", labels={"emotion": "sad"})])
    manifest = load_manifest(tmp_path)  # a folder resolves to its manifest.jsonl
    assert manifest.header["version"] == MANIFEST_VERSION
    item = manifest.items[0]
    assert item.audio_path == tmp_path / "audio" / "a.happy.wav"
    assert item.reply(5) == ReferenceReply(5, "Yay!", "happy")
    assert [r.level for r in item.reference_replies] == [5, 1]
    with pytest.raises(KeyError, match="level 3"):
        item.reply(3)
    out = tmp_path / "copy"
    out.mkdir()
    write_manifest(out / "manifest.jsonl", manifest.header, manifest.items)
    copied = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    assert copied == [i.to_record() for i in manifest.items]


def test_absolute_audio_paths_are_allowed(tmp_path: Path) -> None:
    record = _item(tmp_path)
    record["audio"] = str(tmp_path / "audio" / "a.happy.wav")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", [record])
    assert load_manifest(tmp_path / "sub").items[0].audio_path == tmp_path / "audio" / "a.happy.wav"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("split"), r"missing field\(s\) \['split'\]"),
        (lambda r: r.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (lambda r: r.update(id="has space"), "must match"),
        (lambda r: r.update(split="dev"), "split 'dev' must be one of"),
        (lambda r: r.update(dimension="accent"), "dimension 'accent' must be one of"),
        (lambda r: r.update(style="sarcastic"), "style 'sarcastic' is not a emotion label"),
        (lambda r: r.update(labels={"emotion": "sad"}), r"labels\['emotion'\] must equal style 'happy'"),
        (lambda r: r.update(labels={"emotion": "happy", "age": "teen"}), "label age='teen' is not known"),
        (lambda r: r.update(duration_s=-1), "duration_s must be a positive number"),
        (lambda r: r.update(reference_replies=[{"level": 7, "text": "x", "tone": "happy"}]), "level must be 1..5"),
        (lambda r: r.update(reference_replies=[{"level": 5, "text": "x"}]), r"must be \{level, text, tone\}"),
        (lambda r: r.update(reference_replies=[{"level": 5, "text": "x", "tone": "t"}] * 2), "two replies at one level"),
        (lambda r: r.update(audio="audio/missing.wav"), "does not exist"),
        (lambda r: r.update(contrast_group=""), "'contrast_group' must be a non-empty string"),
    ],
)
def test_bad_item_names_line_and_field(tmp_path: Path, mutate, message: str) -> None:
    record = _item(tmp_path)
    mutate(record)
    path = _write(tmp_path, [record])
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(path)
    assert f"{path}:2" in str(info.value)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest.*paras2s-bench generate"):
        load_manifest(tmp_path / "nope.jsonl")
    path = _write(tmp_path, [_item(tmp_path), _item(tmp_path)])
    with pytest.raises(ManifestError, match=r"duplicate id 'a.happy' \(first on line 2\)"):
        load_manifest(path)
    _write(tmp_path, ["{not json"])
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: not valid JSON"):
        load_manifest(tmp_path)
    _write(tmp_path, [_item(tmp_path)], header={"format": "paras2s-bench-manifest", "version": 99})
    with pytest.raises(ManifestError, match="version 99 is not supported"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(json.dumps(_item(tmp_path)) + "\n")
    with pytest.raises(ManifestError, match="first line must be a header"):
        load_manifest(tmp_path)
    _write(tmp_path, [])
    with pytest.raises(ManifestError, match="no items"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(ManifestError, match="empty manifest"):
        load_manifest(tmp_path)


def test_check_audio_can_be_skipped(tmp_path: Path) -> None:
    record = _item(tmp_path, audio="audio/later.wav")
    _write(tmp_path, [record])
    assert load_manifest(tmp_path, check_audio=False).items[0].audio == "audio/later.wav"


def test_bench_item_reply_lookup_is_by_level() -> None:
    item = BenchItem(id="x", split="real", dimension="gender", style="male", contrast_group="g", audio="a.wav",
                     labels={"gender": "male"}, reference_replies=(ReferenceReply(4, "ok", "neutral"),))
    assert item.reply(4).text == "ok"


def test_merge_makes_audio_paths_absolute_and_refuses_id_collisions(tmp_path: Path) -> None:
    from benchmark_client.manifest import merge_manifests

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load_manifest(_write(tmp_path / "a", [_item(tmp_path / "a")]))
    second = load_manifest(_write(tmp_path / "b", [_item(tmp_path / "b", "b.sad", style="sad", split="real",
                                                         labels={"emotion": "sad"})]))  # fmt: skip
    merged = merge_manifests(tmp_path / "m" / "manifest.jsonl", [first, second], "2026-01-01T00:00:00+00:00")
    assert [i.id for i in merged.items] == ["a.happy", "b.sad"]
    assert merged.items[1].audio_path == (tmp_path / "b" / "audio" / "b.sad.wav").resolve()
    assert {i.split for i in merged.items} == {"synthetic", "real"}
    with pytest.raises(ManifestError, match="is also in"):
        merge_manifests(tmp_path / "m2" / "manifest.jsonl", [first, first], "2026-01-01T00:00:00+00:00")
