"""Optimiser settings and set-up shared by the analyser and rubric fits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class OptimiserSettings:
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    hidden_dim: int = 256
    dropout: float = 0.2
    seed: int = 0


def one_cycle(
    model: torch.nn.Module, settings: OptimiserSettings, num_examples: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a one-cycle learning-rate schedule over ``settings.epochs`` epochs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps = settings.epochs * max(1, int(np.ceil(num_examples / settings.batch_size)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.learning_rate, total_steps=steps)
    return optimizer, scheduler


def minibatches(num_examples: int, settings: OptimiserSettings, rng: np.random.Generator) -> Iterator[torch.Tensor]:
    """Index tensors of shuffled minibatches, ``settings.epochs`` passes over the examples."""
    for _ in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(num_examples))
        for start in range(0, num_examples, settings.batch_size):
            yield order[start : start + settings.batch_size]


def grouped_minibatches(
    groups: np.ndarray, settings: OptimiserSettings, rng: np.random.Generator
) -> Iterator[torch.Tensor]:
    """Like ``minibatches``, but a group's examples (``groups``: ``(n,)`` ids) always share a
    minibatch, so a loss can compare them. Whole groups are dealt into as many minibatches per
    epoch as ``minibatches`` makes, so ``one_cycle``'s step count still holds."""
    ids, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    steps_per_epoch = max(1, int(np.ceil(len(groups) / settings.batch_size)))
    for _ in range(settings.epochs):
        for chunk in np.array_split(rng.permutation(len(ids)), steps_per_epoch):
            if len(chunk):  # fewer groups than steps: fewer steps, which one_cycle allows
                yield torch.from_numpy(np.concatenate([members[g] for g in chunk]))


def step(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
