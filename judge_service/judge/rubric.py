"""Stage 4 of the judge: the local rubric scorer, learned from rubric-levelled pairs.

Inputs are the extracted text of the earlier stages, never raw audio (the paper's design):
the query and reply transcripts (MiniLM embeddings), the query's paralinguistic label
probabilities (stage 2) and the reply's tone (the analyser's probabilities on the reply
audio, stage 3, plus its prosody vector). An MLP maps them to a score in [1, 5].

The interactions that make the rubric style-aware are explicit features: the outer product
of the query's style probabilities and the reply's tone probabilities ("a sad query met by a
happy voice"), and query style x reply text ("a sad query met by congratulations"), both
through the hidden layer and explicitly: the reply's *intent* (which speaker style its words
were written for, a linear classifier on its MiniLM vector) weighted by the query's style
probabilities. Text-only features cannot tell the two renderings of one query apart, so
the scorer can only fit the training data by using the heard style (PolyTone, again).

The style fit is also added to the MLP's logit as an explicit term (``style_fit_terms``): per
dimension, whether the query sounds like a style replies are written for, times how much the
reply's words address the dimension, times +1 if they were written for the style the query
sounds like and -1 if for another; weighted by ``RubricConfig.style_fit_weight``. Left to find
that product among ~1.4k inputs, the MLP underused it (see ``fit_rubric``'s docstring for
what was measured).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from judge_service.judge.analysers import PROSODY_FEATURES
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.weights import load_weights, read_config, save_weights

RUBRIC_VERSION = "paras2s-rubric/1"
"""The 5-level expert rubric (see judge_service/judge/scenario_bank.py) as learned here."""

STYLE_DIM = sum(len(v) for v in LABEL_SETS.values())
BANK_STYLES: tuple[tuple[str, str], ...] = tuple(
    (dim, label) for dim, labels in LABEL_SETS.items() for label in labels
    if not (dim == "emotion" and label == "neutral") and not (dim == "age" and label == "senior")
)
"""The styles scenario-bank replies are written for (no reply is written for a neutral or a
senior speaker)."""
AFFINITY_NEIGHBOURS = 8
AFFINITY_TEMPERATURE = 0.05
AFFINITY_DIM = len(BANK_STYLES) + len(LABEL_SETS)
INTENT_DIM = len(BANK_STYLES) + len(LABEL_SETS)
RUBRIC_LEVELS = {
    5: "the cue is recognised and the reply fits it in content and voice",
    4: "right content, but the voice adds nothing",
    3: "the cue is considered, but the content is generic or awkward",
    2: "the cue is misread or the reply partly mismatches it",
    1: "the cue is handled in reverse",
}


class ReplyBank:
    """Training replies as (MiniLM vector, style written for, rubric level): a nearest-
    neighbour memory of "how a reply like this one fits a speaker of style X". It generalises
    to new texts through MiniLM's semantics (comforting vs congratulating replies cluster)."""

    def __init__(self, vectors: np.ndarray, styles: np.ndarray, levels: np.ndarray, groups: list[str] | None = None) -> None:
        self.vectors = vectors.astype(np.float32)
        self.styles = styles.astype(np.int64)
        self.levels = levels.astype(np.float32)
        self.groups = np.array(groups) if groups is not None else None

    def expected_levels(self, replies: np.ndarray, exclude_groups: list[str] | None = None) -> np.ndarray:
        """``(n, len(BANK_STYLES))``: per style, the similarity-weighted mean level of the
        ``AFFINITY_NEIGHBOURS`` nearest bank replies written for that style (leaving out
        replies of ``exclude_groups[i]`` for row i: leave-one-scenario-out in training)."""
        similarity = replies.astype(np.float32) @ self.vectors.T  # (n, m)
        if exclude_groups is not None:
            assert self.groups is not None, "exclusion needs the bank's groups"
            similarity = np.where(self.groups[None, :] == np.array(exclude_groups)[:, None], -np.inf, similarity)
        out = np.zeros((len(replies), len(BANK_STYLES)), np.float32)
        for s in range(len(BANK_STYLES)):
            columns = np.where(self.styles == s)[0]
            if columns.size == 0:
                continue
            sims = similarity[:, columns]
            k = min(AFFINITY_NEIGHBOURS, columns.size)
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            top_sims = np.take_along_axis(sims, top, axis=1)
            weights = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / AFFINITY_TEMPERATURE)
            weights = np.where(np.isfinite(top_sims), weights, 0.0)
            levels = self.levels[columns][top]
            out[:, s] = (weights * levels).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return out


def _dimension_columns() -> list[tuple[list[int], list[int]]]:
    """Per dimension (LABEL_SETS order): its columns in BANK_STYLES and the matching columns of a
    STYLE_DIM query-style vector."""
    out, offset = [], 0
    for dim, labels in LABEL_SETS.items():
        bank_cols = [i for i, (d, _) in enumerate(BANK_STYLES) if d == dim]
        out.append((bank_cols, [offset + labels.index(BANK_STYLES[i][1]) for i in bank_cols]))
        offset += len(labels)
    return out


_DIMENSION_COLUMNS = _dimension_columns()


def _query_weighted(per_style: np.ndarray, query_style: np.ndarray, normalise_within_dimension: bool) -> np.ndarray:
    """``per_style`` ``(n, len(BANK_STYLES))`` -> per dimension its mean over the dimension's
    bank styles weighted by the query's probability of each style: ``(n, len(LABEL_SETS))``.
    With ``normalise_within_dimension``, ``per_style`` (a distribution over all bank styles) is
    first renormalised over the dimension's styles."""
    per_dim = []
    for bank_cols, query_cols in _DIMENSION_COLUMNS:
        probs = query_style[:, query_cols]
        values = per_style[:, bank_cols]
        if normalise_within_dimension:
            values = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-9)
        per_dim.append((probs * values).sum(axis=1) / np.maximum(probs.sum(axis=1), 1e-6))
    return np.stack(per_dim, axis=1)


def affinity_features(expected: np.ndarray, query_style: np.ndarray) -> np.ndarray:
    """Expected levels per bank style, plus per dimension the query-probability-weighted
    expectation (how well the reply fits the speaker the query sounds like): ``(n, AFFINITY_DIM)``."""
    per_dim = _query_weighted(expected, query_style, normalise_within_dimension=False)
    return np.concatenate([expected, per_dim], axis=1).astype(np.float32)


def intent_features(intent: np.ndarray, query_style: np.ndarray) -> np.ndarray:
    """The reply's intent ``(n, len(BANK_STYLES))`` (``ReplyIntent.predict``), plus per dimension
    the probability that its words were written for the style the query sounds like (intent
    renormalised within the dimension, weighted by the query's style probabilities):
    ``(n, INTENT_DIM)``."""
    per_dim = _query_weighted(intent, query_style, normalise_within_dimension=True)
    return np.concatenate([intent, per_dim], axis=1).astype(np.float32)


class ReplyIntent:
    """Which speaker style a reply's words were written for: softmax(W v + b) over BANK_STYLES
    of its unit-norm MiniLM vector ``v``. Trained on the level-5 replies of the train scenarios
    (a comforting reply is "for sad", a playful one "for child"); on held-out scenarios it picks
    the reply written for a style over the one written for its contrast in 93 % of cases (text
    only), where the nearest-neighbour affinity picks it in 88 %."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight.astype(np.float32)  # (len(BANK_STYLES), text_dim)
        self.bias = bias.astype(np.float32)  # (len(BANK_STYLES),)

    def predict(self, replies: np.ndarray) -> np.ndarray:
        """``(n, text_dim)`` MiniLM vectors -> ``(n, len(BANK_STYLES))`` probabilities, float64."""
        logits = replies.astype(np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def style_fit_terms(features: torch.Tensor) -> torch.Tensor:
    """Explicit style-fit terms from rubric input rows ``(n, input_dim)`` (raw, not
    standardised): ``(n, len(LABEL_SETS))``, per dimension ``cue * mass * (2 * match - 1)`` in
    [-1, 1], where ``cue`` is the query's probability of the dimension's reply styles (an
    emotion query heard as neutral has no emotional cue to fit), ``mass`` the reply intent's
    probability summed over those styles (do its words address this dimension at all?) and
    ``match`` the intent's query-weighted within-dimension probability (``intent_features``'
    last columns: were they written for the style the query sounds like?)."""
    query_style = features[:, _QUERY_STYLE_COLUMNS]
    intent = features[:, -INTENT_DIM : -len(LABEL_SETS)]
    match = features[:, -len(LABEL_SETS) :]
    cue = torch.stack([query_style[:, query_cols].sum(dim=1) for _, query_cols in _DIMENSION_COLUMNS], dim=1)
    mass = torch.stack([intent[:, bank_cols].sum(dim=1) for bank_cols, _ in _DIMENSION_COLUMNS], dim=1)
    return cue * mass * (2.0 * match - 1.0)


def style_vector(probabilities: dict[str, np.ndarray]) -> np.ndarray:
    """Concatenate per-dimension probabilities in LABEL_SETS order along the last axis: one
    clip's ``(num_labels,)`` rows -> ``(STYLE_DIM,)``, or ``predict_proba``'s ``(n, num_labels)``
    -> ``(n, STYLE_DIM)``."""
    return np.concatenate([np.asarray(probabilities[dim], dtype=np.float32) for dim in LABEL_SETS], axis=-1)


@dataclass
class RubricConfig:
    text_dim: int = 384
    hidden_dim: int = 256
    dropout: float = 0.2
    bank_size: int = 0
    style_fit_weight: float = 0.0
    """The MLP's logit gets ``style_fit_weight * style_fit_terms(...).sum()`` added (0: a model
    trained before the term existed)."""
    calibration: tuple[float, float] = (0.0, 1.0)
    """``score = clip(a + b * raw, 1, 5)``, fitted on cross-fitted predictions: undoes the
    regression to the mean a scorer shows on scenarios it has never seen."""
    trained_on: dict[str, object] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return (3 * self.text_dim + 2 * STYLE_DIM + STYLE_DIM * STYLE_DIM + len(PROSODY_FEATURES) + AFFINITY_DIM
                + INTENT_DIM)


_QUERY_STYLE_COLUMNS = slice(3 * RubricConfig.text_dim, 3 * RubricConfig.text_dim + STYLE_DIM)
"""Where ``rubric_features`` puts the query's style probabilities."""


def rubric_features(
    query_text: np.ndarray, reply_text: np.ndarray, query_style: np.ndarray,
    reply_style: np.ndarray, reply_prosody: np.ndarray, affinity: np.ndarray, intent: np.ndarray,
) -> np.ndarray:
    """Rows of rubric inputs. Shapes: texts ``(n, text_dim)`` (unit-norm MiniLM, zeros for no
    speech), styles ``(n, STYLE_DIM)``, prosody ``(n, len(PROSODY_FEATURES))``, affinity
    ``(n, AFFINITY_DIM)`` (``affinity_features``), intent ``(n, INTENT_DIM)`` (``intent_features``)."""
    interaction = np.einsum("ni,nj->nij", query_style, reply_style).reshape(len(query_style), -1)
    return np.concatenate(
        [query_text, reply_text, query_text * reply_text, query_style, reply_style, interaction, reply_prosody, affinity,
         intent],
        axis=1,
    ).astype(np.float32)


class RubricScorer(torch.nn.Module):
    """MLP on ``rubric_features`` -> score in [1, 5]."""

    def __init__(self, config: RubricConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.input_dim))
        self.register_buffer("feature_std", torch.ones(config.input_dim))
        self.register_buffer("bank_vectors", torch.zeros(config.bank_size, config.text_dim, dtype=torch.float16))
        self.register_buffer("bank_styles", torch.zeros(config.bank_size, dtype=torch.int64))
        self.register_buffer("bank_levels", torch.zeros(config.bank_size))
        self.register_buffer("intent_weight", torch.zeros(len(BANK_STYLES), config.text_dim))
        self.register_buffer("intent_bias", torch.zeros(len(BANK_STYLES)))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(config.input_dim, config.hidden_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden_dim, 64),
            torch.nn.GELU(),
            torch.nn.Linear(64, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw rubric input rows ``(n, input_dim)`` -> uncalibrated scores ``(n,)`` in [1, 5]."""
        raw = self.net((features - self.feature_mean) / self.feature_std).squeeze(-1)
        if self.config.style_fit_weight:
            raw = raw + self.config.style_fit_weight * style_fit_terms(features).sum(dim=-1)
        return 1.0 + 4.0 * torch.sigmoid(raw)

    def bank(self) -> ReplyBank:
        return ReplyBank(self.bank_vectors.float().numpy(), self.bank_styles.numpy(), self.bank_levels.numpy())

    def intent(self) -> ReplyIntent:
        return ReplyIntent(self.intent_weight.numpy(), self.intent_bias.numpy())

    @torch.no_grad()
    def raw_score(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated scores ``(n,)`` float64, one row at a time (batch-invariant)."""
        self.eval()
        x = torch.from_numpy(features.astype(np.float32))
        return np.array([float(self(x[i : i + 1])[0]) for i in range(x.shape[0])], dtype=np.float64)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Calibrated scores in [1, 5], ``(n,)`` float64."""
        a, b = self.config.calibration
        return np.clip(a + b * self.raw_score(features), 1.0, 5.0)


WEIGHTS_FILE = "rubric.safetensors"
CONFIG_FILE = "rubric.json"


def save_rubric(model: RubricScorer, directory: Path) -> None:
    save_weights(model, asdict(model.config), directory, WEIGHTS_FILE, CONFIG_FILE)


def load_rubric(directory: Path) -> RubricScorer:
    """Load from ``directory/rubric.{safetensors,json}`` (safetensors: no pickle)."""
    raw = read_config(directory, CONFIG_FILE)
    raw["calibration"] = tuple(raw.get("calibration", (0.0, 1.0)))
    return load_weights(RubricScorer(RubricConfig(**raw)), directory, WEIGHTS_FILE)


def band_of(score: float) -> int:
    return int(min(5, max(1, round(score))))
