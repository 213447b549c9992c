"""ProxylessNAS (Cai et al., ICLR 2019) on an MBConv backbone, with hwlat's latency predictions as the cost.

The over-parameterised network has one :class:`~hwlat.search._mixed.MixedOp`
per searchable block of a :class:`~hwlat.spaces.Backbone`: MBConv
{3,5,7}x{3,6}, plus ``zero`` where the block may be skipped. Weights and
architecture logits α are trained alternately on separate data (train split:
weights, with one path per batch sampled from softmax(α); valid split: α).
Architecture updates are gradient-based with binary gates (Eq. 4), two sampled
paths per block and the rescaling that keeps the other paths' probabilities
(``gate_mode="two"``, the paper's default) or all paths recomputed in backward
(``"full"``, Appendix D), or REINFORCE (``loss="reinforce"``). The expected
latency comes from :class:`hwlat.cost.LatencyLUT` and enters the loss as one of
:data:`LOSSES`. The found network (argmax per block) is an
:class:`hwlat.network.Network`.

Examples
--------
>>> # predictor = load_predictor("digits.skops")      # fitted on the digits-mbconv space
>>> # result = run_proxyless(predictor, config=DIGITS_CONFIG.replace(target_ms=0.06), device="onnxruntime-cpu")
>>> # result.network.save("found.json"); result.measured_ms
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwlat._modules import Zero
from hwlat.cost import LatencyLUT, check_latency, check_latency_range
from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.predict.calibration import CalibratedPredictor, NetworkCalibration
from hwlat.predict.protocol import LatencyModel
from hwlat.search._common import cosine_sgd, cycle, evaluate, finetune
from hwlat.search._latency import measure_interleaved, measure_networks
from hwlat.search._mixed import GATE_MODES, MixedOp, gate_alpha_grad, rescale_pair, sample_pair
from hwlat.spaces import (
    DIGITS_BACKBONE,
    Backbone,
    backbone_blocks,
    backbone_fixed_ops,
    backbone_network,
    block_candidates,
    block_choices,
    sample_networks,
)

__all__ = [
    "LOSSES",
    "DIGITS_BACKBONE",
    "ProxylessConfig",
    "DIGITS_CONFIG",
    "ProxylessSupernet",
    "nest_candidates",
    "calibration_networks",
    "ProxylessResult",
    "candidate_ops",
    "build_lut",
    "latency_loss",
    "search",
    "calibrate",
    "run_proxyless",
]

log = logging.getLogger(__name__)

LOSSES = ("mul#log", "add#linear", "add#abs", "add", "reinforce", "none")
_NEEDS_TARGET = ("mul#log", "add#linear", "add#abs", "reinforce")


# ------------------------------------------------------------------ config
@dataclass(frozen=True)
class ProxylessConfig:
    """Settings of one ProxylessNAS search (defaults: the official code's, unless noted).

    Parameters
    ----------
    loss : str
        Latency loss, one of :data:`LOSSES`: ``mul#log`` (official default)
        ``CE · mul_alpha · (log E[lat] / log T)^mul_beta``; ``add#linear``
        ``CE + lam · (E[lat] − T) / T``; ``add#abs`` ``CE + lam_abs · |E[lat]/T − 1|``
        (TuNAS's absolute reward, Bender et al. 2020: pulls E[lat] to T from
        both sides, so the found network lands at the target); ``add`` (paper Eq. 7)
        ``CE + λ₁‖w‖² + lam2 · E[lat]`` (λ₁ is ``weight_decay``, applied by
        the weight optimiser); ``reinforce`` (Sec. 3.3.2, reward
        ``ACC · (LAT/T)^w``); ``none`` (cross-entropy only: no latency term).
    target_ms : float, optional
        Target latency T (needed by ``mul#log``, ``add#linear``, ``reinforce``).
    epochs, warmup_epochs : int
        Epochs over the train split; architecture updates start after the warm-up.
    weight_lr, weight_decay : float
        Nesterov SGD (momentum 0.9, cosine schedule) of the weights.
    arch_lr, arch_betas : float, (float, float)
        Adam on the architecture logits (official: 1e-3, (0, 0.999)).
    arch_every, arch_steps : int
        ``arch_steps`` architecture updates after every ``arch_every`` weight steps (official: 1 per 5).
    gate_mode : str
        ``two`` (two sampled paths per block, rescaled) or ``full`` (all paths).
    lam, lam_abs, lam2 : float
        Weights of ``add#linear`` (official 0.1), ``add#abs`` and ``add`` (per ms: depends on the device).
    mul_alpha, mul_beta : float
        ``mul#log``'s α = 0.2 and β = 0.3. Latencies enter it in microseconds,
        so that log T > 0 for sub-millisecond targets (the official code used ms
        with T = 80 ms).
    reinforce_samples : int
        Networks sampled per REINFORCE update (official 10).
    reward_w : (float, float)
        REINFORCE exponent w of ``(LAT/T)^w`` when LAT <= T and when LAT > T.
        Default (0, -1): MnasNet's hard constraint, no reward for being faster
        than T, reward ∝ T/LAT above it.
    baseline_decay : float
        Moving-average decay of the REINFORCE reward baseline.
    final_epochs, final_lr : int, float
        Training of the derived network, which starts from the supernet's
        weights of its paths (the paper trains it from scratch; on digits a few
        epochs from the shared weights reach the same accuracy).
    nested_init : bool
        Start all candidates of a block as one function (:func:`nest_candidates`);
        False = independent random initialisation, as in the paper.
    seed : int
        Seed of initialisation and path sampling.
    """

    loss: str = "mul#log"
    target_ms: float | None = None
    epochs: int = 120
    warmup_epochs: int = 40
    weight_lr: float = 0.05
    weight_decay: float = 4e-5
    arch_lr: float = 1e-3
    arch_betas: tuple[float, float] = (0.0, 0.999)
    arch_every: int = 5
    arch_steps: int = 1
    gate_mode: str = "two"
    lam: float = 0.1
    lam2: float = 0.1
    lam_abs: float = 1.0
    mul_alpha: float = 0.2
    mul_beta: float = 0.3
    reinforce_samples: int = 10
    reward_w: tuple[float, float] = (0.0, -1.0)
    baseline_decay: float = 0.99
    final_epochs: int = 10
    final_lr: float = 0.02
    nested_init: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"Invalid loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.gate_mode not in GATE_MODES:
            raise ValueError(f"Invalid gate_mode {self.gate_mode!r}; valid: {', '.join(GATE_MODES)}")
        if self.target_ms is not None:
            check_latency(self.target_ms, "target_ms")
        if self.loss == "mul#log" and self.target_ms is not None and self.target_ms * 1e3 <= 1.0:
            raise ValueError(f"Invalid target_ms={self.target_ms}: mul#log needs a target above 1 µs (log T > 0)")
        for name in ("epochs", "warmup_epochs", "final_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"Invalid {name}={getattr(self, name)}: must be >= 0")
        for name in ("arch_every", "arch_steps", "reinforce_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid {name}={getattr(self, name)}: must be >= 1")
        for name in ("lam", "lam2", "lam_abs"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Invalid {name}={value!r}: the latency loss weight must be a finite number >= 0")
        if self.weight_lr <= 0 or self.arch_lr <= 0:
            raise ValueError("learning rates must be > 0")

    def replace(self, **changes: Any) -> ProxylessConfig:
        return dataclasses.replace(self, **changes)

    def check_target(self) -> None:
        """Raise ``ValueError`` when the loss needs a target latency and none is set."""
        if self.loss in _NEEDS_TARGET and self.target_ms is None:
            raise ValueError(
                f"loss {self.loss!r} needs a target latency (target_ms, --target-ms); losses without one: add, none"
            )


# Digits: the dataset is ~1000 training images (17 batches per epoch), so the
# architecture is updated after every weight step with a larger step size; the
# official schedule (1 update per 5 steps at lr 1e-3 for 120 epochs) would
# move the logits too little here. The loss is add#abs: the official losses
# push latency down with a fixed strength and do not stop at the target
# (docs/search.md has the numbers); set target_ms before searching.
DIGITS_CONFIG = ProxylessConfig(
    loss="add#abs",
    epochs=30,
    warmup_epochs=10,
    weight_lr=0.05,
    weight_decay=5e-4,
    arch_lr=0.1,
    arch_every=1,
    lam_abs=3.0,
    final_epochs=10,
)


# -------------------------------------------------------------- the space
def candidate_ops(backbone: Backbone = DIGITS_BACKBONE) -> list[OpSpec]:
    """Every op a network of ``backbone`` can contain: fixed parts and all block candidates (distinct)."""
    ops = list(backbone_fixed_ops(backbone))
    for slot in backbone_blocks(backbone):
        ops += [op for op in block_candidates(slot) if op is not None]
    return list({op.key: op for op in ops}.values())


def build_lut(predictor: LatencyModel, backbone: Backbone = DIGITS_BACKBONE) -> LatencyLUT:
    """Predicted latency of every (block, candidate) of ``backbone``; stem, first block and head fixed."""
    candidates = [block_candidates(slot) for slot in backbone_blocks(backbone)]
    return LatencyLUT(predictor, candidates, fixed=backbone_fixed_ops(backbone))


# --------------------------------------------------------------- supernet
def _candidate_module(op: OpSpec | None, slot) -> nn.Module:
    if op is None:
        return Zero(slot.cout, slot.stride)
    module = op.build().train()
    module.skip = False  # the shortcut lives in the MixedOp, outside every candidate
    return module


@torch.no_grad()
def nest_candidates(block: MixedOp) -> None:
    """Make every MBConv candidate of ``block`` compute what its first one (3x3, expand 3) computes.

    The 3x3 depthwise kernel goes to the centre of the larger kernels (zeros
    around it), expanded channels beyond the first candidate's get zero
    projection weights. With independently initialised candidates the single-
    path supernet barely trains on small data (digits: train CE still 2.3 after
    8 epochs, each downstream layer sees six unrelated encodings of its input);
    started from one function the candidates drift apart as they train.
    """
    ref = block.candidates[0]
    hidden = ref.body[0][0].weight.shape[0]
    for cand in list(block.candidates)[1:]:
        if isinstance(cand, Zero):
            continue
        cand.body[0][0].weight[:hidden] = ref.body[0][0].weight
        dw = cand.body[1][0].weight
        pad = (dw.shape[-1] - ref.body[1][0].weight.shape[-1]) // 2
        dw[:hidden] = 0
        dw[:hidden, :, pad : dw.shape[-1] - pad, pad : dw.shape[-1] - pad] = ref.body[1][0].weight
        proj = cand.body[2][0].weight
        proj.zero_()
        proj[:, :hidden] = ref.body[2][0].weight


class ProxylessSupernet(nn.Module):
    """Over-parameterised network of ``backbone``: fixed stem/first block/head, one MixedOp per block.

    ``alphas[b]`` are the architecture logits of block ``b`` (one per
    :func:`~hwlat.spaces.block_candidates` entry), initialised to 0. With
    ``nested_init`` every block's candidates start as the same function
    (:func:`nest_candidates`); without it they are initialised independently, as in the paper.
    """

    def __init__(self, backbone: Backbone = DIGITS_BACKBONE, nested_init: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.slots = list(backbone_blocks(backbone))
        stem, first, head = backbone_fixed_ops(backbone)
        self.stem, self.first, self.head = stem.build().train(), first.build().train(), head.build().train()
        self.blocks = nn.ModuleList(
            MixedOp(
                [_candidate_module(op, s) for op in block_candidates(s)], shortcut=s.stride == 1 and s.cin == s.cout
            )
            for s in self.slots
        )
        self.alphas = nn.ParameterList(nn.Parameter(torch.zeros(len(b))) for b in self.blocks)
        if nested_init:
            for block in self.blocks:
                nest_candidates(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(a) for a in self.alphas}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas)

    def probs(self) -> list[torch.Tensor]:
        """softmax(α) per block (differentiable)."""
        return [torch.softmax(a, 0) for a in self.alphas]

    def set_paths(self, active: Sequence[int]) -> None:
        """Run path ``active[b]`` in block ``b`` as a plain module (no gates)."""
        for block, j in zip(self.blocks, active, strict=True):
            block.set_gates(j, None)

    def sample_paths(self, generator: torch.Generator | None = None) -> list[int]:
        """One path per block drawn from softmax(α) (the weight step's binarisation, Eq. 2)."""
        active = [int(torch.multinomial(p.detach(), 1, generator=generator)) for p in self.probs()]
        self.set_paths(active)
        return active

    def argmax(self) -> list[int]:
        return [int(a.detach().argmax()) for a in self.alphas]

    def choices(self, indices: Sequence[int] | None = None) -> list:
        """Backbone choices ((kernel, expand) or None) of candidate ``indices`` (default: the argmax)."""
        indices = self.argmax() if indices is None else indices
        return [block_choices(s)[j] for s, j in zip(self.slots, indices, strict=True)]

    def derive(self, name: str = "proxyless-found", indices: Sequence[int] | None = None) -> Network:
        """The network of the argmax (or given) paths, as an :class:`~hwlat.network.Network`."""
        return backbone_network(self.choices(indices), name, self.backbone)

    def derived_model(self, network: Network, indices: Sequence[int] | None = None) -> nn.Module:
        """``network.build()`` with the supernet's weights of its paths copied in."""
        indices = self.argmax() if indices is None else indices
        model = network.build()
        modules = iter(model)
        next(modules).load_state_dict(self.stem.state_dict())
        next(modules).load_state_dict(self.first.state_dict())
        for block, j in zip(self.blocks, indices, strict=True):
            if isinstance(block.candidates[j], Zero):
                continue  # a skipped block is not in the network
            next(modules).load_state_dict(block.candidates[j].state_dict())
        next(modules).load_state_dict(self.head.state_dict())
        return model


# ------------------------------------------------------------------ losses
def latency_loss(ce: torch.Tensor, expected_ms: torch.Tensor, config: ProxylessConfig) -> torch.Tensor:
    """The architecture loss of ``config.loss`` (gradient-based variants) from CE and E[latency] (ms)."""
    loss, target = config.loss, config.target_ms
    if loss == "none" or loss == "reinforce":
        return ce
    if loss == "add":
        return ce + config.lam2 * expected_ms
    if loss == "add#linear":
        return ce + config.lam * (expected_ms - target) / target
    if loss == "add#abs":
        return ce + config.lam_abs * torch.abs(expected_ms / target - 1)
    # mul#log in µs: log T > 0 for any target above 1 µs; E[lat] is kept above 1 µs for the same reason.
    ratio = torch.log(torch.clamp(expected_ms * 1e3, min=1.0 + 1e-6)) / math.log(target * 1e3)
    return config.mul_alpha * ce * ratio**config.mul_beta


def _reward(acc: float, lat_ms: float, config: ProxylessConfig) -> float:
    w_below, w_above = config.reward_w
    w = w_above if lat_ms > config.target_ms else w_below
    return acc * (lat_ms / config.target_ms) ** w


# ------------------------------------------------------------------ search
@dataclass
class _State:
    net: ProxylessSupernet
    lut: LatencyLUT
    config: ProxylessConfig
    arch_opt: torch.optim.Optimizer
    gen: torch.Generator
    baseline: float | None = None


def _arch_step_gradient(st: _State, x: torch.Tensor, y: torch.Tensor) -> float:
    net, cfg = st.net, st.config
    gates, involved = [], []
    for block, alpha, p in zip(net.blocks, net.alphas, net.probs()):
        if cfg.gate_mode == "two":
            active, pair = sample_pair(p, alpha, st.gen)
        else:
            active, pair = int(torch.multinomial(p.detach(), 1, generator=st.gen)), tuple(range(len(block)))
        gates.append(block.set_gates(active, pair))
        involved.append(pair)
    try:
        ce = F.cross_entropy(net(x), y)
        loss = latency_loss(ce, st.lut.expected_latency(net.probs()), cfg)
        alphas = net.arch_parameters()
        grads = torch.autograd.grad(loss, gates + alphas, allow_unused=True)
    finally:
        for block in net.blocks:
            block.set_gates(block.active, None)
    before = [a.detach().clone() for a in alphas]
    for a, g_gate, g_direct, inv in zip(alphas, grads[: len(gates)], grads[len(gates) :], involved):
        grad = gate_alpha_grad(a, g_gate, inv) if g_gate is not None else torch.zeros_like(a)
        a.grad = grad if g_direct is None else grad + g_direct
    st.arch_opt.step()
    if cfg.gate_mode == "two":
        for a, b, inv in zip(alphas, before, involved):
            rescale_pair(a, b, inv)
    return float(ce.detach())


def _arch_step_reinforce(st: _State, x: torch.Tensor, y: torch.Tensor) -> float:
    net, cfg = st.net, st.config
    rewards, samples = [], []
    with torch.no_grad():
        probs = net.probs()
        for _ in range(cfg.reinforce_samples):
            active = [int(torch.multinomial(p, 1, generator=st.gen)) for p in probs]
            net.set_paths(active)
            acc = float((net(x).argmax(1) == y).float().mean())
            rewards.append(_reward(acc, st.lut.latency(active), cfg))
            samples.append(active)
    mean = sum(rewards) / len(rewards)
    baseline = mean if st.baseline is None else st.baseline
    st.baseline = cfg.baseline_decay * baseline + (1 - cfg.baseline_decay) * mean
    logp = [torch.log_softmax(a, 0) for a in net.alphas]
    loss = -sum((r - baseline) * sum(lp[j] for lp, j in zip(logp, s)) for r, s in zip(rewards, samples))
    st.arch_opt.zero_grad(set_to_none=True)
    (loss / len(rewards)).backward()
    st.arch_opt.step()
    return mean


def search(
    net: ProxylessSupernet, train_loader, valid_loader, lut: LatencyLUT, config: ProxylessConfig, quiet: bool = True
) -> list[dict[str, float]]:
    """Train ``net``'s weights (train split) and architecture (valid split) alternately, in place.

    Returns one history row per epoch: ``epoch``, ``train_ce``, ``expected_ms``
    (E[latency] under softmax(α)) and ``argmax_ms`` (the current argmax network).
    """
    from tqdm.auto import tqdm

    config.check_target()
    if lut.n_layers != len(net.blocks):
        raise ValueError(f"the LUT has {lut.n_layers} layers but the supernet {len(net.blocks)} blocks")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    w_opt, w_sched = cosine_sgd(
        net.weight_parameters(), config.weight_lr, config.epochs * len(train_loader), weight_decay=config.weight_decay
    )
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=config.arch_lr, betas=config.arch_betas)
    st = _State(net, lut, config, arch_opt, gen)
    arch_step = _arch_step_reinforce if config.loss == "reinforce" else _arch_step_gradient
    valid = cycle(valid_loader)
    history = []
    net.train()
    bar = tqdm(range(config.epochs), desc=f"proxyless {config.loss}", unit="epoch", disable=quiet, file=sys.stderr)
    for epoch in bar:
        total, batches = 0.0, 0
        for step, (x, y) in enumerate(train_loader):
            net.sample_paths(gen)
            w_opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            w_opt.step()
            w_sched.step()
            total, batches = total + float(loss.detach()), batches + 1
            if epoch >= config.warmup_epochs and (step + 1) % config.arch_every == 0:
                for _ in range(config.arch_steps):
                    arch_step(st, *next(valid))
        with torch.no_grad():
            row = {
                "epoch": epoch,
                "train_ce": total / max(batches, 1),
                "expected_ms": float(lut.expected_latency(net.probs())),
                "argmax_ms": lut.latency(net.argmax()),
            }
        history.append(row)
        bar.set_postfix(
            ce=f"{row['train_ce']:.3f}", exp_ms=f"{row['expected_ms']:.4f}", argmax_ms=f"{row['argmax_ms']:.4f}"
        )
        log.info(
            "epoch %d: train CE %.4f, E[lat] %.4f ms, argmax %.4f ms",
            epoch,
            row["train_ce"],
            row["expected_ms"],
            row["argmax_ms"],
        )
    return history


# --------------------------------------------------------------- frontend
@dataclass(frozen=True)
class ProxylessResult:
    """A found network with its predicted and measured latency and accuracy."""

    network: Network
    choices: tuple
    predicted_ms: float
    measured_ms: float | None
    test_acc: float
    config: ProxylessConfig
    calibration: str
    search_seconds: float
    history: tuple[dict[str, float], ...] = field(repr=False, default=())
    probs: tuple[tuple[float, ...], ...] = field(repr=False, default=())
    machine_drift: float | None = None
    corrected_ms: float | None = None

    @property
    def drift_note(self) -> str | None:
        """A warning when the calibration networks, measured again with the found one, ran more than
        15 % off their calibration-time latency: the machine's speed changed (other load) in between."""
        d = self.machine_drift
        if d is None or self.measured_ms is None or 1 / 1.15 <= d <= 1.15:
            return None
        at = self.corrected_ms if self.corrected_ms is not None else self.measured_ms / d
        return (
            f"the calibration networks, measured again alongside, took {d:.2f}x their latency at calibration "
            f"time: the machine's speed changed (other load); at calibration-time speed the found network "
            f"would measure about {at:.4f} ms"
        )

    @property
    def raw_error(self) -> float | None:
        """(measured − predicted) / predicted at today's machine speed (includes the machine's drift)."""
        if self.measured_ms is None or not self.predicted_ms:
            return None
        return self.measured_ms / self.predicted_ms - 1

    @property
    def predictor_error(self) -> float | None:
        """(corrected − predicted) / predicted, with ``corrected_ms`` measured interleaved with the calibration
        networks and put on their calibration-time speed: the predictor's error, not the machine's."""
        if self.corrected_ms is None or not self.predicted_ms:
            return None
        return self.corrected_ms / self.predicted_ms - 1

    @property
    def target_error(self) -> float | None:
        """(measured − target) / target, when both exist."""
        if self.measured_ms is None or self.config.target_ms is None:
            return None
        return self.measured_ms / self.config.target_ms - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network.to_dict(),
            "choices": [list(c) if c else None for c in self.choices],
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured_ms,
            "test_acc": self.test_acc,
            "target_ms": self.config.target_ms,
            "loss": self.config.loss,
            "calibration": self.calibration,
            "machine_drift": self.machine_drift,
            "corrected_ms": self.corrected_ms,
            "search_seconds": self.search_seconds,
            "config": dataclasses.asdict(self.config),
            "history": list(self.history),
            "probs": [list(p) for p in self.probs],
        }


def calibration_networks(backbone: Backbone = DIGITS_BACKBONE, n: int = 8, seed: int = 0) -> list[Network]:
    """The smallest and largest networks of ``backbone`` plus ``n`` random ones, to calibrate a predictor."""
    slots = list(backbone_blocks(backbone))
    small = backbone_network([None if s.skippable else (3, 3) for s in slots], "calib-min", backbone)
    large = backbone_network([(7, 6)] * len(slots), "calib-max", backbone)
    return [small, large, *sample_networks(n, seed=1000 + seed, backbone=backbone)]


def calibrate(predictor: LatencyModel, device: str, networks: Sequence[Network]) -> CalibratedPredictor:
    """Measure ``networks`` on ``device`` and calibrate ``predictor``'s network sums on them."""
    measured = measure_networks(device, networks)
    calib = NetworkCalibration.fit(predictor, networks, [measured[n.key] for n in networks])
    # The reference lets run_proxyless check the machine's speed when it measures the found network.
    return CalibratedPredictor(predictor, calib, reference=[(n, measured[n.key]) for n in networks])


def run_proxyless(
    predictor: LatencyModel,
    loaders=None,
    *,
    config: ProxylessConfig = DIGITS_CONFIG,
    backbone: Backbone = DIGITS_BACKBONE,
    device: str | None = None,
    calibrate_n: int = 0,
    name: str | None = None,
    quiet: bool = True,
) -> ProxylessResult:
    """Search, derive, train and (on ``device``) measure a network: the whole ProxylessNAS job.

    Parameters
    ----------
    predictor : LatencyPredictor or CalibratedPredictor
        Fitted on the ops of ``backbone`` (see :func:`candidate_ops`; for
        digits, the ``digits-mbconv`` space).
    loaders : DigitsLoaders-like, optional
        Anything with ``train``, ``valid`` and ``test`` DataLoaders (default:
        :func:`hwlat.search.data.digits_loaders` at the backbone's resolution).
    config : ProxylessConfig
        Search settings (default :data:`DIGITS_CONFIG`, which has no target:
        set ``target_ms`` for the target-based losses).
    device : str, optional
        Where to measure the found network (and the calibration networks).
    calibrate_n : int
        Measure this many random networks (plus the smallest and largest) on
        ``device`` first and calibrate the predictor's network sums on them
        (see :mod:`hwlat.search._latency`); 0 = use the predictor as it is.
    """
    from hwlat.search.data import digits_loaders

    if loaders is None:
        loaders = digits_loaders(backbone.resolution, seed=config.seed)
    if calibrate_n and not isinstance(predictor, CalibratedPredictor):
        if device is None:
            raise ValueError("calibrate_n > 0 needs a device to measure the calibration networks on")
        predictor = calibrate(predictor, device, calibration_networks(backbone, calibrate_n, config.seed))
    elif not isinstance(predictor, CalibratedPredictor):
        predictor = CalibratedPredictor(predictor)
    lut = build_lut(predictor, backbone)
    if config.loss in _NEEDS_TARGET:
        config.check_target()
        check_latency_range(config.target_ms, lut.latency_range(), "target_ms", unit="ms")
    torch.manual_seed(config.seed)
    net = ProxylessSupernet(backbone, nested_init=config.nested_init)
    t0 = time.perf_counter()
    history = search(net, loaders.train, loaders.valid, lut, config, quiet=quiet)
    seconds = time.perf_counter() - t0
    indices = net.argmax()
    target = f"-t{config.target_ms:g}ms" if config.target_ms is not None else ""
    network = net.derive(name or f"proxyless-{config.loss.replace('#', '-')}{target}", indices)
    model = net.derived_model(network, indices)
    finetune(model, loaders.train, config.final_epochs, lr=config.final_lr, quiet=quiet, desc="train found net")
    test_acc = evaluate(model, loaders.test)
    measured = drift = corrected = None
    if device:
        # Measured in the same sessions (shuffled rounds) as the calibration networks: per pass, their
        # ratio to calibration time is the machine's speed, divided out of the found network's latency
        # (shared machines slow down by 1.3x or more for seconds to minutes at a time).
        reference = predictor.reference
        if reference:
            got = measure_interleaved(device, network, reference)
            measured, drift, corrected = got.measured_ms, got.speed_ratio, got.corrected_ms
        else:
            measured = measure_networks(device, [network])[network.key]
    probs = tuple(tuple(round(float(v), 4) for v in p.detach()) for p in net.probs())
    return ProxylessResult(
        network,
        tuple(net.choices(indices)),
        predictor.predict_network(network),
        measured,
        test_acc,
        config,
        predictor.describe(),
        seconds,
        tuple(history),
        probs,
        machine_drift=drift,
        corrected_ms=corrected,
    )
