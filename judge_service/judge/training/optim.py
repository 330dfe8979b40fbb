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


def step(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
