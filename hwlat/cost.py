"""Latency as a differentiable cost: torch modules built from a fitted predictor.

:class:`LatencyLUT` holds the predicted latency of every candidate op of
every searchable layer in a registered buffer; :meth:`LatencyLUT.expected_latency`
turns architecture probabilities into an expected latency that is a real
autograd tensor (a known integration elsewhere rebuilt it with
``torch.tensor([...])``, which detached it and silently lost the gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwlat.ops import OpSpec

__all__ = ["LatencyLUT"]


class LatencyLUT(nn.Module):
    """Predicted latency (ms) of each (layer, candidate) pair plus fixed parts.

    Parameters
    ----------
    predictor : LatencyPredictor
        Fitted predictor of the target device.
    candidates : sequence of sequences of OpSpec or None
        ``candidates[l][j]`` is candidate ``j`` of searchable layer ``l``;
        ``None`` is a zero op (skip), which costs 0 ms. Layers may have
        different numbers of candidates: missing entries are masked.
    fixed : sequence of OpSpec
        Ops that are always there (stem, head, fixed blocks).
    overhead : bool
        Add the predictor's fitted network overhead to the fixed part.

    Examples
    --------
    >>> # lut = LatencyLUT(predictor, [[op_a, op_b, None]], fixed=[stem, head])
    >>> # lat = lut.expected_latency(torch.softmax(alpha, -1))   # differentiable in alpha
    """

    def __init__(self, predictor, candidates: Sequence[Sequence[OpSpec | None]], fixed: Sequence[OpSpec] = (),
                 overhead: bool = True) -> None:  # fmt: skip
        super().__init__()
        if not candidates:
            raise ValueError("LatencyLUT needs at least one searchable layer")
        width = max(len(c) for c in candidates)
        table = torch.zeros(len(candidates), width, dtype=torch.float64)
        mask = torch.zeros(len(candidates), width, dtype=torch.bool)
        flat = [(i, j, op) for i, layer in enumerate(candidates) for j, op in enumerate(layer)]
        real = [(i, j, op) for i, j, op in flat if op is not None and op.kind != "zero"]
        if real:
            values = predictor.predict([op for _, _, op in real])
            for (i, j, _), v in zip(real, values):
                table[i, j] = float(v)
        for i, j, _ in flat:
            mask[i, j] = True
        fixed_ms = float(predictor.predict(list(fixed)).sum()) if fixed else 0.0
        if overhead:
            fixed_ms += float(getattr(predictor, "overhead_ms_", 0.0))
        self.register_buffer("table_ms", table.float())
        self.register_buffer("mask", mask)
        self.register_buffer("fixed_ms", torch.tensor(fixed_ms, dtype=torch.float32))
        self.scale = float(getattr(predictor, "scale_", 1.0))

    @property
    def n_layers(self) -> int:
        return self.table_ms.shape[0]

    def expected_latency(self, probs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """E[latency] = scale · Σ_l Σ_j p_lj · LUT_lj + fixed (ms), differentiable in ``probs``.

        ``probs`` is an (L, J) tensor or a list of L 1-D tensors (padded here).
        """
        p = self._stack(probs)
        return self.scale * (p * self.table_ms.to(p.dtype)).sum() + self.fixed_ms.to(p.dtype)

    def latency(self, choices: Sequence[int]) -> float:
        """Latency of one discrete architecture: candidate ``choices[l]`` per layer."""
        if len(choices) != self.n_layers:
            raise ValueError(f"need one choice per layer ({self.n_layers}), got {len(choices)}")
        idx = torch.as_tensor(list(choices))
        if not bool(self.mask[torch.arange(self.n_layers), idx].all()):
            raise ValueError(f"choices {list(choices)} pick a candidate that does not exist")
        return float(self.scale * self.table_ms[torch.arange(self.n_layers), idx].sum() + self.fixed_ms)

    def _stack(self, probs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(probs, torch.Tensor):
            p = probs
        else:
            rows = list(probs)
            p = torch.stack([nn.functional.pad(r, (0, self.table_ms.shape[1] - r.shape[0])) for r in rows])
        if p.shape != self.table_ms.shape:
            raise ValueError(f"probs have shape {tuple(p.shape)}, the LUT is {tuple(self.table_ms.shape)}")
        return p * self.mask.to(p.dtype)
