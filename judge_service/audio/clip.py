"""Small serialisable descriptions of decoded audio."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioClip:
    """A decoded, validated clip (mono, float32, at ``sample_rate_hz``).

    ``sha256`` hashes the decoded PCM (little-endian float32 samples after downmix and
    resampling), so the same sound sent as WAV or FLAC has the same hash; it is the clip's
    identity in caches and in per-batch de-duplication.
    """

    id: str
    sample_rate_hz: int
    num_samples: int
    sha256: str
    source_format: str
    source_sample_rate_hz: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz


@dataclass(frozen=True)
class DecodedAudio:
    """An ``AudioClip`` with its samples: ``samples`` is float32, shape ``(num_samples,)``."""

    clip: AudioClip
    samples: np.ndarray


def pcm_sha256(samples: np.ndarray) -> str:
    """sha256 of float32 little-endian PCM, shape ``(num_samples,)``."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<f4").tobytes()).hexdigest()
