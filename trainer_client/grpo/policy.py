"""Policies: the ``Policy`` protocol any S2S model can implement, and ``ReplyPolicy``, which runs on
a CPU, hears the query and chooses what to say and how to say it.

A prompt (``Prompt``) is a spoken query with candidate replies (texts written for each style of
its dimension at rubric levels 5..1, from the scenario bank). An action picks one candidate
(*what* to say) and one tone of ``TONES`` (*how* to say it); the response is that text rendered
in that tone, so the judge's reward depends on both. The policy never sees the query's style
label: it must hear it.

``ReplyPolicy`` (a few thousand parameters):
    query audio -> pooled log-mel statistics (mean and std of 80 bins) + prosody (F0, energy,
    rate) -> standardised -> Linear + tanh (``hidden``) = h
    content logit(c) = h . E[style written for(c)] + b[level(c)]
    tone logit(t | c) = (W h)[t] + T[style written for(c), t]
Log-probabilities are of the tempered distributions (logits / temperature), as TRL computes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from torch import nn

from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.polytone.styles import REPLY_TONE_LABELS

TONES: tuple[str, ...] = tuple(REPLY_TONE_LABELS)
STYLE_LABELS: tuple[str, ...] = tuple(f"{dim}:{label}" for dim, labels in LABEL_SETS.items() for label in labels)
LEVELS = (5, 4, 3, 2, 1)


@dataclass(frozen=True)
class Candidate:
    """A reply the policy may say: ``text``, the style label it was written for
    (``"emotion:sad"``), its rubric level for that style, and the tone it was written in."""

    text: str
    style: str
    level: int
    tone: str


@dataclass(frozen=True)
class Prompt:
    """A spoken query. ``style`` is the truth, used only for SFT labels and reports."""

    id: str
    audio_path: Path
    dimension: str
    style: str
    candidates: tuple[Candidate, ...]

    def gold(self) -> "Action":
        """The labelled demonstration: the level-5 reply for the true style, in its own tone."""
        label = f"{self.dimension}:{self.style}"
        for k, c in enumerate(self.candidates):
            if c.style == label and c.level == 5:
                return Action(k, TONES.index(c.tone))
        raise KeyError(f"prompt {self.id} has no level-5 candidate for {label}")


@dataclass(frozen=True)
class Action:
    content: int
    tone: int


def response_of(prompt: Prompt, action: Action) -> tuple[str, str]:
    """(text, tone) that the action says."""
    return prompt.candidates[action.content].text, TONES[action.tone]


class Policy(Protocol):
    """What the GRPO loop needs from an S2S policy.

    ``sample`` draws ``group_size`` actions per prompt and returns them with their
    log-probabilities ``(len(prompts), group_size)`` (no gradient); ``log_prob`` recomputes
    log-probabilities of given actions *with* gradient; ``greedy`` is the deterministic choice
    used for evaluation; ``parameters`` feed the optimiser.
    """

    def sample(self, prompts: Sequence[Prompt], group_size: int, generator: torch.Generator,
               temperature: float) -> tuple[list[list[Action]], torch.Tensor]: ...  # fmt: skip

    def log_prob(self, prompts: Sequence[Prompt], actions: Sequence[Sequence[Action]], temperature: float) -> torch.Tensor: ...

    def greedy(self, prompts: Sequence[Prompt]) -> list[Action]: ...

    def parameters(self): ...


class QueryFeatures:
    """Pooled log-mel mean/std ``(160,)`` + prosody ``(len(PROSODY_FEATURES),)`` per clip, cached
    by path, standardised with statistics fitted on the training prompts (``fit``)."""

    def __init__(self) -> None:
        self._cache: dict[Path, np.ndarray] = {}
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def raw(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            import soundfile as sf

            from judge_service.features import log_mel_spectrogram
            from judge_service.judge.analysers import prosody_vector
            from judge_service.judge.prosody import measure_prosody

            samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
            if rate != 16_000 or samples.ndim != 1:
                raise ValueError(f"{path}: the policy hears 16 kHz mono clips (got {rate} Hz, shape {samples.shape})")
            mel, frames = log_mel_spectrogram([torch.from_numpy(samples)])
            mel = mel[0, :, : int(frames[0])]
            pooled = torch.cat([mel.mean(dim=1), mel.std(dim=1)]).numpy()
            self._cache[path] = np.concatenate([pooled, prosody_vector(measure_prosody(samples, None))]).astype(np.float32)
        return self._cache[path]

    def fit(self, paths: Sequence[Path]) -> None:
        matrix = np.stack([self.raw(p) for p in paths])
        self.mean, self.std = matrix.mean(axis=0), matrix.std(axis=0) + 1e-3

    def __call__(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("QueryFeatures.fit(training prompt paths) must run first")
        matrix = np.stack([(self.raw(p.audio_path) - self.mean) / self.std for p in prompts])
        return torch.from_numpy(np.nan_to_num(matrix).astype(np.float32))

    def state(self) -> dict[str, torch.Tensor]:
        return {"features.mean": torch.from_numpy(self.mean), "features.std": torch.from_numpy(self.std)}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.mean, self.std = tensors["features.mean"].numpy(), tensors["features.std"].numpy()


class ReplyPolicy(nn.Module):
    """See the module docstring. ``features`` must be fitted before the first call."""

    def __init__(self, features: QueryFeatures, input_dim: int, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.features = features
        self.encoder = nn.Linear(input_dim, hidden)
        self.style_embedding = nn.Parameter(0.1 * torch.randn(len(STYLE_LABELS), hidden, generator=generator))
        self.level_bias = nn.Parameter(torch.zeros(len(LEVELS)))
        self.tone_from_audio = nn.Linear(hidden, len(TONES))
        self.tone_from_style = nn.Parameter(torch.zeros(len(STYLE_LABELS), len(TONES)))
        with torch.no_grad():
            self.encoder.weight.copy_(0.1 * torch.randn(self.encoder.weight.shape, generator=generator))
            self.encoder.bias.zero_()
            self.tone_from_audio.weight.copy_(0.1 * torch.randn(self.tone_from_audio.weight.shape, generator=generator))
            self.tone_from_audio.bias.zero_()

    def _logits(self, prompts: Sequence[Prompt]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per prompt: content logits ``(n_candidates,)`` and tone logits ``(n_candidates, n_tones)``."""
        h = torch.tanh(self.encoder(self.features(prompts)))  # (P, hidden)
        contents, tones = [], []
        for p, prompt in enumerate(prompts):
            styles = torch.tensor([STYLE_LABELS.index(c.style) for c in prompt.candidates])
            levels = torch.tensor([LEVELS.index(c.level) for c in prompt.candidates])
            contents.append(self.style_embedding[styles] @ h[p] + self.level_bias[levels])
            tones.append(self.tone_from_audio(h[p])[None, :] + self.tone_from_style[styles])
        return contents, tones

    def log_prob(self, prompts: Sequence[Prompt], actions: Sequence[Sequence[Action]], temperature: float = 1.0) -> torch.Tensor:
        """``(P, G)`` log-probabilities of ``actions[p][g]``, with gradient."""
        contents, tones = self._logits(prompts)
        rows = []
        for content, tone, acts in zip(contents, tones, actions):
            c_idx = torch.tensor([a.content for a in acts])
            t_idx = torch.tensor([a.tone for a in acts])
            log_c = torch.log_softmax(content / temperature, dim=0)[c_idx]
            log_t = torch.log_softmax(tone[c_idx] / temperature, dim=1).gather(1, t_idx[:, None])[:, 0]
            rows.append(log_c + log_t)
        return torch.stack(rows)

    @torch.no_grad()
    def sample(self, prompts: Sequence[Prompt], group_size: int, generator: torch.Generator,
               temperature: float = 1.0) -> tuple[list[list[Action]], torch.Tensor]:  # fmt: skip
        contents, tones = self._logits(prompts)
        actions = []
        for content, tone in zip(contents, tones):
            c_idx = torch.multinomial(torch.softmax(content / temperature, dim=0), group_size, replacement=True, generator=generator)
            t_probs = torch.softmax(tone[c_idx] / temperature, dim=1)
            t_idx = torch.multinomial(t_probs, 1, generator=generator)[:, 0]
            actions.append([Action(int(c), int(t)) for c, t in zip(c_idx, t_idx)])
        return actions, self.log_prob(prompts, actions, temperature)

    @torch.no_grad()
    def greedy(self, prompts: Sequence[Prompt]) -> list[Action]:
        contents, tones = self._logits(prompts)
        out = []
        for content, tone in zip(contents, tones):
            c = int(torch.argmax(content))
            out.append(Action(c, int(torch.argmax(tone[c]))))
        return out
