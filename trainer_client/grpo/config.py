"""GRPO settings, validated once (TRL's ``GRPOConfig`` style: messages say how to fix a value)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

ADVANTAGE_MODES = ("group", "group_mean", "none")
REWARD_SCALES = ("raw", "unit")


class ConfigError(ValueError):
    """A setting is out of range; the message names it and the fix."""


@dataclass(frozen=True)
class GRPOConfig:
    """ParaS2SAlign's GRPO, small.

    Attributes:
        group_size: responses sampled per prompt (G; the paper uses 8).
        prompts_per_step: prompts per update (a step scores ``prompts_per_step * group_size`` pairs).
        steps: GRPO updates.
        kl_beta: weight of the KL penalty to the frozen reference (the SFT policy; paper: 0.2).
        clip_epsilon: PPO-style ratio clip.
        inner_epochs: updates per batch of rollouts (1: on-policy, the ratio is 1 and nothing clips).
        learning_rate: Adam learning rate.
        temperature: sampling temperature of the rollouts (logits / temperature).
        advantage: ``"group"``: (r - mean) / (std + 1e-4) in each group (GRPO); ``"group_mean"``:
            r - mean (Dr. GRPO); ``"none"``: the raw (scaled) reward.
        reward_scale: ``"raw"``: the judge's 1-5 score; ``"unit"``: (score - 1) / 4.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        seed: everything random (sampling, prompt order, initialisation).
        sft_epochs, sft_learning_rate: the supervised warm-up on the labelled subset.
    """

    group_size: int = 8
    prompts_per_step: int = 8
    steps: int = 30
    kl_beta: float = 0.2
    clip_epsilon: float = 0.2
    inner_epochs: int = 2
    learning_rate: float = 0.02
    temperature: float = 1.0
    advantage: str = "group"
    reward_scale: str = "raw"
    checkpoint_every: int = 10
    seed: int = 0
    sft_epochs: int = 60
    sft_learning_rate: float = 0.02

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, fix: str) -> None:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r}: {fix}")

        need(self.group_size >= 2, "group_size", "GRPO needs at least 2 responses per prompt to compare (the paper uses 8)")
        need(self.prompts_per_step >= 1, "prompts_per_step", "use 1 or more")
        need(self.steps >= 0, "steps", "use 0 or more")
        need(math.isfinite(self.kl_beta) and self.kl_beta >= 0, "kl_beta", "use a finite value >= 0 (paper: 0.2)")
        need(0 < self.clip_epsilon < 1, "clip_epsilon", "use a value in (0, 1), typically 0.2")
        need(self.inner_epochs >= 1, "inner_epochs", "use 1 or more")
        need(0 < self.learning_rate < 10, "learning_rate", "use a positive value, e.g. 0.02 for this small policy")
        need(0 < self.temperature <= 10, "temperature", "use a positive value, typically 1.0")
        need(self.advantage in ADVANTAGE_MODES, "advantage", f"use one of {ADVANTAGE_MODES}")
        need(self.reward_scale in REWARD_SCALES, "reward_scale", f"use one of {REWARD_SCALES}")
        need(self.checkpoint_every >= 1, "checkpoint_every", "use 1 or more")
        need(self.sft_epochs >= 0, "sft_epochs", "use 0 or more")
        need(0 < self.sft_learning_rate < 10, "sft_learning_rate", "use a positive value")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "GRPOConfig":
        data: dict[str, Any] = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
