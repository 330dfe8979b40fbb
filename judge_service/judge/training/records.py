"""Labelled clips for training and evaluation, from the PolyTone manifest and real corpora.

A ``ClipRecord`` names an audio file and whatever labels are known; an unknown label is
``None`` and is masked out of that head's loss and metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from judge_service.judge.labels import LABEL_SETS

SENIOR_MIN_AGE_YEARS = 60


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip. ``group`` is the unit that evaluation splits must keep apart
    (a speaker for real corpora, a voice for synthetic data)."""

    path: Path
    source: str  # "polytone", "tess", "emodb", "librispeech"
    group: str
    labels: dict[str, str | None]
    text: str | None = None
    meta: dict[str, object] = field(default_factory=dict)


def _check(labels: dict[str, str | None]) -> dict[str, str | None]:
    for dim, label in labels.items():
        if label is not None and label not in LABEL_SETS[dim]:
            raise ValueError(f"label {label!r} is not in the {dim} label set {LABEL_SETS[dim]}")
    return {dim: labels.get(dim) for dim in LABEL_SETS}


def _age_label(age_years: object) -> str | None:
    if not isinstance(age_years, (int, float)):
        return None
    return "senior" if age_years >= SENIOR_MIN_AGE_YEARS else "adult"


def load_real_speech(root: Path) -> list[ClipRecord]:
    """TESS, EMO-DB and LibriSpeech from ``root`` (the JSONL manifests of ../shared/speech).

    Labels: TESS emotion (7), gender, age (OAF, 64 -> senior; YAF, 26 -> adult); EMO-DB emotion
    (boredom has no counterpart in our set -> unknown), gender, age (21-35 -> adult);
    LibriSpeech gender only.
    """
    records: list[ClipRecord] = []
    for corpus, source in (("tess", "tess"), ("emodb", "emodb"), ("librispeech", "librispeech")):
        manifest = root / f"{corpus}.jsonl"
        if not manifest.exists():
            continue
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            emotion = row.get("emotion")
            labels = _check({
                "emotion": emotion if emotion in LABEL_SETS["emotion"] else None,
                "sarcasm": None,
                "age": _age_label(row.get("age_years")),
                "gender": row.get("gender"),
            })
            records.append(ClipRecord(
                path=root / row["path"], source=source, group=f"{source}:{row['speaker']}",
                labels=labels, text=row.get("text") if row.get("language", "en") == "en" else None,
                meta={"speaker": row["speaker"]},
            ))
    return records


def load_polytone_manifest(directory: Path, role: str = "query") -> list[ClipRecord]:
    """Clips of a PolyTone dataset directory (``manifest.jsonl``) with the given role."""
    records = []
    for line in (directory / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["role"] != role:
            continue
        records.append(ClipRecord(
            path=directory / row["path"], source="polytone", group=f"voice:{row['voice']}",
            labels=_check(row["labels"]), text=row["text"],
            meta={k: row.get(k) for k in ("id", "scenario_id", "dimension", "split", "voice_split",
                                          "style", "voice", "level", "tone")},
        ))
    return records
