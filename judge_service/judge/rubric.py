"""Stage 4 of the judge: the local rubric scorer, learned from rubric-levelled pairs.

Inputs are the extracted text of the earlier stages, never raw audio (the paper's design):
the query and reply transcripts (MiniLM embeddings), the query's paralinguistic label
probabilities (stage 2) and the reply's tone (the analyser's probabilities on the reply
audio, stage 3, plus its prosody vector). An MLP maps them to a score in [1, 5].

The interactions that make the rubric style-aware are explicit features: the outer product
of the query's style probabilities and the reply's tone probabilities ("a sad query met by a
happy voice"), and query style x reply text ("a sad query met by congratulations") through
the hidden layer. Text-only features cannot tell the two renderings of one query apart, so
the scorer can only fit the training data by using the heard style (PolyTone, again).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from judge_service.judge.analysers import PROSODY_FEATURES
from judge_service.judge.labels import LABEL_SETS

RUBRIC_VERSION = "paras2s-rubric/1"
"""The 5-level expert rubric (see judge_service/judge/scenario_bank.py) as learned here."""

STYLE_DIM = sum(len(v) for v in LABEL_SETS.values())
RUBRIC_LEVELS = {
    5: "the cue is recognised and the reply fits it in content and voice",
    4: "right content, but the voice adds nothing",
    3: "the cue is considered, but the content is generic or awkward",
    2: "the cue is misread or the reply partly mismatches it",
    1: "the cue is handled in reverse",
}


def style_vector(probabilities: dict[str, np.ndarray]) -> np.ndarray:
    """Concatenate per-dimension probabilities in LABEL_SETS order -> ``(STYLE_DIM,)``."""
    return np.concatenate([np.asarray(probabilities[dim], dtype=np.float32) for dim in LABEL_SETS])


@dataclass
class RubricConfig:
    text_dim: int = 384
    hidden_dim: int = 256
    dropout: float = 0.2
    trained_on: dict[str, object] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return 3 * self.text_dim + 2 * STYLE_DIM + STYLE_DIM * STYLE_DIM + len(PROSODY_FEATURES)


def rubric_features(
    query_text: np.ndarray, reply_text: np.ndarray, query_style: np.ndarray,
    reply_style: np.ndarray, reply_prosody: np.ndarray,
) -> np.ndarray:
    """Rows of rubric inputs. Shapes: texts ``(n, text_dim)`` (unit-norm MiniLM, zeros for no
    speech), styles ``(n, STYLE_DIM)``, prosody ``(n, len(PROSODY_FEATURES))``."""
    interaction = np.einsum("ni,nj->nij", query_style, reply_style).reshape(len(query_style), -1)
    return np.concatenate(
        [query_text, reply_text, query_text * reply_text, query_style, reply_style, interaction, reply_prosody],
        axis=1,
    ).astype(np.float32)


class RubricScorer(torch.nn.Module):
    """MLP on ``rubric_features`` -> score in [1, 5]."""

    def __init__(self, config: RubricConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_dim))
        self.register_buffer("feature_std", torch.ones(config.input_dim))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(config.input_dim, config.hidden_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden_dim, 64),
            torch.nn.GELU(),
            torch.nn.Linear(64, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raw = self.net((features - self.feature_mean) / self.feature_std).squeeze(-1)
        return 1.0 + 4.0 * torch.sigmoid(raw)

    @torch.no_grad()
    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores ``(n,)`` float64, one row at a time (batch-invariant)."""
        self.eval()
        x = torch.from_numpy(features.astype(np.float32))
        return np.array([float(self(x[i : i + 1])[0]) for i in range(x.shape[0])], dtype=np.float64)


WEIGHTS_FILE = "rubric.safetensors"
CONFIG_FILE = "rubric.json"


def save_rubric(model: RubricScorer, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load_rubric(directory: Path) -> RubricScorer:
    config = RubricConfig(**json.loads((directory / CONFIG_FILE).read_text()))
    model = RubricScorer(config)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    model.eval()
    return model


def band_of(score: float) -> int:
    return int(min(5, max(1, round(score))))
