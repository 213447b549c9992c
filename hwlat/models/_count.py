"""Counting a model's parameters and multiply-accumulates (MACs), the numbers papers publish."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["count_params", "count_macs"]


def count_params(model: Any) -> int:
    """Number of parameters (weights and biases; batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: Any, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a zero tensor of ``input_shape``.

    Counts what papers count: convolutions (``out elements x cin/groups x kh x kw``), linear
    layers (``out elements x in_features``) and the matmuls of attention
    (:class:`hwlat.models._layers.MatMul`: ``out elements x inner dimension``). Batch norm,
    activations, pooling and element-wise ops are left out, as in the published tables.
    """
    import torch
    from torch import nn

    from hwlat.models._layers import MatMul

    total = 0

    def conv(mod, inputs, out):
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)

    def linear(mod, inputs, out):
        nonlocal total
        total += out.numel() * mod.in_features

    def matmul(mod, inputs, out):
        nonlocal total
        total += out.numel() * inputs[0].shape[-1]

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear))
        elif isinstance(mod, MatMul):
            hooks.append(mod.register_forward_hook(matmul))
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return total
