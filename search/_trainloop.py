"""Training and evaluation loops shared by the splitting and width frontends (digits-sized models)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from hwlat.search._common import evaluate  # noqa: F401  (re-exported)

__all__ = ["TrainConfig", "TrainStats", "train", "evaluate", "TRAIN_MACS_PER_FORWARD"]

log = logging.getLogger(__name__)
# A training step costs about three forward passes (forward, input and weight gradients).
TRAIN_MACS_PER_FORWARD = 3


@dataclass(frozen=True)
class TrainConfig:
    """SGD with Nesterov momentum and a cosine schedule over ``epochs``.

    Parameters
    ----------
    epochs : int
        Passes over the training split.
    lr, momentum, weight_decay : float
        Optimiser settings.
    seed : int
        Seed of the weight initialisation and shuffling done here.
    """

    epochs: int = 20
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"Invalid epochs={self.epochs}: must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"Invalid lr={self.lr}: must be > 0")


@dataclass(frozen=True)
class TrainStats:
    """What one training run cost: epochs, samples seen, wall time and multiply-accumulates."""

    epochs: int
    samples: int
    seconds: float
    macs: int
    final_loss: float


def train(
    model: nn.Module,
    loader: DataLoader,
    config: TrainConfig,
    *,
    forward_macs: int = 0,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    after_step: Callable[[float], None] | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    desc: str = "train",
    quiet: bool = True,
) -> TrainStats:
    """Train ``model`` in place with cross-entropy (+ ``regularizer(model)``).

    Parameters
    ----------
    forward_macs : int
        MACs of one forward pass of one sample, to count the training cost
        (``3 * forward_macs`` per sample).
    regularizer : callable, optional
        Extra loss term, e.g. a sparsity penalty.
    after_step : callable, optional
        Called as ``after_step(lr)`` after every optimiser step (e.g. a proximal step).
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, model)`` after each epoch.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
    )
    steps = max(1, config.epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    t0, samples, loss_value = time.perf_counter(), 0, float("nan")
    for epoch in tqdm(range(config.epochs), desc=desc, unit="epoch", disable=quiet, file=sys.stderr, leave=False):
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            if regularizer is not None:
                loss = loss + regularizer(model)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(opt.param_groups[0]["lr"])
            sched.step()
            samples += len(y)
            loss_value = float(loss.detach())
        if on_epoch is not None:
            on_epoch(epoch, model)
    seconds = time.perf_counter() - t0
    log.info("%s: %d epochs, %d samples, %.1f s, final loss %.4f", desc, config.epochs, samples, seconds, loss_value)
    return TrainStats(config.epochs, samples, seconds, TRAIN_MACS_PER_FORWARD * forward_macs * samples, loss_value)
