"""The RL ceiling probe's bookkeeping on hand-made scores (the probe itself runs in benchmarks/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_client.grpo.ceiling import probe_actions, summarise
from trainer_client.grpo.policy import TONES, Candidate, Prompt


def _prompt(pid: str, style: str) -> Prompt:
    candidates = (Candidate("sad five", "emotion:sad", 5, "sad-comforting"), Candidate("sad one", "emotion:sad", 1, "angry"),
                  Candidate("happy five", "emotion:happy", 5, "happy"), Candidate("happy one", "emotion:happy", 1, "sarcastic"))  # fmt: skip
    return Prompt(pid, Path(f"/nowhere/{pid}.wav"), "emotion", style, candidates)


def _tones(default: float, **special: float) -> list[float]:
    return [special.get(t.replace("-", "_"), default) for t in TONES]


def test_probe_actions_are_the_demonstration_in_every_tone_then_the_rest_in_neutral() -> None:
    actions = probe_actions(_prompt("a", "happy"))
    assert [(a.content, TONES[a.tone]) for a in actions[: len(TONES)]] == [(2, t) for t in TONES]
    assert [(a.content, TONES[a.tone]) for a in actions[len(TONES) :]] == [(0, "neutral"), (1, "neutral"), (3, "neutral")]


def test_summary_means_bounds_and_level_table() -> None:
    prompts = [_prompt("a", "sad"), _prompt("b", "sad"), _prompt("c", "happy")]
    scores = [
        _tones(2.0, calm=5.0) + [4.0, 3.0, 1.0],  # others: sad-1, happy-5, happy-1
        _tones(3.0, calm=4.0, sad_comforting=1.0) + [2.0, 2.0, 2.0],
        _tones(4.0, happy=5.0) + [None, 1.0, 2.0],  # others: sad-5, sad-1, happy-1
    ]
    s = summarise(prompts, scores)
    assert s["demonstration"] == pytest.approx((2.0 + 1.0 + 5.0) / 3)  # sad-comforting, sad-comforting, happy
    assert s["per_style"]["emotion:sad"]["best_tone"] == "calm" and s["per_style"]["emotion:sad"]["best_tone_mean"] == 4.5
    assert s["per_style"]["emotion:happy"]["best_tone"] == "happy"
    assert s["best_tone_per_style"] == pytest.approx((5.0 + 4.0 + 5.0) / 3)
    assert s["best_of_19_per_prompt"] == pytest.approx((5.0 + 4.0 + 5.0) / 3)
    assert s["demonstration_words_in_tone"]["neutral"] == pytest.approx(3.0)
    levels = s["neutral_tone_by_written_style_and_level"]
    assert levels["true style, level 5"] == pytest.approx(3.0)  # the neutral-tone column: 2, 3, 4
    assert levels["true style, level 1"] == pytest.approx((4.0 + 2.0 + 2.0) / 3)  # c's happy-1 is its true style
    assert levels["contrast style, level 5"] == pytest.approx((3.0 + 2.0) / 2)  # c's sad-5 was unscored: left out
    assert levels["contrast style, level 1"] == pytest.approx((1.0 + 2.0 + 1.0) / 3)
