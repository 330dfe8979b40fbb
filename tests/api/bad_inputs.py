"""The bad-input matrix shared by the HTTP tests: (name, base64 audio, expected error type)."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from judge_service.testing import b64, encode_audio, voiced_clip


def _aiff() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, voiced_clip(0.5), 16_000, format="AIFF")
    return buffer.getvalue()


def _nan_wav() -> bytes:
    samples = voiced_clip(0.5)
    samples[100] = np.nan
    return encode_audio(samples, 16_000, "WAV", "FLOAT")


BAD_AUDIO = [
    ("empty", b64(b""), "audio_empty"),
    ("not-base64", "***not base64***", "invalid_base64"),
    ("corrupt", b64(b"RIFF\x00\x00\x00\x00WAVEjunk" * 30), "audio_unreadable"),
    ("aiff", b64(_aiff()), "audio_unsupported_format"),
    ("nan", b64(_nan_wav()), "audio_non_finite"),
    ("too-short", b64(encode_audio(voiced_clip(0.03), 16_000)), "audio_too_short"),
    ("too-long", b64(encode_audio(voiced_clip(11.0), 16_000)), "audio_too_long"),
    ("rate-2khz", b64(encode_audio(voiced_clip(1.0, sample_rate_hz=2_000), 2_000)), "audio_unsupported_sample_rate"),
]
"""Assumes the server's JUDGE_MAX_CLIP_DURATION_S is 10."""

GOOD_VARIANTS = [
    ("8khz", b64(encode_audio(voiced_clip(1.0, sample_rate_hz=8_000), 8_000))),
    ("48khz-ogg", b64(encode_audio(voiced_clip(1.0, sample_rate_hz=48_000), 48_000, "OGG"))),
    ("6-channels", b64(encode_audio(np.repeat(voiced_clip(1.0)[:, None], 6, axis=1), 16_000))),
    ("flac", b64(encode_audio(voiced_clip(1.0), 16_000, "FLAC"))),
]
