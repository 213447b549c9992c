"""Energy-(latency-)aware splitting steepest descent (Wang et al., "fast splitting"; Wu et al. 2019).

A network grows in stages. After training, every neuron's *splitting index*
is the minimum eigenvalue λ of its splitting matrix S = E[∂Φ/∂σ · ∇²_θ σ(θ, x)]
(the loss drops by about ε²λ/2 when the neuron is split into θ ± ε·v along the
eigenvector v). Neurons to split are chosen by the knapsack of Eq. 6: maximise
Σ −λ subject to Σ cost ≤ budget, where a neuron's cost is the increase of the
network's *predicted device latency* when its layer gains one channel
(:class:`hwlat.cost.WidthLatency`, re-evaluated at every stage) and the budget
lets the latency grow by at most a factor 1 + α per stage. The knapsack is
solved by its LP relaxation (``scipy.optimize.linprog``, HiGHS), keeping β > 0.9.

λ and v are computed either exactly (form S, eigen-decompose: small layers,
checks) or fast (Rayleigh-quotient gradient descent with RMSprop on v, where
S·v of every neuron comes from one backward pass through an auxiliary
activation: paper Sec. 4). A ``vanilla`` mode (Wu et al.: the most negative
λ, no costs) is there for comparison.

Examples
--------
>>> # from hwlat.search.data import digits_loaders
>>> # stages = run_splitting(get_network("mobilenet-digits", width_mult=0.25), digits_loaders(), predictor)
>>> # [(s.widths, s.predicted_ms, s.test_acc) for s in stages]
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from hwlat.network import Network
from hwlat.search._splitnet import (
    SplitConv2d,
    SplitLinear,
    SplitNet,
    act_second_derivative,
    neuron_widths,
    resize_network,
)
from hwlat.search._trainloop import TrainConfig, evaluate, train

__all__ = [
    "SplitConv2d",
    "SplitLinear",
    "SplitNet",
    "EigenConfig",
    "SplitConfig",
    "SplitIndex",
    "StageResult",
    "KnapsackResult",
    "MODES",
    "EIGEN_METHODS",
    "splitting_matrices",
    "splitting_products",
    "splitting_index",
    "knapsack_lp",
    "knapsack_dp",
    "choose_neurons",
    "run_splitting",
    "width_grid",
    "resize_network",
    "neuron_widths",
]

log = logging.getLogger(__name__)
MODES = ("energy", "vanilla")
EIGEN_METHODS = ("fast", "exact")


# ------------------------------------------------------------------ configs
@dataclass(frozen=True)
class EigenConfig:
    """How splitting indices are computed.

    Parameters
    ----------
    method : str
        ``fast`` (Rayleigh-quotient descent, auxiliary activation) or ``exact``
        (form S and eigen-decompose).
    sweeps : int
        Fast: passes T over the training split.
    lr : float
        Fast: RMSprop learning rate on v (momentum 0.9, α 0.9 as in the official code).
    lr_decay : float
        Fast: learning-rate factor applied after every sweep.
    init_scale : float
        Fast: v starts uniform in (−init_scale, init_scale), then is normalised.
    seed : int
        Fast: seed of v's initialisation.
    refine : int
        Fast: after the sweeps, Rayleigh–Ritz on the Krylov space
        span{v, Sv, …, S^(m−1)v} of each neuron, m = ``refine`` (m passes over
        the data, S·v again from the auxiliary activation; S is never formed).
        Gradient descent alone stalls on neurons whose two smallest eigenvalues
        are close, or whose S is small next to the other neurons' (it then
        returns the second eigenpair or an unconverged v); 0 or 1 = off, the
        paper's method as it is.
    """

    method: str = "fast"
    sweeps: int = 40
    lr: float = 2e-2
    lr_decay: float = 0.9
    init_scale: float = 0.1
    seed: int = 0
    refine: int = 8

    def __post_init__(self) -> None:
        if self.method not in EIGEN_METHODS:
            raise ValueError(f"Invalid eigen method {self.method!r}; valid: {', '.join(EIGEN_METHODS)}")
        if self.sweeps < 1:
            raise ValueError(f"Invalid sweeps={self.sweeps}: must be >= 1")
        if self.refine < 0:
            raise ValueError(f"Invalid refine={self.refine}: must be >= 0 (0 or 1 = no Krylov refinement)")


@dataclass(frozen=True)
class SplitConfig:
    """One splitting run: stages, growth, neuron choice and training.

    Parameters
    ----------
    growth : float
        α. ``energy``: the predicted latency may grow by at most a factor
        1 + α per stage. ``vanilla``: a fraction α of the neurons is split.
    stages : int
        Splitting stages K after the seed (networks Splitting-0 … Splitting-K).
    mode : str
        ``energy`` (latency-aware knapsack) or ``vanilla`` (most negative λ).
    epsilon : float
        Split step ε (θ ± ε·v̂).
    max_growth : float
        No layer grows beyond this multiple of its seed width.
    threshold : float
        Knapsack: split the neurons whose relaxed β exceeds this.
    granularity : int
        Neurons are split in blocks of this many per layer, so widths stay
        multiples of it (ONNX Runtime's CPU depthwise convs run 3-7x faster
        on channel counts that are multiples of 4); 1 = the paper's choice.
    eigen : EigenConfig
        Splitting-index computation.
    seed_train, stage_train : TrainConfig
        Training of the seed network and after each split.
    """

    growth: float = 0.5
    stages: int = 4
    mode: str = "energy"
    epsilon: float = 0.1
    max_growth: float = 8.0
    threshold: float = 0.9
    granularity: int = 4
    eigen: EigenConfig = field(default_factory=EigenConfig)
    seed_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30))
    stage_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, lr=0.02))

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Invalid splitting mode {self.mode!r}; valid: {', '.join(MODES)}")
        if not self.growth > 0:
            raise ValueError(f"Invalid growth={self.growth}: must be > 0")
        if self.stages < 0:
            raise ValueError(f"Invalid stages={self.stages}: must be >= 0")
        if not 0 < self.threshold < 1:
            raise ValueError(f"Invalid threshold={self.threshold}: must be in (0, 1)")
        if self.granularity < 1:
            raise ValueError(f"Invalid granularity={self.granularity}: must be >= 1")

    def replace(self, **changes) -> SplitConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SplitIndex:
    """Splitting index of every neuron of one layer: min eigenvalues (C,) and unit eigenvectors (C, dim)."""

    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor


@dataclass(frozen=True)
class StageResult:
    """One network of a splitting run (Splitting-k)."""

    stage: int
    network: Network
    widths: tuple[int, ...]
    predicted_ms: float
    valid_acc: float
    test_acc: float
    n_split: int
    split_per_layer: tuple[int, ...]
    index_seconds: float
    train_seconds: float
    train_macs: int


# ------------------------------------------------------- splitting matrices
def _batches(loader: DataLoader):
    n = len(loader.dataset)
    for x, y in loader:
        yield x, y, len(y) / n


def splitting_matrices(model: SplitNet, loader: DataLoader) -> list[torch.Tensor]:
    """Exact splitting matrices S of every neuron, averaged over ``loader``: one (C, dim, dim) tensor per layer.

    Uses eval-mode normalisation. Memory is C·dim² per layer, so this is for
    small layers and for checking the fast method.
    """
    neurons = model.neurons
    was = model.training
    model.eval()
    mats = [torch.zeros(m.width, m.dim, m.dim, dtype=torch.float64) for m in neurons]
    try:
        for m in neurons:
            m.record = True
        for x, y, share in _batches(loader):
            loss = F.cross_entropy(model(x), y)
            outs = [m.saved[2] for m in neurons]
            grads = torch.autograd.grad(loss, outs)
            for k, (m, g) in enumerate(zip(neurons, grads)):
                xin, z, _ = m.saved
                c = m.coef().detach().view(1, -1, *([1] * (z.dim() - 2)))
                w = (g * act_second_derivative(m.act, z) * c * c).reshape(g.shape[0], g.shape[1], -1)  # N, C, P
                X = m.patches(xin)  # N, dim, P
                Xf = X.permute(1, 0, 2).reshape(X.shape[1], -1).double()  # dim, N*P
                wf = w.permute(1, 0, 2).reshape(w.shape[1], -1).double()  # C, N*P
                for ch in range(m.width):
                    mats[k][ch] += share * (Xf * wf[ch]) @ Xf.T
    finally:
        for m in neurons:
            m.record, m.saved = False, None
        model.train(was)
    return [S.float() for S in mats]


def _set_aux(model: SplitNet, vectors: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    ys = []
    for m, v in zip(model.neurons, vectors or [None] * len(model.neurons)):
        if v is None:
            m.aux_y = m.aux_v = None
            continue
        m.aux_y = torch.zeros_like(m.weight, requires_grad=True)
        m.aux_v = v.reshape(m.weight.shape)
        ys.append(m.aux_y)
    return ys


def _aux_products(model: SplitNet, x: torch.Tensor, y: torch.Tensor, ys: list[torch.Tensor]) -> list[torch.Tensor]:
    """S·v of every neuron on one batch: the gradient of the loss w.r.t. the auxiliary y."""
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, ys)
    return [g.reshape(g.shape[0], -1) for g in grads]


def splitting_products(model: SplitNet, loader: DataLoader, vectors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """S·v for every neuron from backward passes through the auxiliary activation, averaged over ``loader``.

    ``vectors[k]`` has shape (C_k, dim_k): one v per neuron of layer k.
    """
    was = model.training
    model.eval()
    out = [torch.zeros(v.shape, dtype=torch.float64) for v in vectors]
    try:
        ys = _set_aux(model, vectors)
        for x, y, share in _batches(loader):
            for acc, sv in zip(out, _aux_products(model, x, y, ys)):
                acc += share * sv.double()
    finally:
        _set_aux(model, None)
        model.train(was)
    return [o.float() for o in out]


def _exact_index(model: SplitNet, loader: DataLoader) -> list[SplitIndex]:
    result = []
    for S in splitting_matrices(model, loader):
        vals, vecs = torch.linalg.eigh(S.double())
        result.append(SplitIndex(vals[:, 0].numpy().astype(float), vecs[:, :, 0].float()))
    return result


def _fast_index(model: SplitNet, loader: DataLoader, config: EigenConfig, quiet: bool = True) -> list[SplitIndex]:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(config.seed)
    vs = []
    for m in model.neurons:
        v = (torch.rand(m.width, m.dim, generator=gen) * 2 - 1) * config.init_scale
        vs.append(v / v.norm(dim=1, keepdim=True))
    opt = torch.optim.RMSprop(vs, lr=config.lr, momentum=0.9, alpha=0.9)
    was = model.training
    model.eval()
    try:
        for _sweep in tqdm(
            range(config.sweeps), desc="splitting index", unit="sweep", disable=quiet, file=sys.stderr, leave=False
        ):
            for x, y, _ in _batches(loader):
                ys = _set_aux(model, vs)
                svs = _aux_products(model, x, y, ys)
                for v, sv in zip(vs, svs):
                    vv = (v * v).sum(1, keepdim=True)
                    vsv = (sv * v).sum(1, keepdim=True)
                    # Gradient of the Rayleigh quotient vᵀSv / vᵀv (paper Eq. 7).
                    v.grad = 2 * (sv * vv - v * vsv) / vv.pow(2)
                opt.step()
                with torch.no_grad():
                    for v in vs:
                        v /= v.norm(dim=1, keepdim=True)
            for group in opt.param_groups:
                group["lr"] *= config.lr_decay
    finally:
        _set_aux(model, None)
        model.train(was)
    vs = [v.detach() for v in vs]
    if config.refine > 1:
        return _krylov_refine(model, loader, vs, config.refine)
    # λ = v̂ᵀ S v̂ with the final v̂ on the whole split (one more pass), not a running average.
    svs = splitting_products(model, loader, vs)
    return [SplitIndex((sv * v).sum(1).numpy().astype(float), v.clone()) for v, sv in zip(vs, svs)]


def _krylov_refine(model: SplitNet, loader: DataLoader, vs: Sequence[torch.Tensor], m: int) -> list[SplitIndex]:
    """Smallest Ritz pair of each neuron's S on span{v, Sv, …, S^(m−1)v}, from m passes of S·v products."""
    bases = [[(v / v.norm(dim=1, keepdim=True)).double()] for v in vs]
    products: list[list[torch.Tensor]] = [[] for _ in vs]
    for i in range(m):
        svs = splitting_products(model, loader, [b[-1].float() for b in bases])
        for k, sv in enumerate(svs):
            products[k].append(sv.double())
            if i == m - 1:
                continue
            w = sv.double().clone()
            for _ in range(2):  # Gram–Schmidt, twice for stability
                for q in bases[k]:
                    w -= (w * q).sum(1, keepdim=True) * q
            norm = w.norm(dim=1, keepdim=True)
            # An exhausted Krylov space (dimension reached, invariant subspace) leaves w ≈ 0: keep it 0.
            scale = bases[k][0].abs().amax(1, keepdim=True)
            bases[k].append(torch.where(norm > 1e-9 * scale, w / norm.clamp_min(1e-300), torch.zeros_like(w)))
    out = []
    for basis, prods in zip(bases, products):
        V, SV = torch.stack(basis, 1).numpy(), torch.stack(prods, 1).numpy()  # (C, m, dim)
        lam, vec = np.empty(V.shape[0]), np.empty((V.shape[0], V.shape[2]))
        for c in range(V.shape[0]):
            gram, proj = V[c] @ V[c].T, V[c] @ SV[c].T
            g, u = np.linalg.eigh(gram)
            keep = g > 1e-10 * g.max()
            W = u[:, keep] / np.sqrt(g[keep])  # orthonormalises the (possibly rank-deficient) basis
            theta, y = np.linalg.eigh(W.T @ (0.5 * (proj + proj.T)) @ W)
            v = (W @ y[:, 0]) @ V[c]
            lam[c], vec[c] = theta[0], v / np.linalg.norm(v)
        out.append(SplitIndex(lam, torch.from_numpy(vec).float()))
    return out


def splitting_index(
    model: SplitNet, loader: DataLoader, config: EigenConfig | None = None, quiet: bool = True
) -> list[SplitIndex]:
    """Minimum eigenvalue and eigenvector of every neuron's splitting matrix, one :class:`SplitIndex` per layer."""
    config = config or EigenConfig()
    if config.method == "exact":
        return _exact_index(model, loader)
    return _fast_index(model, loader, config, quiet=quiet)


# ------------------------------------------------------------------ knapsack
@dataclass(frozen=True)
class KnapsackResult:
    """A knapsack choice: the chosen items, the relaxed β, and values.

    ``lp_value`` is the LP relaxation's optimum, an upper bound on every
    integer choice's value.
    """

    chosen: np.ndarray
    beta: np.ndarray
    value: float
    cost: float
    lp_value: float


def knapsack_lp(
    gains: Sequence[float],
    costs: Sequence[float],
    budget: float,
    *,
    groups: Sequence[int] | None = None,
    caps: Sequence[float] | None = None,
    threshold: float = 0.9,
) -> KnapsackResult:
    """0/1 knapsack (max Σ β·gain, Σ β·cost ≤ budget) by its LP relaxation, keeping β > ``threshold``.

    Parameters
    ----------
    gains, costs : sequence of float
        Value and cost of each item; items with gain <= 0 are never chosen.
        Costs must be > 0.
    budget : float
        Total cost allowed.
    groups, caps : sequence of int / float, optional
        Group id per item and, per group id, the most items it may give
        (Σ β over the group ≤ cap).
    threshold : float
        Items with relaxed β above it are chosen (the paper keeps β > 0.9);
        when rounding a fractional β up breaks a constraint, fractional
        items are dropped (smallest β first) so the choice stays feasible.

    Examples
    --------
    >>> knapsack_lp([3, 2, 2], [2, 1, 1], 2).chosen.tolist()
    [False, True, True]
    """
    from scipy.optimize import linprog

    g = np.asarray(gains, dtype=float)
    c = np.asarray(costs, dtype=float)
    if g.shape != c.shape or g.ndim != 1:
        raise ValueError(f"gains and costs must be 1-D of equal length, got {g.shape} and {c.shape}")
    if np.any(c <= 0) or not np.all(np.isfinite(c)):
        raise ValueError("knapsack costs must be finite and > 0")
    if budget < 0:
        raise ValueError(f"Invalid budget={budget}: must be >= 0")
    if len(g) == 0:
        return KnapsackResult(np.zeros(0, bool), np.zeros(0), 0.0, 0.0, 0.0)
    A, b = [c], [budget]
    if groups is not None:
        groups = np.asarray(groups)
        for gid, cap in enumerate(caps or []):
            A.append((groups == gid).astype(float))
            b.append(cap)
    bounds = [(0.0, 1.0 if gi > 0 else 0.0) for gi in g]
    res = linprog(-g, A_ub=np.array(A), b_ub=np.array(b, dtype=float), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"knapsack LP failed: {res.message}")
    beta = np.clip(res.x, 0.0, 1.0)
    chosen = beta > threshold
    # Rounding a fractional β (e.g. 0.93) up to 1 can break the budget or a cap; the integral
    # items alone always fit, so drop chosen fractional items, smallest β first, until it fits.
    A_arr, b_arr = np.array(A), np.array(b, dtype=float)
    for i in sorted(np.flatnonzero(chosen & (beta < 1 - 1e-9)), key=lambda i: beta[i]):
        if np.all(A_arr @ chosen <= b_arr * (1 + 1e-12) + 1e-12):
            break
        chosen[i] = False
    return KnapsackResult(chosen, beta, float(g[chosen].sum()), float(c[chosen].sum()), float(-res.fun))


def knapsack_dp(gains: Sequence[float], costs: Sequence[int], budget: int) -> tuple[np.ndarray, float]:
    """Exact 0/1 knapsack by dynamic programming over integer costs: (chosen mask, optimal value).

    O(n · budget) time and memory; for checking :func:`knapsack_lp` on small instances.
    """
    g = np.asarray(gains, dtype=float)
    c = np.asarray(costs)
    if not np.issubdtype(c.dtype, np.integer) or np.any(c < 0) or int(budget) != budget or budget < 0:
        raise ValueError("knapsack_dp needs non-negative integer costs and an integer budget >= 0")
    n, cap = len(g), int(budget)
    best = np.zeros(cap + 1)
    take = np.zeros((n, cap + 1), dtype=bool)
    for i in range(n):
        if g[i] <= 0 or c[i] > cap:
            continue
        cand = np.full(cap + 1, -np.inf)
        cand[c[i] :] = best[: cap + 1 - c[i]] + g[i]
        take[i] = cand > best
        best = np.maximum(best, cand)
    chosen = np.zeros(n, dtype=bool)
    rest = cap
    for i in range(n - 1, -1, -1):
        if take[i, rest]:
            chosen[i] = True
            rest -= int(c[i])
    return chosen, float(best[cap])


# ------------------------------------------------------------- the choice
def choose_neurons(
    index: Sequence[SplitIndex],
    mode: str,
    growth: float,
    *,
    widths: Sequence[int],
    max_widths: Sequence[int],
    costs_ms: Sequence[float] | None = None,
    budget_ms: float | None = None,
    threshold: float = 0.9,
    granularity: int = 1,
) -> dict[int, np.ndarray]:
    """Neurons to split per layer: ``{layer: neuron indices}``.

    Items are blocks of ``granularity`` neurons of one layer, taken in order of
    increasing λ (granularity 1: single neurons, as in the paper; 4 keeps
    widths multiples of 4, which some kernels need to run fast); a block's
    gain is −Σλ and only blocks with a positive gain are candidates.
    ``energy``: the LP-relaxed knapsack, cost ``granularity · costs_ms[layer]``
    per block, total ``budget_ms``, at most ``max_widths - widths`` neurons per
    layer. ``vanilla``: the round(α·N / granularity) blocks with the largest
    gain (same per-layer caps, no costs).
    """
    if mode not in MODES:
        raise ValueError(f"Invalid splitting mode {mode!r}; valid: {', '.join(MODES)}")
    q = int(granularity)
    if q < 1:
        raise ValueError(f"Invalid granularity={granularity}: must be an int >= 1")
    blocks, layer, gain = [], [], []
    for k, s in enumerate(index):
        order = np.argsort(s.eigenvalues, kind="stable")
        for start in range(0, len(order) - q + 1, q):
            members = order[start : start + q]
            g = -float(np.sum(s.eigenvalues[members]))
            if g <= 0:
                break
            blocks.append(members)
            layer.append(k)
            gain.append(g)
    layer_arr, gain_arr = np.asarray(layer, dtype=int), np.asarray(gain, dtype=float)
    room = [max(0, int(m) - int(w)) // q for w, m in zip(widths, max_widths)]
    n_total = sum(len(s.eigenvalues) for s in index)
    if mode == "energy":
        if costs_ms is None or budget_ms is None:
            raise ValueError("energy-aware splitting needs costs_ms (per layer) and budget_ms")
        cost = q * np.asarray(costs_ms, dtype=float)[layer_arr]
        chosen = knapsack_lp(gain_arr, cost, budget_ms, groups=layer_arr, caps=room, threshold=threshold).chosen
    else:
        k_left = int(round(growth * n_total / q))
        chosen = np.zeros(len(blocks), dtype=bool)
        used = [0] * len(index)
        for i in np.argsort(-gain_arr, kind="stable"):
            if k_left == 0:
                break
            if used[layer_arr[i]] < room[layer_arr[i]]:
                chosen[i] = True
                used[layer_arr[i]] += 1
                k_left -= 1
    out: dict[int, np.ndarray] = {}
    for i in np.flatnonzero(chosen):
        out.setdefault(int(layer_arr[i]), []).extend(int(j) for j in blocks[i])
    return {k: np.sort(np.asarray(v, dtype=int)) for k, v in sorted(out.items())}


# ------------------------------------------------------------------- stages
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
