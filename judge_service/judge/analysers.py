"""Stage 2 of the judge: PolyTone-trained paralinguistic analysers.

The model is small and multi-task: a two-layer MLP trunk with one softmax head per dimension
(emotion, sarcasm, age, gender). Its input is what the judge already has for every clip:

* the *acoustic embedding*: mean and std over time of the Whisper encoder states of the clip
  (``WhisperTranscriber.encode_and_transcribe``), i.e. a frozen speech encoder run on our
  log-mel features, shared with the ASR stage so analysis costs one encoder pass;
* the measured prosody (``judge.prosody``) as a fixed vector (``prosody_vector``).

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
from judge_service.judge.prosody import Prosody
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


@dataclass
class AnalyserConfig:
    """Everything needed to rebuild the model; saved as ``analysers.json``."""

    embedding_dim: int
    prosody_features: tuple[str, ...] = PROSODY_FEATURES
    hidden_dim: int = 256
    dropout: float = 0.2
    labels: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(LABEL_SETS))
    trained_on: dict[str, object] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return self.embedding_dim + len(self.prosody_features)


class StyleAnalyser(torch.nn.Module):
    """Multi-task MLP: standardised features ``(batch, input_dim)`` -> logits per dimension."""

    def __init__(self, config: AnalyserConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_dim))
        self.register_buffer("feature_std", torch.ones(config.input_dim))
        self.trunk = torch.nn.Sequential(
            torch.nn.Linear(config.input_dim, config.hidden_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden_dim, config.hidden_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(config.dropout),
        )
        self.heads = torch.nn.ModuleDict(
            {dim: torch.nn.Linear(config.hidden_dim, len(labels)) for dim, labels in config.labels.items()}
        )

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.trunk((features - self.feature_mean) / self.feature_std)
        return {dim: head(hidden) for dim, head in self.heads.items()}

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
    config = AnalyserConfig(**raw)
    if config.prosody_features != PROSODY_FEATURES:
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
