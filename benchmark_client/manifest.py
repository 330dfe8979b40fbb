"""ParaS2SBench manifests: one JSONL file describing a benchmark set, validated on load.

Format ``paras2s-bench-manifest``, version 1 (bump ``MANIFEST_VERSION`` on any change that an
old reader would misread). Line 1 is a header, every other line one query item::

    {"format": "paras2s-bench-manifest", "version": 1, "created": "...", "generator": {...}}
    {"id": "emotion-0002.v0.happy", "split": "synthetic", "dimension": "emotion",
     "style": "happy", "contrast_group": "emotion-0002.v0", "audio": "audio/emotion-0002.v0.happy.flac",
     "text": "They moved the team meeting to Friday afternoon.", "scenario_id": "emotion-0002",
     "speaker": "espeak-quincy", "duration_s": 2.41,
     "labels": {"emotion": "happy", "sarcasm": "sincere", "age": "adult", "gender": "male"},
     "reference_replies": [{"level": 5, "text": "...", "tone": "happy"}, ...]}

Fields:
  * ``id``: unique in the file, ``[A-Za-z0-9._:-]{1,128}`` (used as a file stem and a judge item id).
  * ``split``: ``synthetic`` (rendered from the scenario bank's test split) or ``real`` (recorded).
  * ``dimension`` / ``style``: the paralinguistic dimension under test and the style this
    rendering carries; ``style`` must be a label of ``dimension`` (``judge.labels.LABEL_SETS``).
  * ``contrast_group``: items sharing it speak the same text in different styles (the two
    renderings of one text; a real corpus groups one speaker's takes of one sentence).
  * ``audio``: path relative to the manifest's folder (absolute paths are allowed).
  * ``text``: what is said (``null`` where unknown); ``scenario_id``: the scenario-bank seed or
    ``null``; ``speaker``: voice or speaker id; ``duration_s``: seconds, > 0.
  * ``labels``: every known label of the query (at least ``dimension``'s, equal to ``style``).
  * ``reference_replies``: replies at rubric levels 5..1 for *this* style, each with the
    ``tone`` it should be spoken in; reference systems speak them. May be empty for real items
    with no scenario (then only adapters and style-free reference systems can answer them).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from judge_service.judge.labels import LABEL_SETS

MANIFEST_FORMAT = "paras2s-bench-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
SPLITS = ("synthetic", "real")
RUBRIC_LEVELS = (5, 4, 3, 2, 1)

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ITEM_KEYS = frozenset({
    "id", "split", "dimension", "style", "contrast_group", "audio", "text", "scenario_id",
    "speaker", "duration_s", "labels", "reference_replies",
})  # fmt: skip
_REQUIRED_KEYS = frozenset({"id", "split", "dimension", "style", "contrast_group", "audio", "labels"})


class ManifestError(ValueError):
    """A manifest breaks the format; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ReferenceReply:
    level: int
    text: str
    tone: str


@dataclass(frozen=True)
class BenchItem:
    """One spoken query of the benchmark. ``audio_path`` is resolved against the manifest folder."""

    id: str
    split: str
    dimension: str
    style: str
    contrast_group: str
    audio: str
    labels: dict[str, str]
    text: str | None = None
    scenario_id: str | None = None
    speaker: str | None = None
    duration_s: float | None = None
    reference_replies: tuple[ReferenceReply, ...] = ()
    root: Path = field(default=Path("."), compare=False, repr=False)

    @property
    def audio_path(self) -> Path:
        path = Path(self.audio)
        return path if path.is_absolute() else self.root / path

    def reply(self, level: int) -> ReferenceReply:
        for reply in self.reference_replies:
            if reply.level == level:
                return reply
        raise KeyError(f"item {self.id!r} has no reference reply at level {level}")

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        del record["root"]
        record["reference_replies"] = [asdict(r) for r in self.reference_replies]
        return record


@dataclass(frozen=True)
class Manifest:
    path: Path
    header: dict[str, Any]
    items: tuple[BenchItem, ...]

    @property
    def root(self) -> Path:
        return self.path.parent

    def by_id(self) -> dict[str, BenchItem]:
        return {item.id: item for item in self.items}


def make_header(generator: dict[str, Any], created: str) -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "created": created, "generator": generator}


def write_manifest(path: Path, header: dict[str, Any], items: Iterable[BenchItem]) -> None:
    """Write atomically (temp file + rename), header first, items in the given order."""
    lines = [json.dumps(header, sort_keys=True)] + [json.dumps(item.to_record(), sort_keys=True) for item in items]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _fail(where: str, problem: str) -> ManifestError:
    return ManifestError(f"{where}: {problem}")


def _check_header(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict) or record.get("format") != MANIFEST_FORMAT:
        raise _fail(where, f'the first line must be a header {{"format": "{MANIFEST_FORMAT}", "version": '
                           f"{MANIFEST_VERSION}, ...}}; got {str(record)[:120]}")
    version = record.get("version")
    if version != MANIFEST_VERSION:
        raise _fail(where, f"manifest version {version!r} is not supported by this reader (version "
                           f"{MANIFEST_VERSION}); regenerate it with this paras2s-bench")
    return record


def _str_field(record: dict, key: str, where: str, *, optional: bool = False) -> str | None:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(where, f"{key!r} must be a non-empty string, got {value!r}")
    return value


def parse_item(record: Any, root: Path, where: str) -> BenchItem:
    """One item line -> ``BenchItem``; raises ``ManifestError`` naming the field and the fix."""
    if not isinstance(record, dict):
        raise _fail(where, f"an item must be a JSON object, got {type(record).__name__}")
    missing = sorted(_REQUIRED_KEYS - record.keys())
    if missing:
        raise _fail(where, f"missing field(s) {missing}")
    unknown = sorted(record.keys() - _ITEM_KEYS)
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown}; allowed: {sorted(_ITEM_KEYS)}")
    item_id = _str_field(record, "id", where)
    if not _ID_RE.match(item_id):
        raise _fail(where, f"id {item_id!r} must match {_ID_RE.pattern}")
    split = _str_field(record, "split", where)
    if split not in SPLITS:
        raise _fail(where, f"split {split!r} must be one of {SPLITS}")
    dimension = _str_field(record, "dimension", where)
    if dimension not in LABEL_SETS:
        raise _fail(where, f"dimension {dimension!r} must be one of {tuple(LABEL_SETS)}")
    style = _str_field(record, "style", where)
    if style not in LABEL_SETS[dimension]:
        raise _fail(where, f"style {style!r} is not a {dimension} label; one of {LABEL_SETS[dimension]}")
    labels = record["labels"]
    if not isinstance(labels, dict):
        raise _fail(where, f"'labels' must be an object, got {labels!r}")
    for dim, label in labels.items():
        if dim not in LABEL_SETS or label not in LABEL_SETS[dim]:
            raise _fail(where, f"label {dim}={label!r} is not known; dimensions and labels: {dict(LABEL_SETS)}")
    if labels.get(dimension) != style:
        raise _fail(where, f"labels[{dimension!r}] must equal style {style!r}, got {labels.get(dimension)!r}")
    duration_s = record.get("duration_s")
    if duration_s is not None and (not isinstance(duration_s, (int, float)) or not duration_s > 0):
        raise _fail(where, f"duration_s must be a positive number of seconds, got {duration_s!r}")
    replies_raw = record.get("reference_replies") or []
    if not isinstance(replies_raw, list):
        raise _fail(where, "'reference_replies' must be a list")
    replies = []
    for k, reply in enumerate(replies_raw):
        if not isinstance(reply, dict) or set(reply) != {"level", "text", "tone"}:
            raise _fail(where, f"reference_replies[{k}] must be {{level, text, tone}}, got {reply!r}")
        if reply["level"] not in RUBRIC_LEVELS or not isinstance(reply["text"], str) or not isinstance(reply["tone"], str):
            raise _fail(where, f"reference_replies[{k}]: level must be 1..5 and text/tone strings, got {reply!r}")
        replies.append(ReferenceReply(int(reply["level"]), reply["text"], reply["tone"]))
    if len({r.level for r in replies}) != len(replies):
        raise _fail(where, "reference_replies has two replies at one level")
    return BenchItem(
        id=item_id, split=split, dimension=dimension, style=style,
        contrast_group=_str_field(record, "contrast_group", where), audio=_str_field(record, "audio", where),
        labels=dict(labels), text=_str_field(record, "text", where, optional=True),
        scenario_id=_str_field(record, "scenario_id", where, optional=True),
        speaker=_str_field(record, "speaker", where, optional=True),
        duration_s=None if duration_s is None else float(duration_s),
        reference_replies=tuple(sorted(replies, key=lambda r: -r.level)), root=root,
    )  # fmt: skip


def load_manifest(path: str | Path, *, check_audio: bool = True) -> Manifest:
    """Read and validate a manifest (a file, or a folder holding ``manifest.jsonl``).

    Raises ``ManifestError`` on the first problem: bad JSON, a missing or unsupported header,
    a bad field, a duplicate id, or (``check_audio``) an audio file that does not exist.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest; make one with `paras2s-bench generate --out DIR`")
    root = path.parent
    header: dict[str, Any] | None = None
    items: list[BenchItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(where, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if header is None:
            header = _check_header(record, where)
            continue
        item = parse_item(record, root, where)
        if item.id in seen:
            raise _fail(where, f"duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = number
        if check_audio and not item.audio_path.is_file():
            raise _fail(where, f"audio file {item.audio_path} does not exist")
        items.append(item)
    if header is None:
        raise ManifestError(f"{path}: empty manifest (no header line)")
    if not items:
        raise ManifestError(f"{path}: the manifest has a header but no items")
    return Manifest(path=path, header=header, items=tuple(items))


def merge_manifests(out_path: Path, manifests: list[Manifest], created: str) -> Manifest:
    """One manifest holding every item of ``manifests`` (e.g. the synthetic and the real split),
    with absolute audio paths so it can live anywhere. Ids must not collide."""
    items: list[BenchItem] = []
    seen: dict[str, Path] = {}
    for manifest in manifests:
        for item in manifest.items:
            if item.id in seen:
                raise ManifestError(f"{manifest.path}: id {item.id!r} is also in {seen[item.id]}; ids must be unique")
            seen[item.id] = manifest.path
            record = item.to_record()
            record["audio"] = str(item.audio_path.resolve())
            items.append(parse_item(record, out_path.parent, f"{manifest.path} ({item.id})"))
    header = make_header({"name": "paras2s-bench merge", "sources": [
        {"path": str(m.path.resolve()), "generator": m.header.get("generator")} for m in manifests]}, created)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out_path, header, items)
    return load_manifest(out_path)
