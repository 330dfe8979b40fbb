"""Whisper's log-mel front end, written plainly in torch: the specification of the op.

This is the slow, obviously correct definition every faster path is tested against. It
follows Whisper / HF ``WhisperFeatureExtractor`` exactly, except that a clip is not padded to
30 s first (so the frame count is ``num_samples // HOP_LENGTH_SAMPLES``, as Whisper computes it
for an unpadded clip, and the last frames see the clip's reflection, not zeros).

Per clip of ``n`` samples at 16 kHz:
  1. reflect-pad ``N_FFT_SAMPLES // 2`` samples on both sides (numpy's ``reflect`` rule, which
     also defines pads longer than the clip);
  2. frames of ``N_FFT_SAMPLES`` every ``HOP_LENGTH_SAMPLES``, periodic Hann window, |rFFT|^2;
     Whisper drops the last STFT frame, leaving ``n // HOP_LENGTH_SAMPLES`` frames;
  3. Slaney-scale mel filters with Slaney area normalisation, 0-8 kHz;
  4. ``log10(max(mel, LOG_CLAMP_POWER))``, then floor at the clip's maximum minus
     ``DYNAMIC_RANGE_LOG10``, then ``(x + LOG_OFFSET) / LOG_SCALE``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

SAMPLE_RATE_HZ = 16_000
"""Input sample rate the front end is defined for."""
N_FFT_SAMPLES = 400
"""Window and FFT length: 400 samples = 25 ms at 16 kHz."""
HOP_LENGTH_SAMPLES = 160
"""Frame step: 160 samples = 10 ms at 16 kHz, i.e. 100 frames per second."""
N_FREQ_BINS = N_FFT_SAMPLES // 2 + 1
"""rFFT bins from 0 Hz to Nyquist (8 kHz) in steps of 40 Hz."""
LOG_CLAMP_POWER = 1e-10
"""Smallest mel power before log10 (power units of float PCM in [-1, 1])."""
DYNAMIC_RANGE_LOG10 = 8.0
"""Floor at (clip max - 8) in log10 units, i.e. an 80 dB dynamic range."""
LOG_OFFSET = 4.0
LOG_SCALE = 4.0
"""Final affine map (x + 4) / 4 that puts Whisper features roughly in [-1, 1]."""
SUPPORTED_N_MELS = (80, 128)


def num_frames_for(num_samples: int) -> int:
    """Frames Whisper's front end gives an unpadded clip of ``num_samples`` samples."""
    return num_samples // HOP_LENGTH_SAMPLES


def hz_to_mel_slaney(freq_hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = freq_hz / f_sp
    log = min_log_mel + torch.log(torch.clamp(freq_hz, min=min_log_hz) / min_log_hz) / logstep
    return torch.where(freq_hz >= min_log_hz, log, linear)


def mel_to_hz_slaney(mels: torch.Tensor) -> torch.Tensor:
    """Inverse of ``hz_to_mel_slaney``."""
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = mels * f_sp
    log = min_log_hz * torch.exp(logstep * (mels - min_log_mel))
    return torch.where(mels >= min_log_mel, log, linear)


@lru_cache(maxsize=8)
def _mel_filters_float64(n_mels: int) -> torch.Tensor:
    if n_mels not in SUPPORTED_N_MELS:
        raise ValueError(f"n_mels must be one of {SUPPORTED_N_MELS}, got {n_mels}")
    fft_freqs_hz = torch.linspace(0, SAMPLE_RATE_HZ / 2, N_FREQ_BINS, dtype=torch.float64)
    mel_edges = torch.linspace(
        hz_to_mel_slaney(torch.tensor(0.0, dtype=torch.float64)).item(),
        hz_to_mel_slaney(torch.tensor(SAMPLE_RATE_HZ / 2, dtype=torch.float64)).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    edges_hz = mel_to_hz_slaney(mel_edges)
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_freqs_hz[None, :] - lower) / (center - lower)
    falling = (upper - fft_freqs_hz[None, :]) / (upper - center)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0.0)
    slaney_norm = 2.0 / (upper - lower)  # equal area per filter
    return (triangles * slaney_norm).contiguous()


def mel_filters(n_mels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Slaney mel filter bank, shape ``(n_mels, N_FREQ_BINS)``, 0-8 kHz, area-normalised."""
    return _mel_filters_float64(n_mels).to(dtype)


def hann_window(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Periodic Hann window of ``N_FFT_SAMPLES`` samples (what ``torch.stft`` in Whisper uses)."""
    return torch.hann_window(N_FFT_SAMPLES, periodic=True, dtype=dtype)


def reflect_indices(num_samples: int, pad: int) -> torch.Tensor:
    """Indices into a clip of ``num_samples`` that reflect-pad it by ``pad`` on both sides.

    Same as ``numpy.pad(mode="reflect")`` including pads longer than the clip (the signal is
    mirrored repeatedly, period ``2 * (num_samples - 1)``). Needs ``num_samples >= 2``.
    """
    assert num_samples >= 2, "reflect padding needs at least two samples"
    positions = torch.arange(-pad, num_samples + pad)
    period = 2 * (num_samples - 1)
    folded = torch.remainder(positions, period)
    return torch.where(folded < num_samples, folded, period - folded)


def log_mel_spectrogram_reference(
    clip: torch.Tensor, n_mels: int = 80, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Whisper log-mel features of one clip, computed in ``dtype`` (float64 by default).

    Args:
        clip: shape ``(num_samples,)``, float PCM in [-1, 1] at 16 kHz, any length.
        n_mels: 80 or 128 mel bins.
    Returns:
        shape ``(n_mels, num_samples // 160)`` in ``dtype``, Whisper units; empty when the clip
        is shorter than one hop.
    """
    if clip.ndim != 1:
        raise ValueError(f"clip must be 1-D (num_samples,), got shape {tuple(clip.shape)}")
    num_samples = clip.shape[0]
    n_frames = num_frames_for(num_samples)
    if n_frames == 0:
        return torch.zeros(n_mels, 0, dtype=dtype)
    x = clip.to(dtype)
    padded = x[reflect_indices(num_samples, N_FFT_SAMPLES // 2)]
    frames = padded.unfold(0, N_FFT_SAMPLES, HOP_LENGTH_SAMPLES)[:n_frames]
    spectrum = torch.fft.rfft(frames * hann_window(dtype), n=N_FFT_SAMPLES, dim=-1)
    power = spectrum.real**2 + spectrum.imag**2  # (n_frames, N_FREQ_BINS)
    mel = mel_filters(n_mels, dtype) @ power.T  # (n_mels, n_frames)
    log_mel = torch.log10(torch.clamp(mel, min=LOG_CLAMP_POWER))
    log_mel = torch.maximum(log_mel, log_mel.max() - DYNAMIC_RANGE_LOG10)
    return (log_mel + LOG_OFFSET) / LOG_SCALE
