"""Decode uploaded bytes into a validated mono 16 kHz clip, or raise a typed error.

Runs per clip before batching, so one bad clip never reaches the backend or its neighbours.
Accepted containers: WAV (incl. WAVEX/RF64), FLAC and OGG (Vorbis/Opus), through libsndfile.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from judge_service.audio.clip import AudioClip, DecodedAudio, pcm_sha256
from judge_service.config import TARGET_SAMPLE_RATE_HZ
from judge_service.errors import (
    AudioEmptyError,
    AudioFormatError,
    AudioNonFiniteError,
    AudioSampleRateError,
    AudioTooLongError,
    AudioTooShortError,
    AudioUnreadableError,
    InvalidBase64Error,
)

ACCEPTED_FORMATS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "FLAC": "flac", "OGG": "ogg"}
"""libsndfile major formats we accept, mapped to the name we report."""

MIN_SOURCE_RATE_HZ = 4_000
MAX_SOURCE_RATE_HZ = 192_000
MAX_CHANNELS = 32


@dataclass(frozen=True)
class AudioLimits:
    """Per-clip limits, in seconds of audio."""

    min_duration_s: float = 0.1
    max_duration_s: float = 60.0


def decode_base64_audio(clip_id: str, text: str, limits: AudioLimits) -> DecodedAudio:
    """Decode a base64 string (standard alphabet, padding optional) and then the audio."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64Error(
            f"{clip_id}: audio is not valid base64 ({exc}); send the file's bytes base64-encoded"
        ) from None
    return decode_audio(clip_id, data, limits)


def decode_audio(clip_id: str, data: bytes, limits: AudioLimits) -> DecodedAudio:
    """Decode WAV/FLAC/OGG bytes to mono float32 at 16 kHz and validate them.

    Raises a ``JudgeError`` subclass naming the clip for: empty or unreadable bytes, another
    container, an absurd sample rate, no samples, NaN/Inf samples, or a duration outside
    ``limits``. The duration limit is checked from the header before the samples are decoded,
    and decoding reads at most one sample past the limit, so a huge file costs little.
    """
    if len(data) == 0:
        raise AudioEmptyError(f"{clip_id}: audio is empty (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioUnreadableError(
            f"{clip_id}: audio could not be read as WAV, FLAC or OGG ({_short(exc)})"
        ) from None
    source_format = ACCEPTED_FORMATS.get(info.format)
    if source_format is None:
        raise AudioFormatError(
            f"{clip_id}: {info.format} audio is not accepted; send WAV, FLAC or OGG"
        )
    rate_hz = int(info.samplerate)
    if not MIN_SOURCE_RATE_HZ <= rate_hz <= MAX_SOURCE_RATE_HZ:
        raise AudioSampleRateError(
            f"{clip_id}: sample rate {rate_hz} Hz is outside "
            f"{MIN_SOURCE_RATE_HZ}-{MAX_SOURCE_RATE_HZ} Hz"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioUnreadableError(f"{clip_id}: {info.channels} channels is not a valid layout")
    max_frames = int(limits.max_duration_s * rate_hz)
    # Some containers (OGG) may report an unknown or wrong length; the read below enforces it.
    if info.frames > max_frames and info.frames < 2**62:
        raise AudioTooLongError(
            f"{clip_id}: audio is {info.frames / rate_hz:.2f} s; the limit is "
            f"{limits.max_duration_s:g} s"
        )
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            frames = handle.read(frames=max_frames + 1, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioUnreadableError(f"{clip_id}: audio data is corrupt ({_short(exc)})") from None
    if frames.shape[0] == 0:
        raise AudioEmptyError(f"{clip_id}: audio has no samples")
    if frames.shape[0] > max_frames:
        raise AudioTooLongError(
            f"{clip_id}: audio is longer than the limit of {limits.max_duration_s:g} s"
        )
    if not np.isfinite(frames).all():
        raise AudioNonFiniteError(f"{clip_id}: audio contains NaN or infinite samples")
    duration_s = frames.shape[0] / rate_hz
    if duration_s < limits.min_duration_s:
        raise AudioTooShortError(
            f"{clip_id}: audio is {duration_s:.3f} s; at least {limits.min_duration_s:g} s is "
            "needed"
        )
    mono = frames.mean(axis=1, dtype=np.float32)
    samples = resample_to_target(mono, rate_hz)
    clip = AudioClip(
        id=clip_id,
        sample_rate_hz=TARGET_SAMPLE_RATE_HZ,
        num_samples=int(samples.shape[0]),
        sha256=pcm_sha256(samples),
        source_format=source_format,
        source_sample_rate_hz=rate_hz,
        source_channels=int(info.channels),
    )
    return DecodedAudio(clip=clip, samples=samples)


def resample_to_target(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Resample mono float32 ``(n,)`` from ``rate_hz`` to 16 kHz (windowed sinc, torchaudio)."""
    if rate_hz == TARGET_SAMPLE_RATE_HZ:
        return np.ascontiguousarray(samples, dtype=np.float32)
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    resampled = AF.resample(waveform, orig_freq=rate_hz, new_freq=TARGET_SAMPLE_RATE_HZ)
    return resampled.numpy().astype(np.float32, copy=False)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
