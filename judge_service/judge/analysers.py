"""Stage 2 of the judge: PolyTone-trained paralinguistic analysers.

The model is small and multi-task: a two-layer MLP trunk with one softmax head per dimension
(emotion, sarcasm, age, gender). Its input is what the judge already has for every clip:

* the *acoustic embedding*: mean and std over time of the Whisper encoder states of the clip
  (``WhisperTranscriber.encode_and_transcribe``), i.e. a frozen speech encoder run on our
  log-mel features, shared with the ASR stage so analysis costs one encoder pass;
* the measured prosody (``judge.prosody``) as a fixed vector: level, range, energy and rate
  (``prosody_vector``) and the style contour, the melody's shape and the voice quality
  (``analyser_vector`` adds ``STYLE_CONTOUR_FIELDS``).

Weights are saved as safetensors with a JSON config beside them and loaded by path, never by
pickle. Training lives in ``judge.training``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.prosody import STYLE_CONTOUR_FIELDS, Prosody
from judge_service.judge.weights import load_weights, read_config, save_weights

PROSODY_FEATURES = (
    "f0_median_st",
    "f0_p5_st",
    "f0_p95_st",
    "f0_range_semitones",
    "f0_std_semitones",
    "f0_missing",
    "voiced_fraction",
    "energy_dbfs",
    "energy_range_db",
    "pause_fraction",
    "speaking_rate_syllables_per_s",
    "rate_missing",
)
"""Prosody vector layout. F0 in semitones re 100 Hz; missing values are 0 with a flag."""

ANALYSER_PROSODY_FEATURES = PROSODY_FEATURES + STYLE_CONTOUR_FIELDS
"""What the analysers read beside the encoder states: ``analyser_vector``'s layout."""


def _semitones(hz: float | None) -> float:
    return 0.0 if hz is None else 12.0 * math.log2(hz / 100.0)


def prosody_vector(p: Prosody) -> np.ndarray:
    """``Prosody`` -> float32 ``(len(PROSODY_FEATURES),)``."""
    f0_missing = p.f0_median_hz is None
    rate_missing = p.speaking_rate_syllables_per_s is None
    return np.array(
        [
            _semitones(p.f0_median_hz),
            _semitones(p.f0_p5_hz),
            _semitones(p.f0_p95_hz),
            p.f0_range_semitones or 0.0,
            p.f0_std_semitones or 0.0,
            float(f0_missing),
            p.voiced_fraction,
            p.energy_dbfs,
            p.energy_range_db,
            p.pause_fraction,
            p.speaking_rate_syllables_per_s or 0.0,
            float(rate_missing),
        ],
        dtype=np.float32,
    )


def analyser_vector(p: Prosody) -> np.ndarray:
    """``Prosody`` -> float32 ``(len(ANALYSER_PROSODY_FEATURES),)``: ``prosody_vector`` then the
    style contour. Its first ``len(PROSODY_FEATURES)`` entries are ``prosody_vector(p)``."""
    contour = np.array([getattr(p, name) for name in STYLE_CONTOUR_FIELDS], dtype=np.float32)
    return np.concatenate([prosody_vector(p), contour])


PROSODY_EXPERT_HEADS: tuple[str, ...] = ("emotion",)
PROSODY_EXPERT_WEIGHT = 0.5
"""Dimensions that also get a *prosody expert*: a second trunk and head that read the prosody
vector only, not the encoder states. The pooled encoder states carry the speaker's identity;
with 15 training voices an emotion head that reads them learns voices (on held-out texts in
unseen voices it was right for 47 % of emotional queries, both renderings of a text for 19 %),
while a prosody-only head generalises across synthetic voices (62 %, 40 %) but loses real
voices (TESS UAR 0.69 -> 0.48), whose emotion is in spectral detail the states do carry. The
served probabilities are the normalised weighted geometric mean of the two heads
(``PROSODY_EXPERT_WEIGHT`` on the expert); each head is trained on its own loss. Measured
weights (held-out synthetic accuracy / contrast; TESS OAF, YAF and EMO-DB UAR): 0 -> 0.47 /
0.19, 0.65, 0.77, 0.80; 0.5 -> 0.57 / 0.31, 0.63, 0.74, 0.81; 0.7 -> 0.65 / 0.46, 0.55, 0.67,
0.79. 0.5 is the largest weight that keeps every real-voice UAR above 0.60."""


@dataclass
class AnalyserConfig:
    """Everything needed to rebuild the model; saved as ``analysers.json``."""

    embedding_dim: int
    prosody_features: tuple[str, ...] = ANALYSER_PROSODY_FEATURES
    hidden_dim: int = 256
    dropout: float = 0.2
    labels: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(LABEL_SETS))
    prosody_expert_heads: tuple[str, ...] = PROSODY_EXPERT_HEADS
    prosody_expert_weight: float = PROSODY_EXPERT_WEIGHT
    trained_on: dict[str, object] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return self.embedding_dim + len(self.prosody_features)


def _trunk(input_dim: int, hidden_dim: int, dropout: float) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(input_dim, hidden_dim),
        torch.nn.GELU(),
        torch.nn.Dropout(dropout),
        torch.nn.Linear(hidden_dim, hidden_dim),
        torch.nn.GELU(),
        torch.nn.Dropout(dropout),
    )


class StyleAnalyser(torch.nn.Module):
    """Multi-task MLP: standardised features ``(batch, input_dim)`` -> logits per dimension.

    One trunk on every feature (encoder states + prosody) feeds a head per dimension; for
    ``config.prosody_expert_heads`` a second trunk on the prosody columns alone feeds an expert
    head, and the dimension's logits are the weighted sum of the two heads' log-probabilities."""

    def __init__(self, config: AnalyserConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_dim))
        self.register_buffer("feature_std", torch.ones(config.input_dim))
        self.trunk = _trunk(config.input_dim, config.hidden_dim, config.dropout)
        self.heads = torch.nn.ModuleDict(
            {dim: torch.nn.Linear(config.hidden_dim, len(labels)) for dim, labels in config.labels.items()}
        )
        if config.prosody_expert_heads:
            self.prosody_trunk = _trunk(len(config.prosody_features), config.hidden_dim, config.dropout)
            self.prosody_heads = torch.nn.ModuleDict(
                {dim: torch.nn.Linear(config.hidden_dim, len(config.labels[dim])) for dim in config.prosody_expert_heads}
            )

    def head_logits(self, features: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Per dimension, the logits of each of its heads (the main head first): each one is
        trained on the dimension's labels."""
        x = (features - self.feature_mean) / self.feature_std
        hidden = self.trunk(x)
        out = {dim: [head(hidden)] for dim, head in self.heads.items()}
        if self.config.prosody_expert_heads:
            prosody_hidden = self.prosody_trunk(x[:, self.config.embedding_dim :])
            for dim, head in self.prosody_heads.items():
                out[dim].append(head(prosody_hidden))
        return out

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.config.prosody_expert_weight
        out = {}
        for dim, logits in self.head_logits(features).items():
            if len(logits) == 1:
                out[dim] = logits[0]
            else:
                main, expert = (torch.log_softmax(z, dim=-1) for z in logits)
                out[dim] = (1.0 - w) * main + w * expert
        return out

    @torch.no_grad()
    def predict_proba(self, embeddings: np.ndarray, prosody: np.ndarray) -> dict[str, np.ndarray]:
        """Class probabilities per dimension, each ``(batch, num_labels)`` float32.

        Rows are computed one at a time so a clip's output never depends on its batch."""
        self.eval()
        features = torch.from_numpy(np.concatenate([embeddings, prosody], axis=1).astype(np.float32))
        rows = [self(features[i : i + 1]) for i in range(features.shape[0])]
        return {
            dim: torch.cat([torch.softmax(r[dim], dim=-1) for r in rows]).numpy()
            if rows else np.zeros((0, len(labels)), np.float32)
            for dim, labels in self.config.labels.items()
        }


WEIGHTS_FILE = "analysers.safetensors"
CONFIG_FILE = "analysers.json"


def save_analyser(model: StyleAnalyser, directory: Path) -> None:
    save_weights(model, asdict(model.config), directory, WEIGHTS_FILE, CONFIG_FILE)


def load_analyser(directory: Path) -> StyleAnalyser:
    """Load from ``directory/analysers.{safetensors,json}`` (safetensors: no pickle)."""
    raw = read_config(directory, CONFIG_FILE)
    raw["prosody_features"] = tuple(raw["prosody_features"])
    raw["labels"] = {k: tuple(v) for k, v in raw["labels"].items()}
    raw["prosody_expert_heads"] = tuple(raw.get("prosody_expert_heads", ()))
    config = AnalyserConfig(**raw)
    if config.prosody_features != ANALYSER_PROSODY_FEATURES:
        raise ValueError(f"{directory}: analyser was trained on other prosody features; retrain it")
    return load_weights(StyleAnalyser(config), directory, WEIGHTS_FILE)


def labels_from_proba(proba: dict[str, np.ndarray], index: int, labels: dict[str, tuple[str, ...]]) -> dict[str, dict[str, object]]:
    """Wire form of one clip's predictions: label, confidence and all probabilities."""
    out: dict[str, dict[str, object]] = {}
    for dim, p in proba.items():
        row = p[index]
        best = int(np.argmax(row))
        out[dim] = {
            "label": labels[dim][best],
            "confidence": round(float(row[best]), 4),
            "probabilities": {label: round(float(v), 4) for label, v in zip(labels[dim], row)},
            "source": "polytone-analyser",
        }
    return out
