"""The learned syllable counter: it learns to count syllable-like bursts it was shown, generalises
to counts and tempos it was not, and counts each clip on its own frames only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judge_service.features import log_mel_spectrogram
from judge_service.judge.syllable_counter import (
    SyllableCounter, count_syllables_batched, fit_syllable_counter,
)  # fmt: skip
from judge_service.testing import voiced_clip


def _mel(clip: np.ndarray) -> np.ndarray:
    mel, frames = log_mel_spectrogram([torch.from_numpy(clip)], n_mels=80)
    return mel[0, :, : int(frames[0])].numpy()


def bursts(count: int, period_s: float, f0_hz: float, amplitude: float, seed: int) -> np.ndarray:
    """``count`` voiced 'syllables' (60% of ``period_s`` each) separated by faint noise."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(1600, np.float32)]
    for k in range(count):
        on = voiced_clip(0.6 * period_s, f0_hz=f0_hz * (1 + 0.1 * rng.standard_normal()), seed=seed + k,
                         amplitude=amplitude)  # fmt: skip
        gap = 1e-3 * rng.standard_normal(int(16_000 * period_s) - on.shape[0]).astype(np.float32)
        parts += [on, gap]
    return np.concatenate(parts)


def _examples(counts, seed: int) -> tuple[list[np.ndarray], list[float], list[float]]:
    rng = np.random.default_rng(seed)
    mels, syllables, seconds = [], [], []
    for k, count in enumerate(counts):
        period = float(rng.uniform(0.18, 0.32))
        clip = bursts(count, period, f0_hz=float(rng.uniform(110, 240)), amplitude=float(rng.uniform(0.05, 0.5)),
                      seed=seed * 1000 + k)  # fmt: skip
        mels.append(_mel(clip))
        syllables.append(float(count))
        seconds.append(count * period)
    return mels, syllables, seconds


@pytest.mark.slow
def test_the_counter_learns_to_count_and_generalises_to_unseen_counts() -> None:
    rng = np.random.default_rng(0)
    mels, syllables, seconds = _examples(rng.integers(2, 13, size=80).tolist(), seed=1)
    counter, metrics = fit_syllable_counter(mels, syllables, seconds, epochs=25, batch_clips=8, log=lambda _: None)
    assert metrics["rate_pearson"] > 0.8 and 1 <= metrics["kept_epoch"] <= 25
    unseen = [1, 15, 20]  # outside the training range: a sum of local evidence still counts them
    test_mels, test_syllables, _ = _examples(unseen, seed=2)
    counts = count_syllables_batched(counter, test_mels)
    np.testing.assert_allclose(counts, test_syllables, rtol=0.2, atol=1.0)


def test_each_clip_is_counted_on_its_own_frames_whatever_the_batch() -> None:
    torch.manual_seed(0)
    counter = SyllableCounter()
    mels, _, _ = _examples([3, 9, 5], seed=3)
    alone = np.array([count_syllables_batched(counter, [m])[0] for m in mels])
    for batch_clips in (1, 2, 3):
        np.testing.assert_allclose(count_syllables_batched(counter, mels, batch_clips=batch_clips), alone, rtol=1e-5, atol=1e-4)
    louder = [m + 0.5 for m in mels]  # a louder recording: the same levels relative to the loudest frame
    np.testing.assert_allclose(count_syllables_batched(counter, louder), alone, rtol=1e-5)
    assert (alone >= 0).all()


def test_too_few_clips_is_an_error() -> None:
    mels, syllables, seconds = _examples([2, 3], seed=4)
    with pytest.raises(ValueError, match="at least 10 clips"):
        fit_syllable_counter(mels, syllables, seconds)
