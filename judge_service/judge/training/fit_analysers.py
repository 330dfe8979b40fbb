"""Fit the multi-task style analyser on labelled features (seconds on a CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from judge_service.judge.analysers import AnalyserConfig, StyleAnalyser
from judge_service.judge.labels import LABEL_SETS
from judge_service.judge.training.optim import OptimiserSettings, minibatches, one_cycle, step
from judge_service.judge.training.records import ClipRecord


@dataclass(frozen=True)
class FitSettings(OptimiserSettings):
    feature_noise: float = 0.1
    """Gaussian noise (in standardised units) added to inputs while training: regularises
    the heads against the small number of real speakers."""


def label_matrix(records: list[ClipRecord]) -> dict[str, np.ndarray]:
    """Per dimension, int64 ``(n,)`` label indices with -1 where unknown."""
    return {
        dim: np.array([labels.index(r.labels[dim]) if r.labels[dim] is not None else -1 for r in records], dtype=np.int64)
        for dim, labels in LABEL_SETS.items()
    }


def source_weights(records: list[ClipRecord]) -> np.ndarray:
    """Each source (PolyTone, TESS, EMO-DB, LibriSpeech) weighs the same in total, so a few
    hundred real clips are not drowned by thousands of synthetic ones."""
    sources = np.array([r.source for r in records])
    weights = np.zeros(len(records), dtype=np.float32)
    for source in set(sources):
        mask = sources == source
        weights[mask] = 1.0 / mask.sum()
    return weights * len(records) / weights.sum()


def fit_analyser(
    embeddings: np.ndarray,
    prosody: np.ndarray,
    labels: dict[str, np.ndarray],
    sample_weights: np.ndarray,
    settings: FitSettings = FitSettings(),
    trained_on: dict[str, object] | None = None,
) -> StyleAnalyser:
    """Train from scratch, deterministically for a given ``settings.seed``."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    features = np.concatenate([embeddings, prosody], axis=1).astype(np.float32)
    config = AnalyserConfig(
        embedding_dim=embeddings.shape[1], hidden_dim=settings.hidden_dim, dropout=settings.dropout,
        trained_on=trained_on or {},
    )
    model = StyleAnalyser(config)
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-4
    model.feature_mean.copy_(torch.from_numpy(mean))
    model.feature_std.copy_(torch.from_numpy(std))
    x_all = torch.from_numpy(features)
    y_all = {dim: torch.from_numpy(y) for dim, y in labels.items()}
    w_all = torch.from_numpy(sample_weights.astype(np.float32))
    class_weights = {}
    for dim, y in labels.items():
        counts = np.bincount(y[y >= 0], minlength=len(LABEL_SETS[dim])).astype(np.float32)
        present = counts > 0
        weight = np.zeros_like(counts)
        weight[present] = counts[present].sum() / (present.sum() * counts[present])
        class_weights[dim] = torch.from_numpy(weight)
    optimizer, scheduler = one_cycle(model, settings, len(features))
    model.train()
    for idx in minibatches(len(features), settings, rng):
        x = x_all[idx]
        noise = torch.randn_like(x) * settings.feature_noise * model.feature_std
        logits = model.head_logits(x + noise)
        loss = torch.zeros(())
        for dim, y_dim in y_all.items():
            y = y_dim[idx]
            known = y >= 0
            if not known.any():
                continue
            w = w_all[idx][known]
            for head in logits[dim]:  # the main head and, where there is one, the prosody expert
                per_item = torch.nn.functional.cross_entropy(
                    head[known], y[known], weight=class_weights[dim], reduction="none"
                )
                loss = loss + (per_item * w).sum() / w.sum()
        step(optimizer, scheduler, loss)
    model.eval()
    return model
