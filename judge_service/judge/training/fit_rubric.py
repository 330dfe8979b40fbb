"""Fit the rubric scorer on rubric-levelled (query, reply) pairs from the scenario bank.

Training pairs, for every train-split scenario and each of its two styles ``s`` (other: ``o``):

* own replies: reply for ``s`` at level L, in its own tone            -> L
* mismatched: the level-5 reply for ``o``, in its tone                  -> 2
* tone swaps (the rubric's PolyTone): the level-5 *text* for ``s`` with
  the voice of the level-4 reply (neutral delivery)                     -> 4
  the voice of the level-5 reply for ``o`` (a contrary tone)            -> 2

The reply-intent classifier (``rubric.ReplyIntent``) is cross-fitted the same way: a row's intent
comes from a classifier that never saw its scenario's replies.

The loss is the squared error to the target plus, among the pairs of one query rendering, a
logistic ranking loss on every pair whose targets differ (``RubricFitSettings.rank_weight``):
what a judge is used for is telling a query's better reply from its worse one, and the style-
hallucination test asks exactly that of the own level-5 and the mismatched reply.

What was measured, choosing these (PolyTone 1.1, 121 held-out scenarios x held-out voices,
the rubric's rows on Whisper's transcripts; share of query renderings whose own level-5 reply
outscores the other style's, heard labels / true labels):

* the MLP alone, squared error: 0.729 / 0.785
* + the explicit style-fit term with a learned weight and the ranking loss: 0.758 / 0.812
  (the learned weights stayed near 1: the MLP fits the training scenarios from their
  memorised texts instead, which does not carry to new ones)
* the term gated by the query's cue (``rubric.style_fit_terms``) at a fixed weight 3:
  0.789 / 0.847 (weight 6: 0.785 / 0.835; ranking weight 3: 0.771 / 0.831)
* the term alone, no MLP: 0.802 / 0.860, but it cannot rank levels 5-3 of one style's replies.

Query-style inputs are the analyser's *cross-fitted* probabilities for a rendering of the query
in style ``s`` (predicted by an analyser that never saw that scenario), so the scorer learns to
trust them as much as they deserve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from judge_service.judge.training.optim import OptimiserSettings, grouped_minibatches, one_cycle, step
from judge_service.judge.rubric import (
    ReplyBank,
    ReplyIntent,
    RubricConfig,
    RubricScorer,
    affinity_features,
    intent_features,
    rubric_features,
)


@dataclass(frozen=True)
class RubricExample:
    query_text: int  # row in the text-embedding table
    reply_text: int
    query_style: int  # row in the query-style table
    reply_voice: int  # row in the reply analysis tables (style probabilities, prosody)
    target: float
    kind: str
    group: str  # the scenario: left out of the reply bank when computing this row's affinity


@dataclass(frozen=True)
class RubricFitSettings(OptimiserSettings):
    epochs: int = 80
    batch_size: int = 128
    style_fit_weight: float = 3.0
    """``RubricConfig.style_fit_weight`` of the fitted rubric (see the module docstring)."""
    rank_weight: float = 1.0
    rank_sharpness_per_point: float = 2.0
    """The ranking loss of a pair is ``softplus(-k * (better - worse))`` with ``k`` this, per
    score point."""


def build_features(
    examples: list[RubricExample], text_table: np.ndarray, query_style_table: np.ndarray,
    reply_style_table: np.ndarray, reply_prosody_table: np.ndarray, bank: ReplyBank,
    intent_table: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rubric input rows and targets; ``intent_table`` ``(len(examples), len(BANK_STYLES))`` is
    each example's (cross-fitted) reply intent."""
    q = np.array([e.query_text for e in examples])
    r = np.array([e.reply_text for e in examples])
    s = np.array([e.query_style for e in examples])
    v = np.array([e.reply_voice for e in examples])
    expected = bank.expected_levels(text_table[r], exclude_groups=[e.group for e in examples])
    affinity = affinity_features(expected, query_style_table[s])
    intent = intent_features(intent_table, query_style_table[s])
    features = rubric_features(
        text_table[q], text_table[r], query_style_table[s], reply_style_table[v], reply_prosody_table[v], affinity,
        intent,
    )
    targets = np.array([e.target for e in examples], dtype=np.float32)
    return features, targets


INTENT_EPOCHS = 400
INTENT_LEARNING_RATE = 1e-2
INTENT_WEIGHT_DECAY = 1e-3
"""Full-batch Adam for the reply-intent classifier; the values gave the best held-out
pairwise accuracy (93 %) of a small grid (weight decay 1e-5..1e-3, levels 5 vs 4-5)."""


def fit_reply_intent(vectors: np.ndarray, style_ids: np.ndarray, num_styles: int, seed: int = 0) -> ReplyIntent:
    """Multinomial logistic regression: MiniLM vectors ``(n, text_dim)`` of level-5 replies ->
    the index of the style they were written for (``(n,)`` int). Deterministic for a seed."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(vectors.astype(np.float32)), torch.from_numpy(style_ids.astype(np.int64))
    linear = torch.nn.Linear(x.shape[1], num_styles)
    optimizer = torch.optim.Adam(linear.parameters(), lr=INTENT_LEARNING_RATE, weight_decay=INTENT_WEIGHT_DECAY)
    for _ in range(INTENT_EPOCHS):
        loss = torch.nn.functional.cross_entropy(linear(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return ReplyIntent(linear.weight.numpy().copy(), linear.bias.numpy().copy())


def pairwise_rank_loss(scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Mean ``softplus(-sharpness * (s_i - s_j))`` over pairs of one group with ``t_i > t_j``
    (zero when there are none). Shapes: ``(n,)`` each."""
    ordered = (groups[:, None] == groups[None, :]) & (targets[:, None] > targets[None, :])
    if not bool(ordered.any()):
        return scores.sum() * 0.0
    return torch.nn.functional.softplus(-sharpness * (scores[:, None] - scores[None, :])[ordered]).mean()


def fit_rubric(
    features: np.ndarray, targets: np.ndarray, query_rows: np.ndarray, bank: ReplyBank, intent: ReplyIntent,
    settings: RubricFitSettings = RubricFitSettings(),
    calibration: tuple[float, float] = (0.0, 1.0), trained_on: dict[str, object] | None = None,
) -> RubricScorer:
    """``query_rows`` ``(n,)``: each example's query rendering; the ranking loss compares the
    examples of one rendering."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    config = RubricConfig(hidden_dim=settings.hidden_dim, dropout=settings.dropout, bank_size=len(bank.levels),
                          style_fit_weight=settings.style_fit_weight, calibration=calibration, trained_on=trained_on or {})
    if features.shape[1] != config.input_dim:
        raise ValueError(f"rubric features have {features.shape[1]} columns, the model wants {config.input_dim}")
    model = RubricScorer(config)
    model.bank_vectors.copy_(torch.from_numpy(bank.vectors).half())
    model.bank_styles.copy_(torch.from_numpy(bank.styles))
    model.bank_levels.copy_(torch.from_numpy(bank.levels))
    model.intent_weight.copy_(torch.from_numpy(intent.weight))
    model.intent_bias.copy_(torch.from_numpy(intent.bias))
    model.feature_mean.copy_(torch.from_numpy(features.mean(axis=0)))
    model.feature_std.copy_(torch.from_numpy(features.std(axis=0) + 1e-3))
    x_all, y_all, g_all = torch.from_numpy(features), torch.from_numpy(targets), torch.from_numpy(query_rows)
    optimizer, scheduler = one_cycle(model, settings, len(features))
    model.train()
    for idx in grouped_minibatches(query_rows, settings, rng):
        scores = model(x_all[idx])
        loss = torch.nn.functional.mse_loss(scores, y_all[idx])
        if settings.rank_weight > 0:
            loss = loss + settings.rank_weight * pairwise_rank_loss(
                scores, y_all[idx], g_all[idx], settings.rank_sharpness_per_point)
        step(optimizer, scheduler, loss)
    model.eval()
    return model


def fit_calibration(raw: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """``a + b * raw`` that maps the mean cross-fitted prediction of each target level onto the
    level (weighted by count): per-level *means* come out unbiased, which is what a benchmark
    averaging scores per system needs. (A least-squares fit of targets on predictions would
    instead shrink every score toward 3: regression dilution from noisy predictions.)"""
    levels = np.unique(targets)
    means = np.array([raw[targets == level].mean() for level in levels])
    counts = np.array([(targets == level).sum() for level in levels], dtype=np.float64)
    b, a = np.polyfit(means, levels, 1, w=np.sqrt(counts))
    return (float(a), float(max(b, 1e-3)))
