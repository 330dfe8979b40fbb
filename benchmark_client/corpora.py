"""The real split of ParaS2SBench: emotion queries from recorded emotional-speech corpora.

Each loader reads one corpus folder's *file naming and layout* (no corpus metadata files except
IEMOCAP's evaluations/transcripts and CREMA-D's optional ``VideoDemographics.csv``) and returns
``BenchItem``s with ``split="real"``, ``dimension="emotion"``, ``style`` = the acted emotion,
``audio`` = the file's absolute path (audio is never copied) and ``duration_s`` in seconds.

* ``contrast_group``: one speaker's takes of one text, so a group holds the same words in
  different emotions (``tess:OAF:back``, ``emodb:03:a01``, ``ravdess:01:01``, ``cremad:1001:DFA``).
  IEMOCAP never repeats a text per speaker, so its groups are singletons (``iemocap:<utterance>``).
* ``speaker``: qualified by corpus (``emodb:03``, ``iemocap:Ses01F``) because bare ids collide.
* ``labels``: the emotion, plus gender and age where the corpus documents them (age: ``senior``
  from 60 years, ``adult`` below; IEMOCAP gives no ages). Sarcasm is never labelled.
* Emotions outside ``LABEL_SETS["emotion"]`` are skipped (EMO-DB boredom, RAVDESS calm, IEMOCAP
  frustrated/other/no agreement); IEMOCAP "excited" is merged into happy, as is common practice.
* Skipped files are counted by reason in ``CorpusLoad.skipped``; a folder with no usable file
  raises ``CorpusError`` saying which layout was expected.
* ``reference_replies``: the real split has no scenario, so every item carries the generic,
  text-independent replies for its emotion from ``data/real_replies.json`` (levels 5..1).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from itertools import islice
from pathlib import Path

import soundfile as sf

from benchmark_client.manifest import (
    MANIFEST_NAME,
    BenchItem,
    Manifest,
    ReferenceReply,
    load_manifest,
    make_header,
    write_manifest,
)
from judge_service.judge.training.records import SENIOR_MIN_AGE_YEARS

AUDIO_SUFFIXES = (".wav", ".flac")
_ID_BAD_CHARS = re.compile(r"[^A-Za-z0-9._:-]")
_ID_MAX_CHARS = 128


class CorpusError(ValueError):
    """A corpus folder cannot be loaded; the message names the folder and the expected layout."""


@dataclass(frozen=True)
class CorpusLoad:
    """One corpus's items (sorted by id) and the files skipped, counted by reason."""

    corpus: str
    root: Path
    items: tuple[BenchItem, ...]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Take:
    """What a file name says about one recording (before its audio is inspected)."""

    emotion: str
    speaker: str
    group: str
    text: str | None
    labels: dict[str, str]  # gender/age where known


@cache
def real_replies() -> dict[str, tuple[ReferenceReply, ...]]:
    """Emotion -> its generic reference replies, levels 5..1 (package data ``data/real_replies.json``)."""
    raw = json.loads(resources.files("benchmark_client").joinpath("data/real_replies.json").read_text("utf-8"))
    return {emotion: tuple(sorted((ReferenceReply(int(r["level"]), r["text"], r["tone"]) for r in replies),
                                  key=lambda r: -r.level))
            for emotion, replies in raw["replies"].items()}  # fmt: skip


def _age_label(age_years: float) -> str:
    return "senior" if age_years >= SENIOR_MIN_AGE_YEARS else "adult"


def _item_id(corpus: str, stem: str) -> str:
    return _ID_BAD_CHARS.sub("-", f"{corpus}:{stem}")[:_ID_MAX_CHARS]


def _audio_files(root: Path) -> list[Path]:
    """Every .wav/.flac under ``root`` (any depth, any case), sorted; macOS ``._`` stubs excluded."""
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("._") and p.is_file())  # fmt: skip


def _check_root(root: str | Path, name: str) -> Path:
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise CorpusError(f"{name} root {path} is not a folder; pass the folder the corpus was unpacked into")
    return path


def _collect(
    corpus: str, name: str, root: Path, takes: Iterable[tuple[Path, _Take | str]], expected: str
) -> CorpusLoad:
    """Turn parsed takes (or skip reasons) into items; raise ``CorpusError`` when none is usable."""
    replies = real_replies()
    skipped: Counter[str] = Counter()
    items: dict[str, BenchItem] = {}
    for path, take in takes:
        if isinstance(take, str):
            skipped[take] += 1
            continue
        item_id = _item_id(corpus, path.stem)
        if item_id in items:  # e.g. the same take as .wav and .flac, or a nested copy of the corpus
            skipped["duplicate id"] += 1
            continue
        try:
            info = sf.info(str(path))
        except sf.SoundFileError:
            skipped["unreadable audio"] += 1
            continue
        duration_s = round(info.frames / info.samplerate, 4) if info.samplerate else 0.0
        if duration_s <= 0:
            skipped["empty audio"] += 1
            continue
        items[item_id] = BenchItem(
            id=item_id, split="real", dimension="emotion", style=take.emotion, contrast_group=take.group,
            audio=str(path), labels={"emotion": take.emotion, **take.labels}, text=take.text,
            speaker=take.speaker, duration_s=duration_s, reference_replies=replies[take.emotion],
        )  # fmt: skip
    if not items:
        detail = f" (skipped: {dict(sorted(skipped.items()))})" if skipped else ""
        raise CorpusError(f"no {name} files under {root}{detail}; expected {expected}")
    return CorpusLoad(corpus, root, tuple(items[k] for k in sorted(items)), dict(sorted(skipped.items())))


# ---------------------------------------------------------------- TESS
# OAF is 64 years old (senior), YAF 26 (adult).
_TESS_SPEAKERS = {"OAF": {"gender": "female", "age": "senior"}, "YAF": {"gender": "female", "age": "adult"}}
_TESS_EMOTIONS = {
    "angry": "angry", "disgust": "disgust", "fear": "fearful", "fearful": "fearful", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "surprised": "surprised", "surprise": "surprised", "ps": "surprised",
    "pleasant_surprise": "surprised", "pleasant_surprised": "surprised",
}  # fmt: skip
_TESS_LAYOUT = "<root>/<SPEAKER>/<emotion>/<SPEAKER>_<word>_<emotion>.wav (or <root>/<SPEAKER>_<emotion>/...)"


def _parse_tess(path: Path, root: Path) -> _Take | str:
    speaker, _, rest = path.stem.partition("_")
    word, _, emotion_raw = rest.partition("_")
    if not speaker or not word or not emotion_raw:
        return "unparsed file name"
    emotion = _TESS_EMOTIONS.get(emotion_raw.lower())
    if emotion is None:
        return f"unknown emotion: {emotion_raw.lower()}"
    speaker = speaker.upper()
    if speaker not in _TESS_SPEAKERS:  # the original corpus has an "OA_bite_neutral" in OAF's folder
        folders = (part.split("_")[0].upper() for part in path.relative_to(root).parts[:-1])
        speaker = next((f for f in folders if f in _TESS_SPEAKERS), speaker)
    word = word.lower()
    return _Take(emotion, f"tess:{speaker}", f"tess:{speaker}:{word}", f"Say the word {word}.",
                 dict(_TESS_SPEAKERS.get(speaker, {})))  # fmt: skip


def load_tess(root: str | Path) -> CorpusLoad:
    """Toronto Emotional Speech Set: two women (OAF 64 y -> senior, YAF 26 y -> adult), 200 words, 7 emotions."""
    root = _check_root(root, "TESS")
    return _collect("tess", "TESS", root, ((p, _parse_tess(p, root)) for p in _audio_files(root)), _TESS_LAYOUT)


# ---------------------------------------------------------------- EMO-DB
_EMODB_RE = re.compile(r"^(\d{2})([ab]\d{2})([A-Z])([a-z])$", re.IGNORECASE)
_EMODB_EMOTIONS = {"W": "angry", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
_EMODB_SKIPPED = {"L": "boredom"}
# Speaker code -> (gender, age in years), from the EMO-DB documentation.
_EMODB_SPEAKERS = {
    "03": ("male", 31), "08": ("female", 34), "09": ("female", 21), "10": ("male", 32), "11": ("male", 26),
    "12": ("male", 30), "13": ("female", 32), "14": ("female", 35), "15": ("male", 25), "16": ("female", 31),
}  # fmt: skip
_EMODB_LAYOUT = "<root>/[wav/]<speaker 2 digits><text a01..b10><emotion letter><version>.wav, e.g. 03a01Fa.wav"


def _parse_emodb(path: Path, root: Path) -> _Take | str:
    match = _EMODB_RE.match(path.stem)
    if match is None:
        return "unparsed file name"
    speaker, text_id, letter = match[1], match[2].lower(), match[3].upper()
    if letter in _EMODB_SKIPPED:
        return f"emotion not in label set: {_EMODB_SKIPPED[letter]}"
    if letter not in _EMODB_EMOTIONS:
        return f"unknown emotion code: {letter}"
    labels = {}
    if speaker in _EMODB_SPEAKERS:
        gender, age_years = _EMODB_SPEAKERS[speaker]
        labels = {"gender": gender, "age": _age_label(age_years)}
    # The German sentences are known, but copies are often cut (ours to 2.0 s): text stays unknown.
    return _Take(_EMODB_EMOTIONS[letter], f"emodb:{speaker}", f"emodb:{speaker}:{text_id}", None, labels)


def load_emodb(root: str | Path) -> CorpusLoad:
    """Berlin Database of Emotional Speech (German): 10 actors (21-35 y), 10 sentences, boredom skipped."""
    root = _check_root(root, "EMO-DB")
    takes = ((p, _parse_emodb(p, root)) for p in _audio_files(root))
    return _collect("emodb", "EMO-DB", root, takes, _EMODB_LAYOUT)


# ---------------------------------------------------------------- RAVDESS
_RAVDESS_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_RAVDESS_EMOTIONS = {
    "01": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}  # fmt: skip
_RAVDESS_SKIPPED = {"02": "calm"}
_RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
_RAVDESS_LAYOUT = "<root>/Actor_XX/03-01-EE-II-SS-RR-AA.wav (audio-only modality 03, speech channel 01)"


def _parse_ravdess(path: Path, root: Path) -> _Take | str:
    match = _RAVDESS_RE.match(path.stem)
    if match is None:
        return "unparsed file name"
    modality, channel, emotion_code, _intensity, statement, _repetition, actor = match.groups()
    if modality != "03":
        return f"not audio-only (modality {modality})"
    if channel != "01":
        return f"song (vocal channel {channel})" if channel == "02" else f"unknown vocal channel: {channel}"
    if emotion_code in _RAVDESS_SKIPPED:
        return f"emotion not in label set: {_RAVDESS_SKIPPED[emotion_code]}"
    if emotion_code not in _RAVDESS_EMOTIONS:
        return f"unknown emotion code: {emotion_code}"
    # 24 actors aged 21-33 (Livingstone & Russo 2018); odd actor numbers are men.
    labels = {"gender": "male" if int(actor) % 2 else "female", "age": "adult"}
    return _Take(_RAVDESS_EMOTIONS[emotion_code], f"ravdess:{actor}", f"ravdess:{actor}:{statement}",
                 _RAVDESS_STATEMENTS.get(statement), labels)  # fmt: skip


def load_ravdess(root: str | Path) -> CorpusLoad:
    """RAVDESS speech: 24 actors, 2 statements, 7 of its 8 emotions (calm skipped); songs and video skipped."""
    root = _check_root(root, "RAVDESS")
    takes = ((p, _parse_ravdess(p, root)) for p in _audio_files(root))
    return _collect("ravdess", "RAVDESS", root, takes, _RAVDESS_LAYOUT)


# ---------------------------------------------------------------- CREMA-D
_CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$", re.IGNORECASE)
_CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.", "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.", "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.", "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.", "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.", "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}  # fmt: skip
_CREMAD_DEMOGRAPHICS = "VideoDemographics.csv"
_CREMAD_LAYOUT = "<root>/[AudioWAV/]<actor>_<sentence>_<emotion>_<level>.wav, e.g. 1001_DFA_ANG_XX.wav"


def _cremad_demographics(root: Path) -> dict[str, dict[str, str]]:
    """Actor id -> {gender, age} from ``VideoDemographics.csv`` in ``root`` or its parent; {} if absent."""
    for folder in (root, root.parent):
        path = folder / _CREMAD_DEMOGRAPHICS
        if path.is_file():
            actors = {}
            with path.open(newline="", encoding="utf-8-sig") as handle:
                for row in csv.DictReader(handle):
                    labels = {}
                    sex = (row.get("Sex") or "").strip().lower()
                    if sex in ("male", "female"):
                        labels["gender"] = sex
                    age = (row.get("Age") or "").strip()
                    if age.isdigit():
                        labels["age"] = _age_label(int(age))
                    actors[(row.get("ActorID") or "").strip()] = labels
            return actors
    return {}


def load_cremad(root: str | Path) -> CorpusLoad:
    """CREMA-D: 91 actors (20-74 y), 12 sentences, 6 emotions; gender/age only with the demographics CSV."""
    root = _check_root(root, "CREMA-D")
    actors = _cremad_demographics(root)

    def parse(path: Path) -> _Take | str:
        match = _CREMAD_RE.match(path.stem)
        if match is None:
            return "unparsed file name"
        actor, sentence, emotion_code = match[1], match[2].upper(), match[3].upper()
        if emotion_code not in _CREMAD_EMOTIONS:
            return f"unknown emotion code: {emotion_code}"
        return _Take(_CREMAD_EMOTIONS[emotion_code], f"cremad:{actor}", f"cremad:{actor}:{sentence}",
                     _CREMAD_SENTENCES.get(sentence), dict(actors.get(actor, {})))  # fmt: skip

    return _collect("cremad", "CREMA-D", root, ((p, parse(p)) for p in _audio_files(root)), _CREMAD_LAYOUT)


# ---------------------------------------------------------------- IEMOCAP
_IEMOCAP_EVAL_RE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\t(\S+)\t(\S+)\t\[")
_IEMOCAP_TRANSCRIPT_RE = re.compile(r"^(\S+) \[[^\]]*\]:\s?(.*)$")
_IEMOCAP_EMOTIONS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry",
                     "fea": "fearful", "sur": "surprised", "dis": "disgust"}  # fmt: skip
_IEMOCAP_LAYOUT = ("<root>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt with audio in "
                   "Session*/sentences/wav/<dialog>/<utterance>.wav")  # fmt: skip


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.txt") if not p.name.startswith("._")) if folder.is_dir() else []


def _iemocap_takes(root: Path) -> Iterator[tuple[Path, _Take | str]]:
    for session in sorted(p for p in root.glob("Session*") if p.is_dir()):
        transcripts: dict[str, str] = {}
        for path in _text_files(session / "dialog" / "transcriptions"):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if match := _IEMOCAP_TRANSCRIPT_RE.match(line.strip()):
                    transcripts[match[1]] = match[2].strip()
        for path in _text_files(session / "dialog" / "EmoEvaluation"):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                match = _IEMOCAP_EVAL_RE.match(line.strip())
                if match is None:
                    continue  # headers, evaluator lines (C-E1, A-E2, ...), blank lines
                utterance, code = match[1], match[2].lower()
                dialog, _, turn = utterance.rpartition("_")
                audio = session / "sentences" / "wav" / dialog / f"{utterance}.wav"
                if not dialog or turn[:1].upper() not in ("F", "M"):
                    yield audio, "unparsed utterance id"
                elif code not in _IEMOCAP_EMOTIONS:
                    yield audio, f"emotion not in label set: {code}"
                elif not audio.is_file():
                    yield audio, "missing audio"
                else:
                    letter = turn[0].upper()
                    speaker = f"iemocap:{utterance[:5]}{letter}"  # session + the speaking actor's gender
                    gender = {"gender": "female" if letter == "F" else "male"}
                    text = transcripts.get(utterance)
                    yield audio, _Take(_IEMOCAP_EMOTIONS[code], speaker, f"iemocap:{utterance}", text, gender)


def load_iemocap(root: str | Path) -> CorpusLoad:
    """IEMOCAP: 10 actors in 5 sessions, majority-vote categories; excited merged into happy.

    No utterance repeats a text for one speaker, so every contrast group is a single item.
    """
    root = _check_root(root, "IEMOCAP")
    return _collect("iemocap", "IEMOCAP", root, _iemocap_takes(root), _IEMOCAP_LAYOUT)


CORPUS_LOADERS: dict[str, Callable[[str | Path], CorpusLoad]] = {
    "tess": load_tess, "emodb": load_emodb, "ravdess": load_ravdess, "cremad": load_cremad, "iemocap": load_iemocap,
}  # fmt: skip

_NAME_PATTERNS: dict[str, Callable[[str], bool]] = {
    "ravdess": lambda stem: bool(_RAVDESS_RE.match(stem)),
    "cremad": lambda stem: bool(_CREMAD_RE.match(stem)),
    "emodb": lambda stem: bool(_EMODB_RE.match(stem)),
    "tess": lambda stem: stem.count("_") >= 2 and stem.split("_", 2)[2].lower() in _TESS_EMOTIONS,
}


def detect_corpus(root: str | Path, *, sample: int = 50) -> str | None:
    """The corpus whose naming fits most of the first ``sample`` audio files under ``root``, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    if any((s / "dialog" / "EmoEvaluation").is_dir() for s in root.glob("Session*")):
        return "iemocap"
    stems = [p.stem for p in islice((p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES), sample)]
    votes = {name: sum(map(fits, stems)) for name, fits in _NAME_PATTERNS.items()}
    best = max(votes, key=lambda name: votes[name])
    return best if votes[best] * 2 > len(stems) else None


# ---------------------------------------------------------------- the split
def subsample(items: Iterable[BenchItem], max_per_style: int, seed: int) -> list[BenchItem]:
    """At most ``max_per_style`` items per (corpus, style), chosen by whole contrast groups.

    Groups are visited in a seeded shuffle; a group is taken whole while every style in it has
    room, then leftover room is filled from partial groups in the same order. Input order is kept.
    """
    by_corpus: dict[str, dict[str, list[BenchItem]]] = defaultdict(lambda: defaultdict(list))
    items = list(items)
    for item in items:
        by_corpus[item.id.split(":", 1)[0]][item.contrast_group].append(item)
    chosen: set[str] = set()
    for corpus in sorted(by_corpus):
        groups = sorted(by_corpus[corpus])
        random.Random(f"{seed}|{corpus}").shuffle(groups)
        taken: Counter[str] = Counter()
        for whole in (True, False):
            for group in groups:
                members = [m for m in by_corpus[corpus][group] if m.id not in chosen]
                need = Counter(m.style for m in members)
                if whole and any(taken[s] + n > max_per_style for s, n in need.items()):
                    continue
                for member in members:
                    if taken[member.style] < max_per_style:
                        taken[member.style] += 1
                        chosen.add(member.id)
    return [item for item in items if item.id in chosen]


def build_real_split(
    out_dir: Path, corpora: dict[str, Path], *, max_per_style: int | None = None, seed: int = 0
) -> Manifest:
    """Load ``corpora`` (name -> root folder), optionally subsample, write ``out_dir/manifest.jsonl``.

    Raises ``CorpusError`` for an unknown corpus name or a folder with no usable file.
    """
    if not corpora:
        raise CorpusError(f"no corpora given; pass name -> folder for some of {sorted(CORPUS_LOADERS)}")
    unknown = sorted(set(corpora) - set(CORPUS_LOADERS))
    if unknown:
        raise CorpusError(f"unknown corpus name(s) {unknown}; known: {sorted(CORPUS_LOADERS)}")
    if max_per_style is not None and (not isinstance(max_per_style, int) or max_per_style < 1):
        raise ValueError(f"max_per_style must be a positive integer or None, got {max_per_style!r}")
    loads = [CORPUS_LOADERS[name](corpora[name]) for name in sorted(corpora)]
    items = [item for load in loads for item in load.items]
    if max_per_style is not None:
        items = subsample(items, max_per_style, seed)
    generator = {
        "name": "paras2s-bench real", "corpora": {load.corpus: str(load.root) for load in loads},
        "max_per_style": max_per_style, "seed": seed, "skipped": {load.corpus: load.skipped for load in loads},
    }  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = make_header(generator, created=datetime.now(UTC).isoformat(timespec="seconds"))
    write_manifest(out_dir / MANIFEST_NAME, header, items)
    return load_manifest(out_dir)

