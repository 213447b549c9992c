"""The growth loop: train, compute splitting indices, choose neurons under the latency budget, split; repeat."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from hwlat.network import Network
from hwlat.search._splitnet import SplitNet, neuron_widths, resize_network
from hwlat.search._trainloop import evaluate, train
from hwlat.search.splitting.config import SplitConfig, StageResult
from hwlat.search.splitting.eigen import splitting_index
from hwlat.search.splitting.knapsack import choose_neurons

__all__ = ["run_splitting", "width_grid"]

log = logging.getLogger(__name__)


def width_grid(top: int, multiple: int = 1, points: int = 20) -> np.ndarray:
    """About ``points`` geometrically spaced multiples of ``multiple``, from ``multiple`` to ``top``."""
    steps = np.unique(np.round(np.geomspace(1, max(top // multiple, 2), points)).astype(int))
    return steps * multiple


def _fit_growth(choice, index, widths, max_widths, costs, budget, latency, config: SplitConfig):
    """Shrink the knapsack budget until the surrogate latency really grows by at most 1 + α.

    The knapsack adds up per-channel marginal costs; a pointwise conv's cost is
    bilinear in its input and output widths, so growing both layers costs more
    than the sum (up to +60 % over budget when everything doubles).
    """
    limit = (1 + config.growth) * latency.latency_ms(widths)
    shrink = 1.0
    for _ in range(30):
        grown = [w + len(choice.get(k, ())) for k, w in enumerate(widths)]
        if latency.latency_ms(grown) <= limit * (1 + 1e-9) or not choice:
            return choice
        shrink *= 0.85
        choice = choose_neurons(
            index,
            "energy",
            config.growth,
            widths=widths,
            max_widths=max_widths,
            costs_ms=costs,
            budget_ms=shrink * budget,
            threshold=config.threshold,
            granularity=config.granularity,
        )
    return choice


def _cost_floor(costs: np.ndarray) -> np.ndarray:
    # A flat stretch of the surrogate would make a neuron free; 1 % of the median keeps every split costly.
    positive = costs[costs > 0]
    floor = 0.01 * float(np.median(positive)) if len(positive) else 1e-6
    return np.maximum(costs, floor)


def run_splitting(
    seed: Network,
    loaders,
    predictor,
    config: SplitConfig | None = None,
    *,
    latency=None,
    on_stage: Callable[[StageResult, SplitNet], None] | None = None,
    quiet: bool = True,
) -> list[StageResult]:
    """Grow ``seed`` by alternating training and splitting: Splitting-0 (the trained seed) … Splitting-K.

    Parameters
    ----------
    seed : Network
        Starting network (a chain of conv/pointwise layers, depthwise convs and a head).
    loaders : DigitsLoaders
        ``train`` (weights and splitting indices), ``valid`` and ``test`` splits.
    predictor : LatencyPredictor
        Fitted predictor of the target device (costs and reported latency).
    config : SplitConfig
        Growth, stages, mode, training.
    latency : WidthLatency, optional
        Latency surrogate over the seed's width slots (built from ``predictor`` if omitted).
    on_stage : callable, optional
        ``on_stage(result, model)`` after each stage (e.g. to save the network).
    """
    from hwlat.cost import WidthLatency

    config = config or SplitConfig()
    seed_widths = neuron_widths(seed)
    q = config.granularity
    max_widths = [max(q, int(w * config.max_growth) // q * q) for w in seed_widths]
    if latency is None:
        latency = WidthLatency(
            predictor, lambda w: resize_network(seed, w), seed_widths, grid=width_grid(max(max_widths), q)
        )
    torch.manual_seed(config.seed_train.seed)
    model = SplitNet(seed)
    results: list[StageResult] = []

    def finish(stage: int, stats, index_s: float, per_layer: Sequence[int]) -> None:
        net = model.network
        res = StageResult(
            stage=stage,
            network=net,
            widths=tuple(model.widths),
            predicted_ms=float(predictor.predict_network(net)),
            valid_acc=evaluate(model, loaders.valid),
            test_acc=evaluate(model, loaders.test),
            n_split=int(sum(per_layer)),
            split_per_layer=tuple(int(n) for n in per_layer),
            index_seconds=index_s,
            train_seconds=stats.seconds,
            train_macs=stats.macs,
        )
        log.info(
            "Splitting-%d (%s): widths %s, %.4f ms predicted, test acc %.4f",
            stage,
            config.mode,
            list(res.widths),
            res.predicted_ms,
            res.test_acc,
        )
        results.append(res)
        if on_stage is not None:
            on_stage(res, model)

    stats = train(model, loaders.train, config.seed_train, forward_macs=seed.flops, desc="Splitting-0", quiet=quiet)
    finish(0, stats, 0.0, [0] * len(seed_widths))
    for stage in range(1, config.stages + 1):
        t0 = time.perf_counter()
        index = splitting_index(model, loaders.train, config.eigen, quiet=quiet)
        widths = model.widths
        costs = budget = None
        if config.mode == "energy":
            costs = _cost_floor(latency.marginal_ms(widths))
            budget = config.growth * latency.latency_ms(widths)
        choice = choose_neurons(
            index,
            config.mode,
            config.growth,
            widths=widths,
            max_widths=max_widths,
            costs_ms=costs,
            budget_ms=budget,
            threshold=config.threshold,
            granularity=q,
        )
        if config.mode == "energy":
            choice = _fit_growth(choice, index, widths, max_widths, costs, budget, latency, config)
        index_s = time.perf_counter() - t0
        per_layer = [len(choice.get(k, ())) for k in range(len(widths))]
        if not any(per_layer):
            log.warning("stage %d: no neuron has a negative splitting index within the budget; stopping", stage)
            break
        vectors = {k: index[k].eigenvectors[idx] for k, idx in choice.items()}
        model = model.split(choice, vectors, config.epsilon, name=f"{seed.name}-split{stage}-{config.mode}")
        stage_cfg = dataclasses.replace(config.stage_train, seed=config.stage_train.seed + stage)
        stats = train(
            model, loaders.train, stage_cfg, forward_macs=model.network.flops, desc=f"Splitting-{stage}", quiet=quiet
        )
        finish(stage, stats, index_s, per_layer)
    return results
