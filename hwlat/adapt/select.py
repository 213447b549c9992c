"""Choosing what to measure on a new device: N items spread over the sources' latency range and kinds.

A random sample of 10 items often has no large op, or no op of a rare kind, and
the fitted weights then extrapolate. :func:`choose_items` (ops or networks, from
source predictors) and :func:`choose_rows` (architecture tables) pick items at
evenly spaced quantiles of the sources' mean log latency, with each kind given
its share (at least one item each when N allows); on a table, rows are also spread
over how the sources disagree. HELP's fixed reference
architectures are :func:`hwlat.adapt.archtable.help_reference_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwlat.adapt.methods import AdaptError

__all__ = ["choose_items", "choose_rows"]


def _bin_farthest(primary: np.ndarray, secondary: np.ndarray, n: int) -> list[int]:
    """``n`` indices: ``primary`` cut into ``n`` equal-count bins; each bin gives the entry farthest in
    ``secondary`` (standardised columns) from those already chosen, the first bin its middle entry."""
    order = np.argsort(primary, kind="stable")
    if n >= len(order):
        return list(range(len(order)))
    sd = secondary.std(0) if secondary.size else np.zeros(0)
    Q = secondary / np.where(sd > 0, sd, 1.0) if secondary.size else secondary
    chosen: list[int] = []
    for b in np.array_split(order, n):
        if not chosen or Q.shape[1] == 0:
            j = int(b[len(b) // 2])
        else:
            d = np.linalg.norm(Q[b][:, None, :] - Q[chosen][None, :, :], axis=2).min(1)
            j = int(b[int(np.argmax(d))])
        chosen.append(j)
    return chosen


def _allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """``n`` slots over kinds in proportion to their sizes, at least one each while slots last."""
    kinds = sorted(counts, key=lambda k: (-counts[k], k))
    alloc = {k: 0 for k in kinds}
    for k in kinds[:n]:
        alloc[k] = 1
    total = sum(counts.values())
    for _ in range(n - sum(alloc.values())):
        # the kind furthest below its proportional share gets the next slot
        k = max(
            (k for k in kinds if alloc[k] < counts[k]),
            key=lambda k: (counts[k] * n / total - alloc[k], -kinds.index(k)),
        )
        alloc[k] += 1
    return alloc


def choose_items(candidates: Sequence[Any], sources: Sequence[Any], n: int) -> list[Any]:
    """The ``n`` most informative of ``candidates`` (``OpSpec`` or ``Network``) to measure on a new device.

    Each candidate is scored by its mean log latency over the ``sources`` that know all its
    op kinds (candidates no source knows are left out); kinds (``network`` counts as one)
    get slots in proportion to their number of candidates, at least one each; within a kind
    the score is cut into equal-count bins, and each bin gives the item whose split of its
    latency over the roofline counters (dense, depthwise 3/5/7, bytes, ...) is farthest from
    the items already chosen: the range is covered, and so are the counters.

    Raises
    ------
    AdaptError
        ``n`` < 1, no source, or fewer usable candidates than ``n``.
    """
    from hwlat.network import Network

    if n < 1:
        raise AdaptError(f"--few-shot {n}: give a number of items to measure >= 1")
    if not sources:
        raise AdaptError("--few-shot needs the source predictors to choose from: give --from SRC.skops[,SRC2...]")
    candidates = list(candidates)
    scores = np.full((len(candidates), len(sources)), np.nan)
    for j, p in enumerate(sources):
        known = set(p.kinds_)
        idx = [
            i
            for i, c in enumerate(candidates)
            if {op.kind for op in (c.ops if isinstance(c, Network) else [c])} <= known
        ]
        nets = [i for i in idx if isinstance(candidates[i], Network)]
        ops = [i for i in idx if not isinstance(candidates[i], Network)]
        if ops:
            scores[ops, j] = np.log(p.predict([candidates[i] for i in ops]))
        if nets:
            scores[nets, j] = np.log(p.predict_network([candidates[i] for i in nets]))
    ok = np.flatnonzero(np.isfinite(scores).any(1))
    if len(ok) < n:
        raise AdaptError(
            f"only {len(ok)} of {len(candidates)} candidates have op kinds the sources know; cannot choose {n} "
            "(sample more items, e.g. a larger --n, or use sources that cover these kinds)"
        )
    score = np.nanmean(scores[ok], axis=1)
    shares = _shares(candidates, ok, scores, sources)
    kind = ["network" if isinstance(candidates[i], Network) else candidates[i].kind for i in ok]
    groups: dict[str, list[int]] = {}
    for pos, k in enumerate(kind):
        groups.setdefault(k, []).append(pos)
    alloc = _allocate({k: len(v) for k, v in groups.items()}, n)
    chosen: list[int] = []
    for k, members in groups.items():
        picks = _bin_farthest(score[members], shares[members], alloc[k])
        chosen.extend(int(ok[members[p]]) for p in picks)
    return [candidates[i] for i in sorted(chosen)]


def _shares(candidates: list, ok: np.ndarray, scores: np.ndarray, sources: Sequence[Any]) -> np.ndarray:
    """Each usable candidate's split of its predicted latency over the roofline counters (first source knowing it):
    what the roofline weights are fitted from, so items that differ there are the informative ones."""
    from hwlat.adapt.methods import _design

    out = np.zeros((len(ok), 0))
    for j, p in enumerate(sources):
        mine = [pos for pos, i in enumerate(ok) if np.isfinite(scores[i, j]) and not out[pos].any()]
        if not mine:
            continue
        parts = _design(p, [candidates[ok[pos]] for pos in mine]).parts.sum(1)
        if out.shape[1] == 0:
            out = np.zeros((len(ok), parts.shape[1]))
        out[mine] = parts / np.maximum(parts.sum(1, keepdims=True), 1e-12)
    return out


def choose_rows(S_log: np.ndarray, n: int, pool: Sequence[int] | None = None, components: int = 4) -> list[int]:
    """``n`` rows of an architecture table to measure: spread over the sources' latency range, and diverse in
    how the sources disagree.

    The rows (``pool``: the allowed ones) are projected on the first ``components`` principal
    directions of the sources' log latencies; the first (about the mean latency) is cut into
    ``n`` equal-count bins, and each bin gives the row farthest, in the other directions, from
    the rows already chosen (the first bin its middle row): on HELP's FBNet data, where the
    devices disagree most, this chose better rows than the quantiles of the mean latency alone
    (benchmarks/results/few_shot.md has the comparison with random rows).
    """
    S_log = np.asarray(S_log, dtype=float)
    rows = np.arange(len(S_log)) if pool is None else np.asarray(list(pool), dtype=int)
    if n < 1 or n > len(rows):
        raise AdaptError(f"cannot choose {n} rows from {len(rows)}")
    Z = S_log[rows] - S_log[rows].mean(0)
    step = max(1, len(Z) // 4000)  # the directions from a subsample: cheap on large tables
    _, _, Vt = np.linalg.svd(Z[::step], full_matrices=False)
    P = Z @ Vt[:components].T
    P = P / np.where(P.std(0) > 0, P.std(0), 1.0)
    return sorted(int(rows[j]) for j in _bin_farthest(P[:, 0], P[:, 1:], n))
