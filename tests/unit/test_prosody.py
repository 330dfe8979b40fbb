"""Measured prosody: the vectorised YIN against its per-frame reference, and known signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_service.judge.prosody import count_syllables, measure_prosody, yin_f0_hz, yin_f0_hz_reference
from judge_service.testing import voiced_clip


@pytest.mark.parametrize("seed,f0_hz,num_samples", [(0, 110.0, 4000), (1, 230.0, 6123), (2, 400.0, 900)])
def test_fast_yin_equals_reference(seed, f0_hz, num_samples):
    rng = np.random.default_rng(seed)
    clip = voiced_clip(num_samples / 16_000, f0_hz=f0_hz, seed=seed)
    clip[: num_samples // 5] = 0.001 * rng.standard_normal(num_samples // 5)  # a quiet start
    fast = yin_f0_hz(torch.from_numpy(clip)).numpy()
    slow = yin_f0_hz_reference(clip)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("f0_hz", [70.0, 120.0, 220.0, 330.0, 500.0])
def test_yin_finds_the_pitch_of_harmonic_tones(f0_hz):
    t = np.arange(16_000) / 16_000
    tone = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 6)).astype(np.float32) * 0.3
    f0 = yin_f0_hz(torch.from_numpy(tone))
    voiced = f0[f0 > 0]
    assert voiced.numel() > 0.9 * f0.numel()
    assert abs(float(voiced.median()) - f0_hz) < 0.005 * f0_hz


def test_silence_has_no_pitch_and_no_nan():
    prosody = measure_prosody(np.zeros(16_000, dtype=np.float32), "")
    assert prosody.f0_median_hz is None and prosody.voiced_fraction == 0.0
    assert np.isfinite(prosody.energy_dbfs)


def test_louder_clip_measures_louder_by_the_gain():
    clip = voiced_clip(1.0, amplitude=0.5)
    quiet, loud = measure_prosody(clip * 0.1, None), measure_prosody(clip, None)
    assert abs((loud.energy_dbfs - quiet.energy_dbfs) - 20.0) < 1e-6
    assert quiet.f0_median_hz == pytest.approx(loud.f0_median_hz), "pitch does not depend on level"


def test_speaking_rate_uses_the_transcript():
    clip = voiced_clip(2.0)
    prosody = measure_prosody(clip, "one two three four five six seven eight")
    assert prosody.speaking_rate_syllables_per_s == pytest.approx(9 / prosody.speech_duration_s, rel=1e-6)
    assert measure_prosody(clip, None).speaking_rate_syllables_per_s is None


@pytest.mark.parametrize(
    "text,syllables",
    [("cat", 1), ("hello", 2), ("I just found out", 4), ("beautiful", 3), ("make", 1), ("table", 2), ("42", 2)],
)
def test_count_syllables(text, syllables):
    assert count_syllables(text) == syllables
