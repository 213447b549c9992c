"""DARC: differentiable architecture compression (the seed paper 003), with hwlat's latency predictions as costs.

Every ``conv`` op of a base :class:`~hwlat.network.Network` becomes a
:class:`DARCLayer`: a convex combination ``Σ_j α_j g_j(x)`` of the original
conv and the cheaper candidates of :func:`hwlat.spaces.darc_candidates`
(3x3DS, 1x1FC, 3x3DS+1x1FC), ``α`` on the simplex. Candidates start by
mimicking the original layer (student–teacher, MSE). Training runs in blocks
(Algorithm 1): weights and ``α`` follow the data loss plus
``λ · Σ_lj C_lj α_lj``, ``α`` is projected with ``α⁺/‖α⁺‖₁`` after every step;
after each block candidates with ``α = 0`` are removed, a snapshot keeps the
most expensive remaining candidate per layer, the learning rate halves and
``λ`` doubles, until the L0 cost ``Σ_lj C_lj 1{α_lj > 0}`` (plus the fixed
layers) meets the budget. Snapshots are fine-tuned with ``λ = 0``.

``C_lj`` is the predicted latency of candidate ``j`` on the target device
(``mode="latency"``) or its parameter count (``mode="size"``). Data and ``α``
share the training split, as in the paper; the valid split picks the snapshot.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwlat.cost import LatencyLUT, check_latency, check_latency_range
from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.predict.calibration import CalibratedPredictor, NetworkCalibration
from hwlat.predict.protocol import LatencyModel
from hwlat.search._common import evaluate, finetune
from hwlat.search._latency import measure_networks
from hwlat.spaces import DARC_CANDIDATES, darc_candidates

__all__ = [
    "MODES",
    "DARCConfig",
    "DARCLayer",
    "DARCModel",
    "DARCSnapshot",
    "DARCResult",
    "project_simplex",
    "student_teacher_init",
    "cost_table",
    "calibration_networks",
    "run_darc",
]

log = logging.getLogger(__name__)

MODES = ("latency", "size")


# ------------------------------------------------------------------ config
@dataclass(frozen=True)
class DARCConfig:
    """Settings of one DARC run (paper values in brackets where they differ).

    Parameters
    ----------
    mode : str
        ``latency`` (DARC(T): ``C`` = predicted ms) or ``size`` (DARC(S): ``C`` = parameters).
    base_epochs : int
        Training of the base network when no trained model is given.
    init_batches, init_steps, init_lr : int, int, float
        Student–teacher initialisation: input batches recorded per layer, SGD
        steps per candidate over them, step size [1 epoch of steps, 0.1].
    block_epochs : int
        Epochs per training block [20 on CIFAR-10].
    max_blocks : int
        Give up (keep what was found) after this many blocks.
    lr, alpha_lr : float
        Initial step sizes of the weights (Nesterov SGD, momentum 0.9) and of
        ``α`` (plain projected gradient); both halve after each block [η = 0.01].
    lam0 : float, optional
        Initial ``λ``, in units of the base network's searchable cost: the
        penalty is ``λ · Σ_lj C_lj α_lj / Σ_l C_l,original``, so one ``λ``
        suits ms and parameter counts alike. None (default): the paper's rule,
        "balance the orders of magnitude of the empirical loss and the
        regularisation term at the beginning": ``λ0 = CE / penalty`` on the
        first training batch [the paper then fixed λ = 10⁴·L or 10⁻⁵·L per dataset].
    finetune_epochs, finetune_lr : int, float
        Fine-tuning of each snapshot with ``λ = 0`` [20 epochs].
    seed : int
        Seed of initialisation and data order.
    """

    mode: str = "latency"
    base_epochs: int = 15
    init_batches: int = 8
    init_steps: int = 60
    init_lr: float = 0.1
    block_epochs: int = 3
    max_blocks: int = 8
    lr: float = 0.01
    alpha_lr: float = 0.1
    lam0: float | None = None
    finetune_epochs: int = 5
    finetune_lr: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Invalid mode {self.mode!r}; valid: {', '.join(MODES)}")
        for name in ("base_epochs", "init_batches", "init_steps", "finetune_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"Invalid {name}={getattr(self, name)}: must be >= 0")
        for name in ("block_epochs", "max_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid {name}={getattr(self, name)}: must be >= 1")
        for name in ("lr", "alpha_lr", "init_lr", "finetune_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Invalid {name}={getattr(self, name)}: must be > 0")

        if self.lam0 is not None and self.lam0 <= 0:
            raise ValueError(f"Invalid lam0={self.lam0}: must be > 0 (or None for the automatic start)")

    def replace(self, **changes: Any) -> DARCConfig:
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------- simplex
def project_simplex(alpha: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
    """DARC's projection onto the simplex: ``α⁺ / ‖α⁺‖₁`` (negatives clipped to 0, then renormalised).

    Entries where ``alive`` is False are 0. If no live entry is positive, the
    largest live entry gets all the weight (the projection is undefined there).
    """
    a = alpha.detach()
    alive = torch.ones_like(a, dtype=torch.bool) if alive is None else alive
    pos = torch.where(alive, a.clamp(min=0), torch.zeros_like(a))
    total = pos.sum()
    if total > 0:
        return pos / total
    out = torch.zeros_like(a)
    out[torch.where(alive, a, torch.full_like(a, -math.inf)).argmax()] = 1.0
    return out


# --------------------------------------------------------------- model
class DARCLayer(nn.Module):
    """``Σ_j α_j g_j(x)`` over the live candidates (``α`` on the simplex, uniform at start)."""

    def __init__(self, ops: Sequence[OpSpec]) -> None:
        super().__init__()
        self.ops = list(ops)
        self.candidates = nn.ModuleList(op.build().train() for op in self.ops)
        self.alpha = nn.Parameter(torch.full((len(self.ops),), 1.0 / len(self.ops)))
        self.register_buffer("alive", torch.ones(len(self.ops), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for j, cand in enumerate(self.candidates):
            if not bool(self.alive[j]):
                continue  # removed: α_j is 0 for good
            term = self.alpha[j] * cand(x)
            out = term if out is None else out + term
        return out

    @torch.no_grad()
    def project(self) -> None:
        self.alpha.copy_(project_simplex(self.alpha, self.alive))

    @torch.no_grad()
    def remove_zeros(self) -> int:
        """Remove candidates whose weight is 0; returns how many remain."""
        self.alive &= self.alpha > 0
        self.alpha[~self.alive] = 0
        return int(self.alive.sum())

    def kept(self, costs: Sequence[float]) -> int:
        """Index of the most expensive candidate still in use (what a snapshot keeps)."""
        alpha = self.alpha.detach()
        live = [j for j in range(len(self.ops)) if bool(self.alive[j]) and float(alpha[j]) > 0]
        return max(live, key=lambda j: costs[j])


class DARCModel(nn.Module):
    """A network whose ``conv`` ops are :class:`DARCLayer` s; other ops are fixed modules."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network
        self.searchable = [i for i, op in enumerate(network.ops) if op.kind == "conv"]
        if not self.searchable:
            raise ValueError(
                f"network {network.name!r} has no 'conv' op for DARC to replace "
                f"(kinds: {', '.join(sorted({op.kind for op in network.ops}))})"
            )
        self.layers = nn.ModuleList(
            DARCLayer(darc_candidates(op)) if i in self.searchable else op.build().train()
            for i, op in enumerate(network.ops)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def darc_layers(self) -> list[DARCLayer]:
        return [self.layers[i] for i in self.searchable]

    def alphas(self) -> list[nn.Parameter]:
        return [layer.alpha for layer in self.darc_layers]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(a) for a in self.alphas()}
        return [p for p in self.parameters() if id(p) not in arch]

    def load_base(self, base: nn.Module) -> None:
        """Copy a trained ``network.build()`` model's weights into the fixed layers and original candidates."""
        for i, (layer, trained) in enumerate(zip(self.layers, base)):
            target = layer.candidates[0] if i in self.searchable else layer
            target.load_state_dict(trained.state_dict())

    def snapshot(self, costs: Sequence[Sequence[float]], name: str) -> tuple[Network, nn.Module]:
        """The network keeping the most expensive remaining candidate per layer, with its weights."""
        ops, modules = list(self.network.ops), []
        for i, layer in enumerate(self.layers):
            if i in self.searchable:
                j = layer.kept(costs[self.searchable.index(i)])
                ops[i] = layer.ops[j]
                layer = layer.candidates[j]
            modules.append(layer)
        net = Network(name, tuple(ops))
        model = net.build().train()
        for module, source in zip(model, modules):
            module.load_state_dict(source.state_dict())
        return net, model


# ------------------------------------------------------------- training
def student_teacher_init(model: DARCModel, base: nn.Module, loader, batches: int, steps: int, lr: float) -> list[float]:
    """Train every candidate to mimic the original layer's output (MSE) on inputs from the base network.

    ``batches`` input batches are recorded at each layer of ``base`` (train
    mode: batch statistics, like the candidates); each candidate then takes
    ``steps`` SGD steps (momentum 0.9) cycling over them. Returns each
    (layer, candidate)'s MSE afterwards divided by the target's variance
    (0 = a perfect mimic, about 1 = no better than a constant).
    """
    inputs: dict[int, list[torch.Tensor]] = {i: [] for i in model.searchable}
    hooks = [
        base[i].register_forward_pre_hook(lambda m, a, i=i: inputs[i].append(a[0].detach())) for i in model.searchable
    ]
    base.train()
    with torch.no_grad():
        for x, _ in itertools.islice(itertools.cycle(loader), max(batches, 1)):
            base(x)
    for h in hooks:
        h.remove()
    errors = []
    for i, layer in zip(model.searchable, model.darc_layers):
        xs = inputs[i]
        with torch.no_grad():
            targets = [base[i](x) for x in xs]
        scale = float(torch.cat([t.flatten() for t in targets]).var()) or 1.0
        for cand in list(layer.candidates)[1:]:
            opt = torch.optim.SGD(cand.parameters(), lr=lr, momentum=0.9)
            for k in range(steps):
                opt.zero_grad(set_to_none=True)
                F.mse_loss(cand(xs[k % len(xs)]), targets[k % len(xs)]).backward()
                opt.step()
            with torch.no_grad():
                errors.append(sum(float(F.mse_loss(cand(x), t)) for x, t in zip(xs, targets)) / len(xs) / scale)
    return errors


class _ParamCount:
    """A 'predictor' of parameter counts, so size mode builds its cost table like latency mode."""

    device_key_ = ""
    overhead_ms_ = 0.0
    scale_ = 1.0

    def predict(self, ops: Sequence[OpSpec]) -> np.ndarray:
        return np.array([float(op.params) for op in ops])

    def predict_network(self, network: Network) -> float:
        return float(network.params)


def cost_table(model: DARCModel, predictor: LatencyModel, mode: str) -> LatencyLUT:
    """``C_lj`` (and the fixed layers' cost) as a LUT: predicted ms, or parameters in size mode."""
    source = _ParamCount() if mode == "size" else predictor
    fixed = [op for i, op in enumerate(model.network.ops) if i not in model.searchable]
    return LatencyLUT(source, [layer.ops for layer in model.darc_layers], fixed=fixed)


def _l0_cost(model: DARCModel, lut: LatencyLUT) -> float:
    used = torch.stack([(layer.alpha.detach() > 0) & layer.alive for layer in model.darc_layers]).to(lut.table_ms.dtype)
    return float(lut.expected_latency(used))


# -------------------------------------------------------------- results
@dataclass(frozen=True)
class DARCSnapshot:
    """One saved model: after training block ``block`` with penalty ``lam``."""

    block: int
    lam: float
    network: Network
    cost: float  # predicted ms (latency mode) or parameters (size mode)
    l0_cost: float
    valid_acc: float
    test_acc: float
    candidates: tuple[str, ...]
    measured_ms: float | None = None


@dataclass(frozen=True)
class DARCResult:
    """The base network, every snapshot, and the chosen one (best valid accuracy within the budget)."""

    config: DARCConfig
    budget: float
    base_network: Network
    base_cost: float
    base_test_acc: float
    snapshots: tuple[DARCSnapshot, ...]
    chosen: DARCSnapshot | None
    base_measured_ms: float | None = None
    calibration: str = ""
    seconds: float = 0.0
    init_mse: tuple[float, ...] = field(default=(), repr=False)

    @property
    def network(self) -> Network | None:
        return None if self.chosen is None else self.chosen.network

    def to_dict(self) -> dict[str, Any]:
        def snap(s: DARCSnapshot) -> dict[str, Any]:
            return {
                "block": s.block,
                "lam": s.lam,
                "network": s.network.to_dict(),
                "cost": s.cost,
                "l0_cost": s.l0_cost,
                "valid_acc": s.valid_acc,
                "test_acc": s.test_acc,
                "candidates": list(s.candidates),
                "measured_ms": s.measured_ms,
                "params": s.network.params,
            }

        return {
            "mode": self.config.mode,
            "budget": self.budget,
            "base_network": self.base_network.to_dict(),
            "base_cost": self.base_cost,
            "base_test_acc": self.base_test_acc,
            "base_measured_ms": self.base_measured_ms,
            "base_params": self.base_network.params,
            "snapshots": [snap(s) for s in self.snapshots],
            "chosen_block": None if self.chosen is None else self.chosen.block,
            "calibration": self.calibration,
            "seconds": self.seconds,
            "config": dataclasses.asdict(self.config),
        }


# ------------------------------------------------------------- frontend
def calibration_networks(base: Network, n: int = 8, seed: int = 0) -> list[Network]:
    """``base``, its cheapest all-3x3DS+1x1 variant, and ``n`` random DARC variants (to calibrate a predictor)."""
    rng = np.random.default_rng(seed)
    convs = [i for i, op in enumerate(base.ops) if op.kind == "conv"]
    nets = [base]
    for k in range(n + 1):
        ops = list(base.ops)
        for i in convs:
            ops[i] = darc_candidates(base.ops[i])[3 if k == 0 else int(rng.integers(len(DARC_CANDIDATES)))]
        nets.append(Network(f"{base.name}-darc-calib{k}", tuple(ops)))
    return nets


def run_darc(
    base: Network,
    budget: float,
    predictor=None,
    loaders=None,
    *,
    config: DARCConfig = DARCConfig(),
    device: str | None = None,
    calibrate_n: int = 0,
    base_model: nn.Module | None = None,
    quiet: bool = True,
) -> DARCResult:
    """Compress ``base`` under ``budget`` (ms in latency mode, parameters in size mode).

    Parameters
    ----------
    base : Network
        The network to compress; its ``conv`` ops are searchable.
    budget : float
        Target cost B of the whole network: predicted ms (latency) or parameters (size).
    predictor : LatencyPredictor or CalibratedPredictor, optional
        Needed in latency mode (fitted on the ops of ``base`` and their candidates,
        e.g. the ``digits-darc`` space); in size mode it only reports latency.
    loaders : object with ``train``, ``valid``, ``test`` DataLoaders, optional
        Default: the digits loaders at ``base``'s resolution.
    device : str, optional
        Where to measure the base network and the snapshots.
    calibrate_n : int
        Measure the base network and ``calibrate_n + 1`` variants on ``device``
        first and calibrate the predictor's network sums on them.
    base_model : nn.Module, optional
        A trained ``base.build()``; without it the base is trained ``config.base_epochs`` epochs.

    Raises
    ------
    ValueError
        If the budget is below the cheapest network DARC can reach, or a predictor is missing.
    """
    from hwlat.search.data import digits_loaders

    t0 = time.perf_counter()
    budget = check_latency(budget, "budget", "ms" if config.mode == "latency" else "parameters")
    if config.mode == "latency" and predictor is None:
        raise ValueError("DARC in latency mode needs a fitted latency predictor (--predictor)")
    if predictor is not None and not isinstance(predictor, CalibratedPredictor):
        calib = None
        if calibrate_n:
            if device is None:
                raise ValueError("calibrate_n > 0 needs a device to measure the calibration networks on")
            nets = calibration_networks(base, calibrate_n, config.seed)
            measured = measure_networks(device, nets)
            calib = NetworkCalibration.fit(predictor, nets, [measured[n.key] for n in nets])
        predictor = CalibratedPredictor(predictor, calib)
    if loaders is None:
        loaders = digits_loaders(base.input_shape[-1], seed=config.seed)
    torch.manual_seed(config.seed)
    model = DARCModel(base)
    lut = cost_table(model, predictor, config.mode)
    costs = lut.table_ms.tolist()
    cheapest = float(lut.fixed_ms) + lut.scale * sum(
        min(row[: len(layer.ops)]) for row, layer in zip(costs, model.darc_layers)
    )
    base_cost = lut.latency([0] * len(model.darc_layers))
    unit = "ms" if config.mode == "latency" else "parameters"
    if budget < cheapest:
        raise ValueError(
            f"budget {budget:g} {unit} is below the cheapest network DARC can reach "
            f"({cheapest:.4g} {unit}; the base costs {base_cost:.4g})"
        )
    dearest = float(lut.fixed_ms) + lut.scale * sum(
        max(row[: len(layer.ops)]) for row, layer in zip(costs, model.darc_layers)
    )
    check_latency_range(budget, (cheapest, max(dearest, base_cost)), "budget", unit=unit)
    # Base network: train it (or take the trained one).
    if base_model is None:
        base_model = base.build().train()
        finetune(base_model, loaders.train, config.base_epochs, lr=0.05, quiet=quiet, desc="train base")
    base_acc = evaluate(base_model, loaders.test)
    model.load_base(base_model)
    init_mse = student_teacher_init(
        model, base_model, loaders.train, config.init_batches, config.init_steps, config.init_lr
    )
    snapshots = _train_blocks(model, lut, loaders, budget, config, quiet)
    snapshots = [_finetune_snapshot(s, m, loaders, config, quiet) for s, m in snapshots]
    measured = measure_networks(device, [base] + [s.network for s in snapshots]) if device else {}
    snapshots = [dataclasses.replace(s, measured_ms=measured.get(s.network.key)) for s in snapshots]
    within = [s for s in snapshots if s.cost <= budget]
    chosen = max(within, key=lambda s: (s.valid_acc, -s.cost)) if within else None
    if chosen is None:
        log.warning("no snapshot within the budget %g %s after %d blocks", budget, unit, len(snapshots))
    describe = predictor.describe() if isinstance(predictor, CalibratedPredictor) else ""
    return DARCResult(
        config,
        budget,
        base,
        base_cost,
        base_acc,
        tuple(snapshots),
        chosen,
        measured.get(base.key),
        describe,
        time.perf_counter() - t0,
        tuple(init_mse),
    )


def _train_blocks(
    model: DARCModel, lut: LatencyLUT, loaders, budget: float, config: DARCConfig, quiet: bool
) -> list[tuple[DARCSnapshot, nn.Module]]:
    """Algorithm 1 with the paper's block schedule; one (snapshot, model) per block."""
    from tqdm.auto import tqdm

    ref = float(lut.table_ms[:, 0].sum()) * lut.scale  # the base's searchable cost: λ's unit
    fixed = float(lut.fixed_ms)
    costs = lut.table_ms.tolist()
    alphas = model.alphas()
    lam0 = config.lam0
    if lam0 is None:  # balance the data loss and the penalty on the first batch
        x, y = next(iter(loaders.train))
        with torch.no_grad():
            ce0 = float(F.cross_entropy(model.train()(x), y))
            pen0 = (float(lut.expected_latency(list(alphas))) - fixed) / ref
        lam0 = ce0 / max(pen0, 1e-12)
        log.info("λ0 = CE %.4f / penalty %.4f = %.4g", ce0, pen0, lam0)
    snapshots = []
    bar = tqdm(range(config.max_blocks), desc=f"DARC ({config.mode})", unit="block", disable=quiet, file=sys.stderr)
    for block in bar:
        lam = lam0 * 2**block
        lr, alpha_lr = config.lr / 2**block, config.alpha_lr / 2**block
        w_opt = torch.optim.SGD(model.weight_parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        model.train()
        for _ in range(config.block_epochs):
            for x, y in loaders.train:
                w_opt.zero_grad(set_to_none=True)
                for a in alphas:
                    a.grad = None
                ce = F.cross_entropy(model(x), y)
                penalty = (lut.expected_latency(list(alphas)) - fixed) / ref
                (ce + lam * penalty).backward()
                w_opt.step()
                with torch.no_grad():
                    for layer in model.darc_layers:
                        if layer.alpha.grad is not None:
                            layer.alpha -= alpha_lr * layer.alpha.grad
                        layer.project()
        remaining = [layer.remove_zeros() for layer in model.darc_layers]
        l0 = _l0_cost(model, lut)
        net, snap_model = model.snapshot(costs, f"{model.network.name}-darc{block}")
        kept = [layer.kept(c) for layer, c in zip(model.darc_layers, costs)]
        snap = DARCSnapshot(
            block, lam, net, lut.latency(kept), l0, float("nan"), float("nan"), tuple(DARC_CANDIDATES[j] for j in kept)
        )
        snapshots.append((snap, snap_model))
        bar.set_postfix(lam=f"{lam:g}", l0=f"{l0:.4g}", snapshot=f"{snap.cost:.4g}")
        log.info(
            "block %d: λ=%g, candidates left %s, L0 cost %.4g, snapshot cost %.4g (budget %g)",
            block,
            lam,
            remaining,
            l0,
            snap.cost,
            budget,
        )
        if l0 <= budget or all(r == 1 for r in remaining):
            break
    return snapshots


def _finetune_snapshot(snap: DARCSnapshot, model: nn.Module, loaders, config: DARCConfig, quiet: bool) -> DARCSnapshot:
    finetune(
        model,
        loaders.train,
        config.finetune_epochs,
        lr=config.finetune_lr,
        quiet=quiet,
        desc=f"fine-tune snapshot {snap.block}",
    )
    return dataclasses.replace(snap, valid_acc=evaluate(model, loaders.valid), test_acc=evaluate(model, loaders.test))
