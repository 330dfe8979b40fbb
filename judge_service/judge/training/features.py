"""Analyser inputs for many clips (pooled Whisper encoder states + prosody) and their Whisper
transcripts, each cached on disk."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch

from judge_service.audio.decode import resample_to_target
from judge_service.features import frame_offsets, log_mel_spectrogram
from judge_service.judge.analysers import ANALYSER_PROSODY_FEATURES, analyser_vector
from judge_service.judge.asr import WhisperTranscriber
from judge_service.judge.prosody import measure_prosody
from judge_service.judge.training.records import ClipRecord

FEATURE_VERSION = "enc-meanstd+prosody+contour-2"
TRANSCRIPT_VERSION = "whisper-transcripts-1"


def read_clip(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return resample_to_target(samples.mean(axis=1), int(rate))


def _whisper_inputs(clips: Sequence[np.ndarray], transcriber: WhisperTranscriber) -> list[torch.Tensor]:
    """One log-mel ``(n_mels, num_frames_i)`` per 16 kHz clip, all computed in one packed pass."""
    packed, num_frames = log_mel_spectrogram([torch.from_numpy(c) for c in clips], n_mels=transcriber.n_mels, layout="packed")
    offsets = frame_offsets(num_frames).tolist()
    return [packed[a:b].T for a, b in zip(offsets[:-1], offsets[1:])]


def clip_features(
    clips: Sequence[np.ndarray], texts: Sequence[str | None], transcriber: WhisperTranscriber,
    transcribe: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings ``(n, embedding_dim)``, prosody ``(n, len(ANALYSER_PROSODY_FEATURES))``, i.e.
    ``analyser_vector``: its first ``len(PROSODY_FEATURES)`` columns are ``prosody_vector``) for
    16 kHz clips.

    Speaking rate uses ``texts``; with ``transcribe``, clips without a text are transcribed
    (what the service does) and the transcript is used instead."""
    asks = [transcribe and t is None for t in texts]
    transcripts, embeddings = transcriber.encode_and_transcribe(_whisper_inputs(clips, transcriber), asks)
    texts = [tr.text if tr is not None else t for t, tr in zip(texts, transcripts)]
    prosody = np.stack([analyser_vector(measure_prosody(c, t)) for c, t in zip(clips, texts)])
    return embeddings, prosody


def _cache_key(version: str, records: Sequence[ClipRecord]) -> str:
    """Key of a cached result over ``records``: their resolved paths, file sizes and texts."""
    key = hashlib.sha256(version.encode())
    for r in records:
        key.update(f"{r.path.resolve()}:{r.path.stat().st_size}:{r.text}\n".encode())
    return key.hexdigest()[:20]


def transcribe(
    records: Sequence[ClipRecord], transcriber: WhisperTranscriber, cache_dir: Path | None = None,
    batch_size: int = 16, log_every_s: float = 30.0,
) -> list[str]:
    """What the service's ASR stage hears in every record (Whisper's text, never the
    reference), computed once and cached under ``cache_dir`` like ``extract`` (the key also
    names the Whisper model directory). The rubric trains on these, so it learns the words it
    will be given when serving: tiny.en misreads some synthetic voices badly (MiniLM cosine to
    the reference text 0.60 on espeak-f4, 0.92 on piper-soprano; 60 test replies)."""
    name = f"{TRANSCRIPT_VERSION}:{transcriber.model_path.resolve().name}"
    cache = cache_dir / f"transcripts-{_cache_key(name, records)}.json" if cache_dir else None
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    texts: list[str] = []
    started = last = time.monotonic()
    for i in range(0, len(records), batch_size):
        clips = [read_clip(r.path) for r in records[i : i + batch_size]]
        transcripts, _ = transcriber.encode_and_transcribe(_whisper_inputs(clips, transcriber))
        texts += [t.text if t is not None else "" for t in transcripts]
        if time.monotonic() - last > log_every_s:
            last = time.monotonic()
            print(f"  transcripts: {len(texts)}/{len(records)} clips, {last - started:.0f} s", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(texts))
    return texts


def extract(
    records: Sequence[ClipRecord], transcriber: WhisperTranscriber, cache_dir: Path | None = None,
    batch_size: int = 16, log_every_s: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every record, computed once and cached under ``cache_dir`` (keyed by the
    clips' resolved paths, file sizes and texts and ``FEATURE_VERSION``: a relative and an
    absolute ``--data-dir`` share one cache, where each used to extract everything again)."""
    cache = cache_dir / f"features-{_cache_key(FEATURE_VERSION, records)}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        data = np.load(cache)
        return data["embeddings"], data["prosody"]
    embeddings, prosody = [], []
    started = last = time.monotonic()
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        e, p = clip_features([read_clip(r.path) for r in chunk], [r.text for r in chunk], transcriber)
        embeddings.append(e)
        prosody.append(p)
        if time.monotonic() - last > log_every_s:
            last = time.monotonic()
            print(f"  features: {i + len(chunk)}/{len(records)} clips, {last - started:.0f} s", flush=True)
    out_e = np.concatenate(embeddings) if embeddings else np.zeros((0, transcriber.embedding_dim), np.float32)
    out_p = np.concatenate(prosody) if prosody else np.zeros((0, len(ANALYSER_PROSODY_FEATURES)), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, embeddings=out_e, prosody=out_p)
    return out_e, out_p
