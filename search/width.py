"""Latency-aware width optimisation and width transfer (Chin, Marculescu & Morcos, "Width transfer").

A width optimiser (:data:`WIDTH_OPTIMIZERS`: MorphNet-style latency-weighted
sparsity, or energy-aware splitting) returns per-layer *width ratios*
(optimised / un-optimised widths). Width transfer runs it on a cheaper
*projected* configuration — narrower (width multiplier), shallower (depth
multiplier per stage), lower input resolution, a class-balanced fraction of
the data — then *extrapolates*: stack the ratios back to the target depth
(stack-last-block or stack-average-block) and find one global width
multiplier by bisection so that the target's predicted latency (or FLOPs)
equals the budget.

The networks are the zoo's ``mobilenet-digits`` family (:class:`DigitsArch`),
whose width slots are the stem and each block's pointwise output.

Examples
--------
>>> stack_ratios([[1.0], [0.5, 0.7, 0.9]], [1, 5], rule="average")
[[1.0], [0.5, 0.7, 0.9, 0.8, 0.8]]
>>> Projection.parse("width=0.5,depth=0.5,res=16,data=0.2").depth
0.5
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hwlat.cost import check_latency
from hwlat.network import Network
from hwlat.search._morphnet import (
    WIDTH_OPTIMIZERS,
    MorphNetConfig,
    OptimizerResult,
    SplitWidthConfig,
    morphnet_ratios,
    splitting_ratios,
)
from hwlat.search._splitnet import SplitNet, neuron_widths
from hwlat.search._trainloop import TrainConfig, evaluate, train

__all__ = [
    "Projection",
    "DigitsArch",
    "STACK_RULES",
    "METRICS",
    "WIDTH_OPTIMIZERS",
    "MorphNetConfig",
    "SplitWidthConfig",
    "OptimizerResult",
    "WidthResult",
    "morphnet_ratios",
    "splitting_ratios",
    "stack_ratios",
    "fit_multiplier",
    "fit_ratios",
    "transfer_ratios",
    "optimize_widths",
    "direct_widths",
    "transfer_widths",
    "uniform_widths",
    "train_and_test",
    "cost_saved",
]

log = logging.getLogger(__name__)
STACK_RULES = ("last", "average")
METRICS = ("latency", "flops")


# -------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Projection:
    """How width transfer shrinks a configuration (paper Sec. 3.2).

    Parameters
    ----------
    width : float
        Width multiplier applied to every layer.
    depth : float
        Depth multiplier: each stage keeps max(1, round(blocks · depth)) blocks.
    resolution : int or None
        Input resolution (None: the target's).
    data : float
        Class-balanced fraction of the training split.
    """

    width: float = 1.0
    depth: float = 1.0
    resolution: int | None = None
    data: float = 1.0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "data"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"Invalid projection {name}={value}: must be in (0, 1]")
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"Invalid projection res={self.resolution}: must be >= 8")

    @classmethod
    def parse(cls, text: str) -> Projection:
        """Parse ``width=0.5,depth=0.5,res=16,data=0.2`` (any subset, any order)."""
        names = {"width": "width", "depth": "depth", "res": "resolution", "resolution": "resolution", "data": "data"}
        kwargs = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in names:
                raise ValueError(
                    f"Invalid projection item {item!r} in {text!r}; give key=value with keys "
                    "width, depth, res, data, e.g. width=0.5,depth=0.5,res=16,data=0.2"
                )
            field_name = names[key.strip()]
            try:
                kwargs[field_name] = int(value) if field_name == "resolution" else float(value)
            except ValueError:
                raise ValueError(f"Invalid projection value {item!r}: {key} must be a number") from None
        return cls(**kwargs)

    @property
    def label(self) -> str:
        res = "" if self.resolution is None else f",res={self.resolution}"
        return f"width={self.width:g},depth={self.depth:g}{res},data={self.data:g}"


@dataclass(frozen=True)
class DigitsArch:
    """A ``mobilenet-digits`` configuration: uniform width multiplier, blocks per stage, resolution.

    Its width slots are the stem and one per block; :meth:`network` applies
    per-slot ratios (or explicit widths) on top of the base widths. Fitted
    widths are multiples of ``multiple`` (ONNX Runtime's CPU depthwise convs
    run 3-7x faster on channel counts that are multiples of 4).
    """

    width_mult: float = 1.0
    depth: tuple[int, ...] = (1, 2, 4, 2)
    resolution: int = 32
    classes: int = 10
    multiple: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", tuple(int(d) for d in self.depth))

    @property
    def n_slots(self) -> int:
        return 1 + sum(self.depth)

    def base_widths(self) -> list[int]:
        """Un-optimised widths: base channels times ``width_mult`` (rounded, at least 1)."""
        return neuron_widths(self._net(None, None))

    def _net(self, widths, name) -> Network:
        from hwlat.zoo import get_network

        if widths is None:
            return get_network(
                "mobilenet-digits",
                width_mult=self.width_mult,
                depth=self.depth,
                resolution=self.resolution,
                classes=self.classes,
                network_name=name,
            )
        return get_network(
            "mobilenet-digits",
            widths=widths,
            depth=self.depth,
            resolution=self.resolution,
            classes=self.classes,
            network_name=name or "mobilenet-digits-custom",
        )

    def network(self, widths: Sequence[int] | None = None, name: str | None = None) -> Network:
        """The network at ``widths`` (default: the base widths)."""
        return self._net(None if widths is None else [int(w) for w in widths], name)

    def widths_for(self, ratios: Sequence[float], multiplier: float = 1.0) -> list[int]:
        """Widths ``multiplier · ratio · base`` rounded to multiples of :attr:`multiple` (at least one multiple)."""
        if len(ratios) != self.n_slots:
            raise ValueError(f"need {self.n_slots} width ratios (stem + one per block), got {len(ratios)}")
        q = self.multiple
        return [max(q, round(multiplier * r * b / q) * q) for r, b in zip(ratios, self.base_widths())]

    def stages(self) -> list[list[int]]:
        """Slot indices of each stage's blocks (slot 0, the stem, belongs to none)."""
        out, k = [], 1
        for n in self.depth:
            out.append(list(range(k, k + n)))
            k += n
        return out

    def project(self, p: Projection) -> DigitsArch:
        """The projected configuration (narrower, shallower, lower resolution)."""
        depth = tuple(max(1, round(n * p.depth)) for n in self.depth)
        res = p.resolution or self.resolution
        return DigitsArch(self.width_mult * p.width, depth, res, self.classes, self.multiple)

    def latency_model(self, predictor, max_width: int | None = None):
        """:class:`hwlat.cost.WidthLatency` over this configuration's slots."""
        from hwlat.cost import WidthLatency
        from hwlat.search.splitting import width_grid

        base = self.base_widths()
        grid = width_grid(max_width or 6 * max(base), self.multiple)
        return WidthLatency(predictor, lambda w: self.network(w), base, grid=grid)


# ----------------------------------------------------------------- extrapolation
def stack_ratios(
    stages: Sequence[Sequence[float]], target_depth: Sequence[int], rule: str = "average"
) -> list[list[float]]:
    """Restore the target depth stage by stage (paper Sec. 3.2).

    ``last`` (stack-last-block): repeat the last block's ratio.
    ``average`` (stack-average-block): repeat the mean ratio of the stage's
    blocks except the first (the first alone when the stage has one block).
    A stage deeper than the target keeps its first blocks.

    Examples
    --------
    >>> stack_ratios([[0.5, 1.0, 2.0]], [5], rule="last")
    [[0.5, 1.0, 2.0, 2.0, 2.0]]
    """
    if rule not in STACK_RULES:
        raise ValueError(f"Invalid stacking rule {rule!r}; valid: {', '.join(STACK_RULES)}")
    if len(stages) != len(target_depth):
        raise ValueError(f"{len(stages)} stages of ratios but a target depth of {len(target_depth)} stages")
    out = []
    for blocks, n in zip(stages, target_depth):
        blocks = [float(b) for b in blocks]
        if not blocks:
            raise ValueError("every stage needs at least one block ratio")
        if n <= len(blocks):
            out.append(blocks[:n])
            continue
        fill = blocks[-1] if rule == "last" else float(np.mean(blocks[1:] if len(blocks) > 1 else blocks))
        out.append(blocks + [fill] * (n - len(blocks)))
    return out


def fit_multiplier(
    cost: Callable[[float], float], budget: float, *, lo: float = 1e-3, hi: float = 4.0, iters: int = 50
) -> tuple[float, float]:
    """Global multiplier m with ``cost(m)`` closest to ``budget``, by bisection: (m, cost(m)).

    ``cost`` must grow with m (a predicted latency or FLOPs of the widened
    network). Rounded channel counts make it a step function, so the
    evaluated point nearest the budget is returned.

    Examples
    --------
    >>> m, c = fit_multiplier(lambda m: 10 * m * m, 40.0)
    >>> round(m, 4), round(c, 3)
    (2.0, 40.0)
    """
    budget = check_latency(budget, "budget", "ms or MACs")
    seen: dict[float, float] = {}

    def f(m: float) -> float:
        if m not in seen:
            seen[m] = float(cost(m))
        return seen[m]

    while f(hi) < budget and hi < 1e4:  # widen the bracket; cheap networks may need a large multiplier
        lo, hi = hi, hi * 2
    if f(hi) < budget:
        log.warning(
            "the budget %.4g is above the dearest network (multiplier %g costs %.4g): no constraint", budget, hi, f(hi)
        )
    if f(lo) > budget:
        log.warning("even multiplier %g exceeds the budget (%.4g > %.4g)", lo, f(lo), budget)
    for _ in range(iters):
        mid = math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2
        if f(mid) < budget:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-6 * hi:
            break
    best = min(seen, key=lambda m: (abs(seen[m] - budget), m))
    return best, seen[best]


# ------------------------------------------------------------------ pipelines
@dataclass(frozen=True)
class WidthResult:
    """A width configuration fitted to a budget, with the optimisation that found it."""

    method: str
    ratios: tuple[float, ...]
    multiplier: float
    widths: tuple[int, ...]
    network: Network
    predicted_ms: float
    flops: int
    budget: float
    metric: str
    optimizer_macs: int
    optimizer_seconds: float
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def budget_error(self) -> float:
        """Relative error of the fitted metric (predicted latency or FLOPs) against the budget."""
        value = self.predicted_ms if self.metric == "latency" else self.flops
        return value / self.budget - 1


def fit_ratios(
    arch: DigitsArch,
    ratios: Sequence[float],
    predictor,
    budget: float,
    *,
    metric: str = "latency",
    method: str = "custom",
    opt: OptimizerResult | None = None,
) -> WidthResult:
    """Scale per-slot width ``ratios`` by one multiplier so ``arch``'s predicted latency (or FLOPs) meets ``budget``.

    Parameters
    ----------
    arch : DigitsArch
        Target configuration.
    ratios : sequence of float
        Width ratios per slot (optimised / base widths).
    predictor : LatencyPredictor
        Predictor of the target device (used for the result's ``predicted_ms`` in both metrics).
    budget : float
        Milliseconds (``metric="latency"``) or MACs (``metric="flops"``).
    metric : str
        One of :data:`METRICS`.
    method : str
        Label of the result.
    opt : OptimizerResult, optional
        The optimisation that produced ``ratios`` (its cost is copied into the result).
    """
    if metric not in METRICS:
        raise ValueError(f"Invalid metric {metric!r}; valid: {', '.join(METRICS)}")
    budget = check_latency(budget, "budget", "ms" if metric == "latency" else "MACs")

    def of(widths: Sequence[int]) -> float:
        net = arch.network(widths)
        return float(predictor.predict_network(net)) if metric == "latency" else float(net.flops)

    m, _ = fit_multiplier(lambda m: of(arch.widths_for(ratios, m)), budget)
    widths = _round_to_budget(arch, ratios, m, of, budget)
    net = arch.network(widths, name=f"mobilenet-digits-{method}")
    return WidthResult(
        method=method,
        ratios=tuple(float(r) for r in ratios),
        multiplier=m,
        widths=tuple(widths),
        network=net,
        predicted_ms=float(predictor.predict_network(net)),
        flops=net.flops,
        budget=budget,
        metric=metric,
        optimizer_macs=opt.macs if opt else 0,
        optimizer_seconds=opt.seconds if opt else 0.0,
        detail=dict(opt.detail) if opt else {},
    )


def _round_to_budget(arch: DigitsArch, ratios: Sequence[float], m: float, of: Callable, budget: float) -> list[int]:
    """Round each slot's m·r·base up or down to a multiple, choosing the roundings that land closest to the budget.

    With widths on a grid of multiples of 4, one multiplier moves the cost in
    steps of a few percent; flipping single slots' rounding (greedily) closes
    most of the remaining gap without leaving the pattern m·r·base.
    """
    q = arch.multiple
    exact = [m * r * b for r, b in zip(ratios, arch.base_widths())]
    options = [sorted({max(q, int(x // q) * q), max(q, int(-(-x // q)) * q)}) for x in exact]
    widths = arch.widths_for(ratios, m)
    best = abs(of(widths) - budget)
    for _ in range(len(widths)):
        trials = [
            (abs(of(w) - budget), w)
            for k in range(len(widths))
            for o in options[k]
            if o != widths[k]
            for w in [widths[:k] + [o] + widths[k + 1 :]]
        ]
        if not trials:
            break
        err, cand = min(trials, key=lambda t: t[0])
        if err >= best:
            break
        best, widths = err, cand
    return widths


def optimize_widths(
    name: str, arch: DigitsArch, loaders, predictor, config=None, quiet: bool = True
) -> OptimizerResult:
    """Run the width optimiser ``name`` (see :data:`WIDTH_OPTIMIZERS`) on ``arch``."""
    try:
        func, _ = WIDTH_OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown width optimiser {name!r}; valid: {', '.join(WIDTH_OPTIMIZERS)}") from None
    return func(arch.network(), loaders, arch.latency_model(predictor), config, quiet=quiet)


def transfer_ratios(
    arch: DigitsArch,
    projection: Projection,
    predictor,
    *,
    loaders_for: Callable[[int, float], object],
    optimizer: str = "morphnet",
    config=None,
    rule: str = "average",
    quiet: bool = True,
) -> tuple[list[float], OptimizerResult]:
    """Width transfer's optimisation and depth extrapolation: (ratios for ``arch``'s slots, the optimisation).

    The optimiser runs on ``arch.project(projection)`` with data from
    ``loaders_for(resolution, data_fraction)``; its block ratios are stacked
    to ``arch``'s depth with ``rule`` (see :func:`stack_ratios`).
    """
    small = arch.project(projection)
    loaders = loaders_for(small.resolution, projection.data)
    opt = optimize_widths(optimizer, small, loaders, predictor, config, quiet=quiet)
    stem, blocks = opt.ratios[0], [[opt.ratios[i] for i in stage] for stage in small.stages()]
    ratios = [stem] + [r for stage in stack_ratios(blocks, arch.depth, rule) for r in stage]
    detail = {
        **opt.detail,
        "projected": dataclasses.asdict(small),
        "projected_ratios": list(opt.ratios),
        "projection": projection.label,
        "rule": rule,
    }
    return ratios, dataclasses.replace(opt, detail=detail)


def uniform_widths(arch: DigitsArch, predictor, budget: float, metric: str = "latency") -> WidthResult:
    """The baseline: every width scaled by one multiplier to meet the budget."""
    return fit_ratios(arch, [1.0] * arch.n_slots, predictor, budget, metric=metric, method="uniform")


def direct_widths(
    arch: DigitsArch,
    loaders,
    predictor,
    budget: float,
    *,
    optimizer: str = "morphnet",
    config=None,
    metric: str = "latency",
    quiet: bool = True,
) -> WidthResult:
    """Optimise the widths on the target configuration itself, then fit them to the budget."""
    opt = optimize_widths(optimizer, arch, loaders, predictor, config, quiet=quiet)
    return fit_ratios(arch, opt.ratios, predictor, budget, metric=metric, method="direct", opt=opt)


def transfer_widths(
    arch: DigitsArch,
    projection: Projection,
    predictor,
    budget: float,
    *,
    loaders_for: Callable[[int, float], object],
    optimizer: str = "morphnet",
    config=None,
    rule: str = "average",
    metric: str = "latency",
    quiet: bool = True,
) -> WidthResult:
    """Width transfer: optimise on the projected configuration, stack to the target depth, fit to the budget.

    Parameters
    ----------
    arch : DigitsArch
        Target configuration.
    projection : Projection
        How to shrink it for the optimiser.
    loaders_for : callable
        ``loaders_for(resolution, data_fraction) -> DigitsLoaders``.
    rule : str
        Stacking rule, one of :data:`STACK_RULES`.
    """
    ratios, opt = transfer_ratios(
        arch, projection, predictor, loaders_for=loaders_for, optimizer=optimizer, config=config, rule=rule, quiet=quiet
    )
    return fit_ratios(arch, ratios, predictor, budget, metric=metric, method="transfer", opt=opt)


def train_and_test(
    network: Network, loaders, config: TrainConfig | None = None, seeds: Sequence[int] = (0,), quiet: bool = True
) -> tuple[float, list[float]]:
    """Train ``network`` from scratch once per seed; (mean test accuracy, per-seed accuracies)."""
    config = config or TrainConfig(epochs=30)
    accs = []
    for s in seeds:
        torch.manual_seed(s)
        model = SplitNet(network)
        train(
            model,
            loaders.train,
            dataclasses.replace(config, seed=s),
            forward_macs=network.flops,
            desc=f"train {network.name}",
            quiet=quiet,
        )
        accs.append(evaluate(model, loaders.test))
    return float(np.mean(accs)), accs


def cost_saved(direct: WidthResult, transfer: WidthResult) -> dict[str, float]:
    """Optimisation cost saved by transfer: direct / transferred, in MACs and in wall time."""
    return {
        "macs_ratio": direct.optimizer_macs / max(transfer.optimizer_macs, 1),
        "seconds_ratio": direct.optimizer_seconds / max(transfer.optimizer_seconds, 1e-9),
    }
