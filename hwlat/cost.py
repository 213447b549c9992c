"""Latency as a differentiable cost: torch modules built from a fitted predictor.

:class:`LatencyLUT` holds the predicted latency of every candidate op of
every searchable layer in a registered buffer; :meth:`LatencyLUT.expected_latency`
turns architecture probabilities into an expected latency that is a real
autograd tensor (a known integration elsewhere rebuilt it with
``torch.tensor([...])``, which detached it and silently lost the gradient).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

from hwlat.ops import OpSpec
from hwlat.predict.protocol import LatencyModel

__all__ = ["LatencyLUT", "check_latency", "check_latency_range"]

log = logging.getLogger(__name__)


def check_latency(value: float, name: str, unit: str = "ms") -> float:
    """``value`` as a float, or ``ValueError`` (one line) when it is not a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Invalid {name}={value!r}: give a number > 0 ({unit})") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"Invalid {name}={v:g}: must be a finite number > 0 ({unit})")
    return v


def check_latency_range(value: float, span: tuple[float, float], name: str, unit: str = "ms") -> None:
    """Refuse a target/budget below the cheapest network of a space, warn when above the dearest.

    ``span`` is (cheapest, dearest) predicted over the space (e.g. :meth:`LatencyLUT.latency_range`).
    Below the cheapest no network can reach it (``ValueError``); above the dearest it constrains
    nothing (a warning on the ``hwlat.cost`` logger).
    """
    v = check_latency(value, name, unit)
    lo, hi = span
    where = f"the space spans {lo:.4g}-{hi:.4g} {unit} (predicted)"
    if v < lo:
        raise ValueError(f"{name}={v:g} {unit} is below the cheapest network of the space: {where}; give a value in it")
    if v > hi:
        log.warning("%s=%g %s is above the dearest network of the space (no constraint): %s", name, v, unit, where)


class LatencyLUT(nn.Module):
    """Predicted latency (ms) of each (layer, candidate) pair plus fixed parts.

    Parameters
    ----------
    predictor : LatencyModel
        Fitted predictor of the target device (:class:`hwlat.predict.protocol.LatencyModel`).
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

    def __init__(
        self,
        predictor: LatencyModel,
        candidates: Sequence[Sequence[OpSpec | None]],
        fixed: Sequence[OpSpec] = (),
        overhead: bool = True,
    ) -> None:
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
        # Same network latency as LatencyModel.predict_network: scale · Σ ops + overhead, fixed ops included.
        self.scale = float(predictor.scale_)
        fixed_ms = self.scale * float(predictor.predict(list(fixed)).sum()) if fixed else 0.0
        if overhead:
            fixed_ms += float(predictor.overhead_ms_)
        self.register_buffer("table_ms", table.float())
        self.register_buffer("mask", mask)
        self.register_buffer("fixed_ms", torch.tensor(fixed_ms, dtype=torch.float32))

    @property
    def n_layers(self) -> int:
        return self.table_ms.shape[0]

    def expected_latency(self, probs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """E[latency] = scale · Σ_l Σ_j p_lj · LUT_lj + fixed (ms), differentiable in ``probs``.

        ``fixed`` is scale · Σ fixed ops + the device overhead, so a one-hot ``probs`` gives exactly
        ``predictor.predict_network`` of that architecture.

        ``probs`` is an (L, J) tensor or a list of L 1-D tensors (padded here).
        """
        p = self._stack(probs)
        return self.scale * (p * self.table_ms.to(p.dtype)).sum() + self.fixed_ms.to(p.dtype)

    def latency_range(self) -> tuple[float, float]:
        """(cheapest, dearest) predicted latency over every architecture: per layer the min / max existing
        candidate (scale >= 0 keeps the order; a negative scale swaps them)."""
        inf = torch.full_like(self.table_ms, float("inf"))
        low = torch.where(self.mask, self.table_ms, inf).amin(1).sum()
        high = torch.where(self.mask, self.table_ms, -inf).amax(1).sum()
        a, b = float(self.scale * low + self.fixed_ms), float(self.scale * high + self.fixed_ms)
        return min(a, b), max(a, b)

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


__all__ += ["WidthLatency"]


class WidthLatency(nn.Module):
    """Predicted network latency (ms) as a smooth function of continuous per-layer widths.

    The network is given as a builder ``widths -> Network``. Each op's latency
    depends on at most two width slots (its input and output channels); it is
    predicted once on a grid of channel counts and interpolated (linearly in
    one slot, bilinearly in two), so :meth:`forward` is an autograd tensor
    whose gradient is the marginal latency of one more channel per slot.

    Parameters
    ----------
    predictor : LatencyModel
        Fitted predictor of the target device (:class:`hwlat.predict.protocol.LatencyModel`).
    build : callable
        ``build(widths) -> Network`` for a sequence of ints, one per slot;
        the op list must keep its length and order for every width vector.
    base : sequence of int
        Widths at which dependencies are probed (any valid widths).
    grid : sequence of int, optional
        Channel counts where the predictor is evaluated (default: about 24
        geometrically spaced values from 1 to ``max_width``).
    max_width : int, optional
        Largest grid value (default ``4 * max(base)``); beyond it the last
        cell is extrapolated linearly.
    overhead : bool
        Add the predictor's fitted network overhead (and apply its scale).
    monotone : bool
        Make each op's table non-decreasing in every width (a running maximum
        along each axis). Tree predictors are piecewise constant and a little
        noisy; a negative marginal cost would let a search add channels for free.

    Examples
    --------
    >>> # lat = WidthLatency(predictor, lambda w: get_network("mobilenet-digits", widths=w), base)
    >>> # ms = lat(torch.tensor(widths, dtype=torch.float64, requires_grad=True))   # differentiable
    """

    def __init__(
        self,
        predictor: LatencyModel,
        build,
        base: Sequence[int],
        grid: Sequence[int] | None = None,
        max_width: int | None = None,
        overhead: bool = True,
        monotone: bool = True,
    ) -> None:
        super().__init__()
        import numpy as np

        base = [int(b) for b in base]
        if not base or min(base) < 1:
            raise ValueError(f"Invalid base widths {base}: need at least one slot, every width >= 1")
        top = int(max_width or 4 * max(base))
        if grid is None:
            grid = np.unique(np.round(np.geomspace(1, top, 24)).astype(int))
        grid = np.unique(np.asarray(grid, dtype=int))
        if len(grid) < 2 or grid[0] < 1:
            raise ValueError(f"Invalid width grid {grid.tolist()}: need >= 2 distinct channel counts >= 1")
        self.build, self.base, self.n_slots = build, tuple(base), len(base)
        ref = build(base)
        deps = self._dependencies(ref)
        n_ops, g = len(ref.ops), len(grid)
        # Ops to predict: (op index, grid position) -> OpSpec, then one vectorised predict call.
        wanted: dict[tuple, OpSpec] = {}
        fixed_ops = [ref.ops[i] for i in range(n_ops) if not deps[i]]
        pairs: dict[tuple[int, ...], list[int]] = {}
        for i, d in enumerate(deps):
            if d:
                pairs.setdefault(d, []).append(i)
        for slots, ops_idx in pairs.items():
            for pos in np.ndindex(*(g,) * len(slots)):
                widths = list(base)
                for s, p in zip(slots, pos):
                    widths[s] = int(grid[p])
                net = build(widths)
                for i in ops_idx:
                    wanted[(i, pos)] = net.ops[i]
        keys = list(wanted)
        values = dict(zip(keys, predictor.predict([wanted[k] for k in keys]))) if keys else {}
        t1, s1, t2, s2 = [], [], [], []
        for slots, ops_idx in pairs.items():
            for i in ops_idx:
                table = np.empty((g,) * len(slots))
                for pos in np.ndindex(*table.shape):
                    table[pos] = values[(i, pos)]
                if monotone:
                    for axis in range(table.ndim):
                        table = np.maximum.accumulate(table, axis=axis)
                (t1 if len(slots) == 1 else t2).append(table)
                (s1 if len(slots) == 1 else s2).append(slots)
        fixed_ms = float(predictor.predict(fixed_ops).sum()) if fixed_ops else 0.0
        self.scale = float(predictor.scale_) if overhead else 1.0
        self.overhead_ms = float(predictor.overhead_ms_) if overhead else 0.0
        self.register_buffer("grid", torch.as_tensor(grid, dtype=torch.float64))
        self.register_buffer("fixed_ms", torch.tensor(fixed_ms, dtype=torch.float64))
        self.register_buffer("table1", torch.as_tensor(np.array(t1).reshape(len(t1), g), dtype=torch.float64))
        self.register_buffer("slots1", torch.as_tensor(np.array(s1, dtype=int).reshape(len(s1)), dtype=torch.long))
        self.register_buffer("table2", torch.as_tensor(np.array(t2).reshape(len(t2), g, g), dtype=torch.float64))
        self.register_buffer("slots2", torch.as_tensor(np.array(s2, dtype=int).reshape(len(s2), 2), dtype=torch.long))

    def _dependencies(self, ref) -> list[tuple[int, ...]]:
        """Which width slots each op of ``ref`` depends on (found by changing one slot at a time)."""
        deps: list[list[int]] = [[] for _ in ref.ops]
        for s in range(self.n_slots):
            widths = list(self.base)
            widths[s] = self.base[s] + 1
            other = self.build(widths)
            if len(other.ops) != len(ref.ops):
                raise ValueError("build(widths) must return the same number of ops for every width vector")
            for i, (a, b) in enumerate(zip(ref.ops, other.ops)):
                if a.key != b.key:
                    deps[i].append(s)
        for i, d in enumerate(deps):
            if len(d) > 2:
                raise ValueError(
                    f"op {i} ({ref.ops[i].key}) depends on {len(d)} width slots {d}; "
                    "WidthLatency supports ops that depend on at most 2"
                )
        return [tuple(d) for d in deps]

    def _cell(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Grid cell index and (differentiable) position within it; outside the grid: the end cells."""
        grid = self.grid.to(x.dtype)
        i = (torch.searchsorted(grid, x.detach().contiguous(), right=True) - 1).clamp(0, len(grid) - 2)
        t = (x - grid[i]) / (grid[i + 1] - grid[i])
        return i, t

    def forward(self, widths: torch.Tensor) -> torch.Tensor:
        """Predicted latency (ms) at continuous ``widths`` (one per slot), differentiable."""
        w = torch.as_tensor(widths, dtype=torch.float64) if not isinstance(widths, torch.Tensor) else widths
        if w.shape != (self.n_slots,):
            raise ValueError(f"widths has shape {tuple(w.shape)}, expected ({self.n_slots},) (one per slot)")
        total = self.fixed_ms.to(w.dtype)
        if len(self.slots1):
            i, t = self._cell(w[self.slots1])
            rows = torch.arange(len(i))
            tab = self.table1.to(w.dtype)
            total = total + (tab[rows, i] * (1 - t) + tab[rows, i + 1] * t).sum()
        if len(self.slots2):
            i, t = self._cell(w[self.slots2[:, 0]])
            j, u = self._cell(w[self.slots2[:, 1]])
            rows = torch.arange(len(i))
            tab = self.table2.to(w.dtype)
            total = (
                total
                + (
                    tab[rows, i, j] * (1 - t) * (1 - u)
                    + tab[rows, i + 1, j] * t * (1 - u)
                    + tab[rows, i, j + 1] * (1 - t) * u
                    + tab[rows, i + 1, j + 1] * t * u
                ).sum()
            )
        return self.scale * total + self.overhead_ms

    def latency_ms(self, widths: Sequence[float]) -> float:
        """Surrogate latency (ms) at ``widths``, as a float."""
        with torch.no_grad():
            return float(self(torch.as_tensor(list(widths), dtype=torch.float64)))

    def marginal_ms(self, widths: Sequence[float]):
        """Marginal latency (ms per added channel) of each slot at ``widths``: the surrogate's gradient."""
        w = torch.as_tensor(list(widths), dtype=torch.float64).requires_grad_(True)
        (grad,) = torch.autograd.grad(self(w), w)
        return grad.numpy()
