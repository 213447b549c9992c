"""Which neurons to split: the 0/1 knapsack of Eq. 6 (LP relaxation, exact DP for checks) and the choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwlat.search.splitting.config import MODES
from hwlat.search.splitting.eigen import SplitIndex

__all__ = ["KnapsackResult", "knapsack_lp", "knapsack_dp", "choose_neurons"]


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
