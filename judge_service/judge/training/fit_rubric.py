"""Fit the rubric scorer on rubric-levelled (query, reply) pairs from the scenario bank.

Training pairs, for every train-split scenario and each of its two styles ``s`` (other: ``o``):

* own replies: reply for ``s`` at level L, in its own tone            -> L
* mismatched: the level-5 reply for ``o``, in its tone                  -> 2
* tone swaps (the rubric's PolyTone): the level-5 *text* for ``s`` with
  the voice of the level-4 reply (neutral delivery)                     -> 4
  the voice of the level-5 reply for ``o`` (a contrary tone)            -> 2

The reply-intent classifier (``rubric.ReplyIntent``) is cross-fitted the same way: a row's intent
comes from a classifier that never saw its scenario's replies.

Query-style inputs are the analyser's *cross-fitted* probabilities for a rendering of the query
in style ``s`` (predicted by an analyser that never saw that scenario), so the scorer learns to
trust them as much as they deserve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from judge_service.judge.training.optim import OptimiserSettings, minibatches, one_cycle, step
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


def fit_rubric(
    features: np.ndarray, targets: np.ndarray, bank: ReplyBank, intent: ReplyIntent,
    settings: RubricFitSettings = RubricFitSettings(),
    calibration: tuple[float, float] = (0.0, 1.0), trained_on: dict[str, object] | None = None,
) -> RubricScorer:
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    config = RubricConfig(hidden_dim=settings.hidden_dim, dropout=settings.dropout, bank_size=len(bank.levels),
                          calibration=calibration, trained_on=trained_on or {})
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
    x_all, y_all = torch.from_numpy(features), torch.from_numpy(targets)
    optimizer, scheduler = one_cycle(model, settings, len(features))
    model.train()
    for idx in minibatches(len(features), settings, rng):
        loss = torch.nn.functional.mse_loss(model(x_all[idx]), y_all[idx])
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
