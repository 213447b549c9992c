"""Small training helpers shared by the ProxylessNAS and DARC frontends."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["evaluate", "finetune", "cycle", "cosine_sgd"]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy (0..1) of ``model`` in eval mode; its mode is restored."""
    was = model.training
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    model.train(was)
    return correct / max(total, 1)


def cycle(loader: DataLoader) -> Iterator:
    """Batches of ``loader`` forever (reshuffled on every pass when the loader shuffles)."""
    while True:
        yield from loader


def cosine_sgd(params, lr: float, steps: int, momentum: float = 0.9, weight_decay: float = 5e-4):
    """Nesterov SGD with a cosine schedule over ``steps``: (optimizer, scheduler)."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    steps = max(1, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    return opt, sched


def finetune(
    model: nn.Module,
    loader: DataLoader,
    epochs: int,
    lr: float = 0.02,
    weight_decay: float = 5e-4,
    desc: str = "fine-tune",
    quiet: bool = True,
) -> float:
    """Train ``model`` with cross-entropy only; returns the last batch loss (nan when ``epochs`` is 0)."""
    from tqdm.auto import tqdm

    opt, sched = cosine_sgd(model.parameters(), lr, epochs * len(loader), weight_decay=weight_decay)
    model.train()
    loss_value = float("nan")
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=quiet, file=sys.stderr, leave=False):
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            loss_value = float(loss.detach())
    return loss_value
