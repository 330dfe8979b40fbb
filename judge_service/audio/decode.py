"""Decode uploaded bytes into a validated mono 16 kHz clip, or raise a typed error.

Runs per clip before batching, so one bad clip never reaches the backend or its neighbours.
Accepted containers: WAV (incl. WAVEX/RF64), FLAC and OGG (Vorbis/Opus), through libsndfile.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
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
MAX_DECODED_SAMPLES_PER_S = 384_000
"""Budget of decoded samples (frames x channels) per second of the duration limit: 8 channels
at 48 kHz or 2 at 192 kHz. A file over it is refused from its header, before decoding, so a few
kilobytes of compressed silence cannot expand into gigabytes."""
READ_BLOCK_FRAMES = 65_536
"""Frames decoded at a time; each block is downmixed at once, so memory holds one mono copy."""
MAX_POLYPHASE_KERNEL = 1_000_000
"""torchaudio's resampler builds a (rate/gcd) x (16000/gcd) kernel: 70,560 at 44.1 kHz, 282,240
at 11.025 kHz, but 64 million at 4001 Hz (gigabytes). Rates over this budget resample by FFT."""


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
    max_samples = int(limits.max_duration_s * MAX_DECODED_SAMPLES_PER_S)
    # Some containers (OGG) may report an unknown or wrong length; the read below enforces it.
    if info.frames > max_frames and info.frames < 2**62:
        raise AudioTooLongError(
            f"{clip_id}: audio is {info.frames / rate_hz:.2f} s; the limit is "
            f"{limits.max_duration_s:g} s"
        )
    if info.frames * info.channels > max_samples and info.frames < 2**62:
        raise AudioTooLongError(
            f"{clip_id}: audio has {info.channels} channels x {info.frames} frames, over the decoding "
            f"budget of {max_samples} samples; send mono or stereo at up to 48 kHz"
        )
    mono = _read_mono(clip_id, data, max_frames, max_samples // info.channels)
    if mono.shape[0] == 0:
        raise AudioEmptyError(f"{clip_id}: audio has no samples")
    duration_s = mono.shape[0] / rate_hz
    if duration_s < limits.min_duration_s:
        raise AudioTooShortError(
            f"{clip_id}: audio is {duration_s:.3f} s; at least {limits.min_duration_s:g} s is "
            "needed"
        )
    samples = resample_to_target(mono, rate_hz)
    if not np.isfinite(samples).all():
        # Finite but absurd float samples (near float32's maximum) overflow in the downmix or
        # the resampler; the backend must never see them.
        raise AudioNonFiniteError(
            f"{clip_id}: audio samples overflow when downmixed or resampled; send float samples "
            "in [-1, 1] (or integer PCM)"
        )
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


def _read_mono(clip_id: str, data: bytes, max_frames: int, max_frames_by_budget: int) -> np.ndarray:
    """Decode block by block, downmixing each block (float32 mean, as a whole-file read would),
    so memory holds the mono signal plus one block. Raises for corrupt data, NaN/Inf samples,
    and more frames than ``max_frames`` (duration) or ``max_frames_by_budget`` (samples)."""
    blocks: list[np.ndarray] = []
    total = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            while True:
                block = handle.read(frames=READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block).all():
                    raise AudioNonFiniteError(f"{clip_id}: audio contains NaN or infinite samples")
                total += block.shape[0]
                if total > max_frames:
                    raise AudioTooLongError(f"{clip_id}: audio is longer than the limit of "
                                            f"{max_frames / handle.samplerate:g} s")
                if total > max_frames_by_budget:
                    raise AudioTooLongError(f"{clip_id}: audio decodes to more samples than the budget "
                                            f"of {MAX_DECODED_SAMPLES_PER_S} per second of the limit")
                with np.errstate(over="ignore"):  # overflow to inf is refused after resampling
                    blocks.append(block.mean(axis=1, dtype=np.float32))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioUnreadableError(f"{clip_id}: audio data is corrupt ({_short(exc)})") from None
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def resample_to_target(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Resample mono float32 ``(n,)`` from ``rate_hz`` to 16 kHz: windowed sinc (torchaudio)
    for every rate whose polyphase kernel is small (all common rates), FFT otherwise."""
    if rate_hz == TARGET_SAMPLE_RATE_HZ:
        return np.ascontiguousarray(samples, dtype=np.float32)
    g = math.gcd(rate_hz, TARGET_SAMPLE_RATE_HZ)
    if (rate_hz // g) * (TARGET_SAMPLE_RATE_HZ // g) > MAX_POLYPHASE_KERNEL:
        return resample_fft(samples, rate_hz, TARGET_SAMPLE_RATE_HZ)
    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    resampled = AF.resample(waveform, orig_freq=rate_hz, new_freq=TARGET_SAMPLE_RATE_HZ)
    return resampled.numpy().astype(np.float32, copy=False)


def resample_fft(samples: np.ndarray, rate_hz: int, target_rate_hz: int) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum (float64 inside):
    time and memory grow with the clip's length only, whatever the rates' gcd. Output length
    is ``ceil(n * target / rate)``, as torchaudio's."""
    n = samples.shape[0]
    m = math.ceil(n * target_rate_hz / rate_hz)
    spectrum = np.fft.rfft(samples.astype(np.float64))
    kept = np.zeros(m // 2 + 1, dtype=np.complex128)
    bins = min(kept.shape[0], spectrum.shape[0])
    kept[:bins] = spectrum[:bins]
    if m < n and m % 2 == 0:
        kept[-1] = kept[-1].real  # the new Nyquist bin of a real signal is real
    return (np.fft.irfft(kept, m) * (m / n)).astype(np.float32)


def _short(exc: BaseException) -> str:
    # libsndfile names the file it was given: here an in-memory buffer, whose repr would leak
    # a heap address into the caller's error message.
    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the upload", str(exc)).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
