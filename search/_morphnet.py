"""Latency-aware width optimisers: MorphNet-style sparsity (prune, then grow) and splitting as the grow step.

Both return per-slot *width ratios*: optimised width / the un-optimised
network's width, before any uniform rescaling to a budget (that is
:func:`hwlat.search.width.fit_multiplier`'s job).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from hwlat.network import Network
from hwlat.search._splitnet import SplitConv2d, SplitNet, neuron_widths, resize_network
from hwlat.search._trainloop import TrainConfig, train

__all__ = [
    "MorphNetConfig",
    "SplitWidthConfig",
    "OptimizerResult",
    "morphnet_ratios",
    "splitting_ratios",
    "WIDTH_OPTIMIZERS",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizerResult:
    """Width ratios found by an optimiser, and what finding them cost."""

    ratios: tuple[float, ...]
    widths: tuple[int, ...]
    macs: int
    seconds: float
    detail: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class MorphNetConfig:
    """MorphNet-style width optimisation with a latency-weighted L1 penalty on BN scales γ.

    Parameters
    ----------
    strength : float
        Penalty weight: strength · Σ_l (marginal ms of slot l / mean channel's ms) · Σ_c |γ_lc|,
        applied as a proximal (soft-threshold) step after every SGD step so
        that pruned γ become exactly 0.
    train : TrainConfig
        Training while the penalty acts.
    steps : int, optional
        Train for this many SGD steps instead of ``train.epochs`` epochs. The
        penalty's total shrinkage grows with the number of steps, so a
        projected run on a fraction of the data needs the same steps (each
        one cheaper) to prune as much as the direct run.
    alive : float
        A channel is alive when |γ| exceeds this.
    min_width : int
        Each slot keeps at least this many channels.
    """

    strength: float = 0.2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20))
    steps: int | None = None
    alive: float = 1e-3
    min_width: int = 2


def _alive(model: SplitNet, threshold: float, min_width: int) -> list[int]:
    out = []
    for m in model.neurons:
        g = m.bn.weight.detach().abs() if isinstance(m, SplitConv2d) and m.bn is not None else torch.ones(m.width)
        out.append(max(min(min_width, m.width), int((g > threshold).sum())))
    return out


def morphnet_ratios(
    network: Network, loaders, latency, config: MorphNetConfig | None = None, quiet: bool = True
) -> OptimizerResult:
    """Prune ``network``'s channels with a latency-weighted γ penalty; return alive widths / original widths.

    Parameters
    ----------
    network : Network
        The un-optimised network (a chain of conv/pointwise layers, depthwise convs, head).
    loaders : DigitsLoaders
        Training data (``train`` split).
    latency : WidthLatency
        Latency surrogate over ``network``'s width slots: its gradient at the
        currently alive widths weights each slot's penalty (re-evaluated every epoch).
    config : MorphNetConfig
    """
    config = config or MorphNetConfig()
    torch.manual_seed(config.train.seed)
    model = SplitNet(network)
    base = neuron_widths(network)
    weights = np.ones(len(base))

    def reweight(_epoch: int = -1, _model=None) -> None:
        nonlocal weights
        alive = _alive(model, config.alive, config.min_width)
        marginal = np.maximum(latency.marginal_ms(alive), 0.0)
        # Relative to the mean channel's cost, so `strength` means the same for any device speed.
        weights = marginal / max(float(np.dot(marginal, alive)) / sum(alive), 1e-12)

    def prox(lr: float) -> None:
        with torch.no_grad():
            for m, w in zip(model.neurons, weights):
                if isinstance(m, SplitConv2d) and m.bn is not None:
                    g = m.bn.weight
                    g.copy_(torch.sign(g) * torch.clamp(g.abs() - lr * config.strength * float(w), min=0.0))

    train_cfg = config.train
    if config.steps is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=max(1, math.ceil(config.steps / max(1, len(loaders.train)))))
    reweight()
    t0 = time.perf_counter()
    stats = train(
        model,
        loaders.train,
        train_cfg,
        forward_macs=network.flops,
        after_step=prox,
        on_epoch=reweight,
        desc="morphnet",
        quiet=quiet,
    )
    alive = _alive(model, config.alive, config.min_width)
    ratios = tuple(a / b for a, b in zip(alive, base))
    log.info("morphnet: alive widths %s of %s", alive, base)
    return OptimizerResult(ratios, tuple(alive), stats.macs, time.perf_counter() - t0, {"alive": alive})


@dataclass(frozen=True)
class SplitWidthConfig:
    """Energy-aware splitting used as a width optimiser: shrink uniformly, then grow by splitting.

    Parameters
    ----------
    shrink : float
        The seed is the network with every width times this.
    growth : float
        Latency growth ratio α per splitting stage.
    stages : int
        Splitting stages.
    seed_train, stage_train : TrainConfig
        Training of the seed and after each split.
    """

    shrink: float = 0.5
    growth: float = 0.5
    stages: int = 2
    seed_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10))
    stage_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=0.02))


def splitting_ratios(
    network: Network, loaders, latency, config: SplitWidthConfig | None = None, quiet: bool = True
) -> OptimizerResult:
    """Grow a uniformly shrunk ``network`` by energy-aware splitting; return final widths / original widths."""
    from hwlat.search.splitting import EigenConfig, SplitConfig, run_splitting

    config = config or SplitWidthConfig()
    base = neuron_widths(network)
    seed = resize_network(network, [max(1, round(b * config.shrink)) for b in base])
    predictor = _SurrogatePredictor(latency, network)
    split_cfg = SplitConfig(
        growth=config.growth,
        stages=config.stages,
        mode="energy",
        max_growth=2.0 / config.shrink,
        eigen=EigenConfig(method="exact"),
        seed_train=config.seed_train,
        stage_train=config.stage_train,
    )
    t0 = time.perf_counter()
    stages = run_splitting(seed, loaders, predictor, split_cfg, latency=latency, quiet=quiet)
    final = stages[-1].widths
    macs = sum(s.train_macs for s in stages)
    return OptimizerResult(
        tuple(w / b for w, b in zip(final, base)),
        tuple(final),
        macs,
        time.perf_counter() - t0,
        {"stages": [list(s.widths) for s in stages]},
    )


class _SurrogatePredictor:
    """Predictor stand-in that reports the surrogate's latency of a network (splitting logs it per stage)."""

    def __init__(self, latency, reference: Network) -> None:
        self.latency, self.reference = latency, reference

    def predict_network(self, net: Network) -> float:
        return self.latency.latency_ms(neuron_widths(net))


WIDTH_OPTIMIZERS = {"morphnet": (morphnet_ratios, MorphNetConfig), "splitting": (splitting_ratios, SplitWidthConfig)}
