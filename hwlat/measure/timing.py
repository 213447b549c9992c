"""The timing protocol shared by every backend, and the :class:`Measurement` it yields.

A :class:`Protocol` says how to warm up and how long a block is; its stop rule
(:mod:`hwlat.measure.stop`) says when an op is done and whether it settled.
The loop that applies it is :func:`hwlat.measure.loop.measure`.

Adaptive stop (the default): ops are measured in small groups; each op is
warmed up (runs and a minimum time) and its block size is chosen so one block
lasts about ``round_s``. Then rounds follow; each round visits the group's
unfinished ops in a shuffled order and runs one block of each, so slow drifts
of the machine spread over all ops instead of biasing one. An op stops when the
95 % confidence interval of its median is within ``rel_ci`` of the median and
its round medians agree, or when its time budget is spent. Ops that never met
both conditions are kept but marked ``stable=False`` and carry a warning.

Fixed stop (``Protocol.fixed()``): TFLite ``benchmark_model``'s defaults,
1 warm-up run (at least 0.5 s), then 50 runs (at least 1 s); for comparison.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.measure.stop import AdaptiveStop, FixedStop, StopRule, rel_ci_of, round_spread_of

if TYPE_CHECKING:
    from hwlat.devices import Backend, Item

__all__ = ["Protocol", "Measurement", "deliver", "median_ci", "reference_problem", "summarize"]

log = logging.getLogger(__name__)
Z95 = 1.959963984540054

_STOPS: dict[str, type[StopRule]] = {"adaptive": AdaptiveStop, "fixed": FixedStop}
_OWN = ("warmup_runs", "warmup_s", "round_s", "interleave", "max_block", "seed")


@dataclass(frozen=True, init=False)
class Protocol:
    """How to time: warm-up, block length, grouping, and the stop rule (seconds are device time).

    Parameters
    ----------
    stop : StopRule, optional
        When an op is done and whether it settled: :class:`~hwlat.measure.stop.AdaptiveStop`
        (the default) or :class:`~hwlat.measure.stop.FixedStop` (see :meth:`fixed`).
    warmup_runs, warmup_s : int, float
        Warm-up: at least this many runs and at least this much time.
    round_s : float
        Target duration of one block (the runs of one op within one round).
    interleave : int
        Ops measured together in shuffled rounds (the unit a killed run can lose).
    max_block : int
        Most runs in one block.
    seed : int
        Seed of the rounds' shuffle.
    **stop_fields
        Fields of the stop rule, e.g. ``rel_ci``, ``max_round_spread``,
        ``budget_s``, ``min_rounds``, ``max_rounds`` (adaptive) or ``runs``,
        ``min_s`` (fixed); ``name="adaptive"|"fixed"`` picks the rule's kind.

    Examples
    --------
    >>> Protocol(rel_ci=0.05).key
    'adaptive/ci=0.05/spread=0.05/budget=0.4s/round=0.01s/warmup=3+0.05s'
    >>> Protocol.fixed().key
    'fixed/warmup=1+0.5s/runs=50/min=1s'
    """

    stop: StopRule
    warmup_runs: int
    warmup_s: float
    round_s: float
    interleave: int
    max_block: int
    seed: int

    def __init__(
        self,
        stop: StopRule | None = None,
        *,
        warmup_runs: int = 3,
        warmup_s: float = 0.05,
        round_s: float = 0.01,
        interleave: int = 8,
        max_block: int = 2000,
        seed: int = 0,
        name: str | None = None,
        **stop_fields: Any,
    ) -> None:
        if name is not None:
            if name not in _STOPS:
                raise ValueError(f"Invalid protocol name {name!r}; valid: {', '.join(_STOPS)}")
            if stop is None or stop.name != name:
                stop = _STOPS[name]()
        stop = stop or AdaptiveStop()
        if stop_fields:
            valid = {f.name for f in dataclasses.fields(stop)}
            unknown = sorted(set(stop_fields) - valid)
            if unknown:
                raise ValueError(
                    f"Invalid protocol field(s) {', '.join(unknown)} for the {stop.name} stop rule; valid: "
                    f"{', '.join(sorted(valid | set(_OWN) | {'name', 'stop'}))}"
                )
            stop = dataclasses.replace(stop, **stop_fields)
        values = dict(
            stop=stop,
            warmup_runs=warmup_runs,
            warmup_s=warmup_s,
            round_s=round_s,
            interleave=interleave,
            max_block=max_block,
            seed=seed,
        )
        for k, v in values.items():
            object.__setattr__(self, k, v)
        for k in ("warmup_runs", "interleave", "max_block"):
            if getattr(self, k) < (0 if k == "warmup_runs" else 1):
                raise ValueError(f"Invalid protocol {k}={getattr(self, k)}")

    @classmethod
    def fixed(cls, warmup_runs: int = 1, warmup_s: float = 0.5, runs: int = 50, min_s: float = 1.0) -> Protocol:
        """``benchmark_model``'s defaults: 1 warm-up (≥ 0.5 s), 50 runs (≥ 1 s)."""
        return cls(FixedStop(runs=runs, min_s=min_s), warmup_runs=warmup_runs, warmup_s=warmup_s, interleave=1)

    def replace(self, **changes: Any) -> Protocol:
        """A copy with ``changes`` (the protocol's own fields or its stop rule's)."""
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """The stop rule's kind: ``adaptive`` or ``fixed``."""
        return self.stop.name

    @property
    def rel_ci(self) -> float:
        return self.stop.rel_ci

    @property
    def max_round_spread(self) -> float:
        return self.stop.max_round_spread

    @property
    def min_rounds(self) -> int:
        return self.stop.min_rounds

    @property
    def max_rounds(self) -> int:
        return self.stop.max_rounds

    @property
    def key(self) -> str:
        """What distinguishes results: rows are keyed by this string."""
        return self.stop.key(self)


@dataclass(frozen=True)
class Measurement:
    """Robust statistics of one op on one device, in milliseconds.

    ``warnings``: what a reader should know about this result (e.g. it did not
    settle); not stored, the ``stable`` flag is.
    """

    op_key: str
    device_key: str
    protocol: str
    kind: str
    n: int
    median_ms: float
    mean_ms: float
    std_ms: float
    p5_ms: float
    p95_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    rounds: int
    round_medians_ms: tuple[float, ...]
    stable: bool
    loadavg: float
    wall_s: float
    extra: tuple[tuple[str, float], ...] = field(default=())
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's 95 % CI relative to the median."""
        return rel_ci_of(self.median_ms, self.ci_low_ms, self.ci_high_ms)

    @property
    def round_spread(self) -> float:
        """IQR of the round medians relative to the median."""
        return round_spread_of(self.round_medians_ms, self.median_ms)

    def add_warning(self, message: str) -> Measurement:
        """A copy with ``message`` added to ``warnings``."""
        return dataclasses.replace(self, warnings=(*self.warnings, message))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["round_medians_ms"] = list(self.round_medians_ms)
        d["extra"] = dict(self.extra)
        d["warnings"] = list(self.warnings)
        return d


def judged(m: Measurement, stop: StopRule) -> Measurement:
    """``m`` with its ``stable`` flag and warnings set by ``stop``'s settled test."""
    rel, spread = m.rel_ci, m.round_spread
    warning = stop.unsettled_warning(rel, spread)
    m = dataclasses.replace(m, stable=warning is None)
    return m if warning is None else m.add_warning(warning)


def median_ci(sorted_x: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (normal approx. of the binomial)."""
    n = len(sorted_x)
    half = z * math.sqrt(n) / 2
    lo = max(int(math.floor(n / 2 - half)), 0)
    hi = min(int(math.ceil(n / 2 + half)), n - 1)
    return float(sorted_x[lo]), float(sorted_x[hi])


def summarize(
    samples_s: np.ndarray,
    round_medians_s: Sequence[float],
    *,
    item: Item,
    device_key: str,
    protocol: Protocol,
    wall_s: float,
    extra: Iterable[tuple[str, float]] = (),
) -> Measurement:
    """Turn raw per-run times (seconds) into a :class:`Measurement`."""
    x = np.sort(np.asarray(samples_s, dtype=float)) * 1e3
    med = float(np.median(x))
    lo, hi = median_ci(x)
    p5, q25, q75, p95 = np.percentile(x, [5, 25, 75, 95])
    rounds = tuple(float(r) * 1e3 for r in round_medians_s)
    m = Measurement(
        op_key=item.key,
        device_key=device_key,
        protocol=protocol.key,
        kind=item.kind,
        n=len(x),
        median_ms=med,
        mean_ms=float(x.mean()),
        std_ms=float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        p5_ms=float(p5),
        p95_ms=float(p95),
        iqr_ms=float(q75 - q25),
        ci_low_ms=lo,
        ci_high_ms=hi,
        rounds=len(rounds),
        round_medians_ms=rounds,
        stable=False,
        loadavg=_loadavg(),
        wall_s=wall_s,
        extra=tuple(extra),
    )
    return judged(m, protocol.stop)


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every platform
        return float("nan")


def reference_problem(backend: Backend, protocol: Protocol) -> str | None:
    """Why a drift reference cannot run with this backend and protocol (None: it can)."""
    if not getattr(backend, "per_run_times", True):
        return (
            f"needs per-run times; the {backend.name} backend's device times its runs itself "
            "(its thermal and frequency records are kept instead)"
        )
    if not protocol.stop.shared_rounds:
        return "needs the adaptive protocol: it is timed beside the ops in every round"
    return None


def deliver(
    m: Measurement,
    results: list[Measurement],
    on_result: Callable[[Measurement], None] | None,
    progress: Callable[[int], None] | None,
) -> None:
    """Hand over one final measurement: log its warnings, keep it, report it, advance progress."""
    for warning in m.warnings:
        log.info("%s %s", m.op_key, warning)
    results.append(m)
    if on_result is not None:
        on_result(m)
    if progress is not None:
        progress(1)
