"""The timing protocol shared by every backend, and the :class:`Measurement` it yields.

Adaptive protocol (the default): ops are measured in small groups; each op is
warmed up (runs and a minimum time) and its block size is chosen so one block
lasts about ``round_s``. Then rounds follow; each round visits the group's
unfinished ops in a shuffled order and runs one block of each, so slow drifts
of the machine spread over all ops instead of biasing one. An op stops when the
95 % confidence interval of its median is within ``rel_ci`` of the median and
its round medians agree, or when its time budget is spent. Ops that never met
both conditions are kept but marked ``stable=False``.

Fixed protocol (``Protocol.fixed()``): TFLite ``benchmark_model``'s defaults,
1 warm-up run (at least 0.5 s), then 50 runs (at least 1 s); for comparison.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hwlat.devices import Backend, Item

__all__ = ["Protocol", "Measurement", "measure", "deliver", "median_ci", "summarize"]

log = logging.getLogger(__name__)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Protocol:
    """How to time: warm-up, rounds, stop rule and budget (seconds are device time).

    Parameters
    ----------
    warmup_runs, warmup_s : int, float
        Warm-up: at least this many runs and at least this much time.
    round_s : float
        Target duration of one block (the runs of one op within one round).
    min_rounds, max_rounds : int
        Bounds on the number of rounds per op.
    rel_ci : float
        Stop when the 95 % CI half-width of the median is within this fraction.
    max_round_spread : float
        Rounds "agree" when the IQR of their medians is within this fraction
        of the median.
    budget_s : float
        Time budget per op (timed runs).
    interleave : int
        Ops measured together in shuffled rounds (the unit a killed run can lose).
    runs, min_s : int, float
        Fixed protocol only: exactly one block of ``runs`` runs, repeated until
        ``min_s`` has passed.
    """

    name: str = "adaptive"
    warmup_runs: int = 3
    warmup_s: float = 0.05
    round_s: float = 0.01
    min_rounds: int = 5
    max_rounds: int = 60
    rel_ci: float = 0.02
    max_round_spread: float = 0.05
    budget_s: float = 0.4
    interleave: int = 8
    max_block: int = 2000
    runs: int = 0
    min_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ("adaptive", "fixed"):
            raise ValueError(f"Invalid protocol name {self.name!r}; valid: adaptive, fixed")
        for name in ("warmup_runs", "min_rounds", "max_rounds", "interleave", "max_block", "runs"):
            if getattr(self, name) < (0 if name in ("warmup_runs", "runs") else 1):
                raise ValueError(f"Invalid protocol {name}={getattr(self, name)}")
        if not 0 < self.rel_ci < 1:
            raise ValueError(f"Invalid rel_ci={self.rel_ci}: must be in (0, 1), e.g. 0.02 for 2 %")
        if self.name == "fixed" and self.runs < 1:
            raise ValueError("The fixed protocol needs runs >= 1")

    @classmethod
    def fixed(cls, warmup_runs: int = 1, warmup_s: float = 0.5, runs: int = 50, min_s: float = 1.0) -> Protocol:
        """``benchmark_model``'s defaults: 1 warm-up (≥ 0.5 s), 50 runs (≥ 1 s)."""
        return cls("fixed", warmup_runs=warmup_runs, warmup_s=warmup_s, runs=runs, min_s=min_s, interleave=1)

    def replace(self, **changes: Any) -> Protocol:
        return dataclasses.replace(self, **changes)

    @property
    def key(self) -> str:
        """What distinguishes results: rows are keyed by this string."""
        if self.name == "fixed":
            return f"fixed/warmup={self.warmup_runs}+{self.warmup_s:g}s/runs={self.runs}/min={self.min_s:g}s"
        return (
            f"adaptive/ci={self.rel_ci:g}/spread={self.max_round_spread:g}/budget={self.budget_s:g}s"
            f"/round={self.round_s:g}s/warmup={self.warmup_runs}+{self.warmup_s:g}s"
        )


@dataclass(frozen=True)
class Measurement:
    """Robust statistics of one op on one device, in milliseconds."""

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

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's 95 % CI relative to the median."""
        return max(self.median_ms - self.ci_low_ms, self.ci_high_ms - self.median_ms) / self.median_ms

    @property
    def round_spread(self) -> float:
        r = np.asarray(self.round_medians_ms)
        if len(r) < 2:
            return 0.0
        q75, q25 = np.percentile(r, [75, 25])
        return float((q75 - q25) / self.median_ms)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["round_medians_ms"] = list(self.round_medians_ms)
        d["extra"] = dict(self.extra)
        return d


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
    rel = max(med - lo, hi - med) / med
    if len(rounds) > 1:
        r75, r25 = np.percentile(rounds, [75, 25])
        spread = (r75 - r25) / med
    else:
        spread = 0.0
    stable = bool(rel <= protocol.rel_ci and spread <= protocol.max_round_spread)
    return Measurement(
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
        stable=stable,
        loadavg=_loadavg(),
        wall_s=wall_s,
        extra=tuple(extra),
    )


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every platform
        return float("nan")


class _OpState:
    def __init__(self, item: Item, runnable: Any, wall_s: float) -> None:
        self.item, self.runnable, self.wall_s = item, runnable, wall_s
        self.blocks: list[np.ndarray] = []
        self.block = 1
        self.spent_s = 0.0
        self.done = False

    def add(self, times: np.ndarray, wall_s: float) -> None:
        self.blocks.append(times)
        self.wall_s += wall_s
        self.spent_s += float(times.sum())

    def stats(self) -> tuple[float, float, float]:
        x = np.sort(np.concatenate(self.blocks))
        med = float(np.median(x))
        lo, hi = median_ci(x)
        rel = max(med - lo, hi - med) / med
        meds = [float(np.median(b)) for b in self.blocks]
        spread = 0.0
        if len(meds) > 1:
            r75, r25 = np.percentile(meds, [75, 25])
            spread = (r75 - r25) / med
        return med, rel, spread


def _run_block(backend: Backend, st: _OpState) -> None:
    t0 = time.perf_counter()
    times = backend.run(st.runnable, st.block)
    st.add(times, time.perf_counter() - t0)


def _block_size(protocol: Protocol, est_s: float) -> int:
    """Runs per block so that one block lasts about ``round_s`` (``est_s``: one run's time)."""
    return int(min(protocol.max_block, max(1, math.ceil(protocol.round_s / max(est_s, 1e-9)))))


def reference_problem(backend: Backend, protocol: Protocol) -> str | None:
    """Why a drift reference cannot run with this backend and protocol (None: it can)."""
    if getattr(backend, "measure_items", None) is not None:
        return (
            f"needs per-run times; the {backend.name} backend's device times its runs itself "
            "(its thermal and frequency records are kept instead)"
        )
    if protocol.name != "adaptive":
        return "needs the adaptive protocol: it is timed beside the ops in every round"
    return None


def _warmup(backend: Backend, runnable: Any, protocol: Protocol) -> float:
    """Warm up; return the median per-run time seen (seconds)."""
    seen: list[np.ndarray] = []
    spent, runs = 0.0, 0
    while runs < max(protocol.warmup_runs, 1) or spent < protocol.warmup_s:
        chunk = 1 if not seen else max(1, min(1000, int(0.01 / max(np.median(seen[-1]), 1e-7))))
        t = backend.run(runnable, chunk)
        seen.append(t)
        spent += float(t.sum())
        runs += chunk
    return float(np.median(np.concatenate(seen)))


def deliver(
    m: Measurement,
    results: list[Measurement],
    on_result: Callable[[Measurement], None] | None,
    progress: Callable[[int], None] | None,
) -> None:
    """Hand over one final measurement: log it if it did not settle, keep it, report it, advance progress."""
    if not m.stable:
        log.info("%s did not settle: CI ±%.1f%%, round spread %.1f%%", m.op_key, 100 * m.rel_ci, 100 * m.round_spread)
    results.append(m)
    if on_result is not None:
        on_result(m)
    if progress is not None:
        progress(1)


def measure(
    backend: Backend,
    items: Sequence[Item],
    protocol: Protocol | None = None,
    *,
    on_result: Callable[[Measurement], None] | None = None,
    progress: Callable[[int], None] | None = None,
    extra: Callable[[Item], Iterable[tuple[str, float]]] | None = None,
    reference: Item | None = None,
) -> list[Measurement]:
    """Measure ``items`` on ``backend`` with ``protocol``; return one Measurement each.

    ``on_result`` is called as soon as an op is final (the store writes it
    there, so a killed run loses only the group in flight); ``progress(k)``
    is called with the number of ops finished since the last call.
    ``extra(item)`` gives values for ``Measurement.extra``; by default the
    backend's ``measurement_extra`` (e.g. GPU energy per inference).

    ``reference`` (adaptive protocol only): an op run once in every round of
    every group, beside the ops being measured. Each row then records the
    reference's median over the same rounds (``ref_ms`` in ``extra``, with
    ``ref_id`` naming the op), so a shared machine's slow and fast spells can
    be told apart and divided out afterwards (:mod:`hwlat.measure.drift`). Costs about
    one block per round (~1/interleave more timed time). The medians
    themselves are not changed.

    A backend whose device times runs itself and reports statistics, not
    per-run times (the adb backend's ``benchmark_model``), provides
    ``measure_items`` with this signature; it is used instead.
    """
    protocol = protocol or Protocol()
    own = getattr(backend, "measure_items", None)
    if reference is not None and (problem := reference_problem(backend, protocol)):
        raise ValueError(f"a drift reference {problem}")
    if own is not None:
        return own(items, protocol, on_result=on_result, progress=progress, extra=extra)
    if extra is None:
        extra = getattr(backend, "measurement_extra", None)
    rng = np.random.default_rng(protocol.seed)
    results: list[Measurement] = []
    key = backend.spec.key
    group_size = protocol.interleave if protocol.name == "adaptive" else 1

    ref: _Reference | None = None

    def finish(st: _OpState) -> None:
        st.done = True
        meds = [float(np.median(b)) for b in st.blocks]
        pairs = list(extra(st.item)) if extra else []
        if ref is not None:
            pairs += ref.pairs()
        m = summarize(
            np.concatenate(st.blocks),
            meds,
            item=st.item,
            device_key=key,
            protocol=protocol,
            wall_s=st.wall_s,
            extra=pairs,
        )
        deliver(m, results, on_result, progress)

    with backend.session(), contextlib.ExitStack() as stack:
        if reference is not None:
            ref = _Reference(backend, reference, protocol)
            stack.callback(ref.close)
        for start in range(0, len(items), group_size):
            group = items[start : start + group_size]
            states: list[_OpState] = []
            try:
                for item in group:
                    t0 = time.perf_counter()
                    runnable = backend.prepare(item)
                    est = _warmup(backend, runnable, protocol)
                    st = _OpState(item, runnable, time.perf_counter() - t0)
                    if protocol.name == "fixed":
                        st.block = protocol.runs
                    else:
                        st.block = _block_size(protocol, est)
                    states.append(st)
                if protocol.name == "fixed":
                    for st in states:
                        while not st.blocks or st.spent_s < protocol.min_s:
                            _run_block(backend, st)
                        finish(st)
                    continue
                if ref is not None:
                    ref.new_group()
                for _rnd in range(protocol.max_rounds):
                    active = [st for st in states if not st.done]
                    if not active:
                        break
                    for i in rng.permutation(len(active) + (ref is not None)):
                        if i == len(active):
                            ref.run_block()  # type: ignore[union-attr]
                            continue
                        st = active[i]
                        _run_block(backend, st)
                        if len(st.blocks) >= protocol.min_rounds:
                            _, rel, spread = st.stats()
                            settled = rel <= protocol.rel_ci and spread <= protocol.max_round_spread
                            if settled or st.spent_s >= protocol.budget_s:
                                finish(st)
                for st in states:
                    if not st.done:
                        finish(st)
            finally:
                for st in states:
                    st.runnable.close()
    if ref is not None:
        ref.report()
    return results


class _Reference:
    """The drift reference: prepared and warmed up once, one block per round of each group."""

    def __init__(self, backend: Backend, item: Item, protocol: Protocol) -> None:
        from hwlat.measure.drift import reference_id

        self.backend, self.item, self.id = backend, item, reference_id(item.key)
        self.runnable = backend.prepare(item)
        est = _warmup(backend, self.runnable, protocol)
        self.block = _block_size(protocol, est)
        self.samples: list[np.ndarray] = []
        self.group_ms: list[float] = []

    def new_group(self, start: bool = True) -> None:
        if self.samples:
            self.group_ms.append(self.median_ms())
        self.samples = []
        if start:  # it sat idle while the group was prepared: one block to re-warm, one so every op has a reference
            self.backend.run(self.runnable, self.block)
            self.run_block()

    def run_block(self) -> None:
        self.samples.append(self.backend.run(self.runnable, self.block))

    def median_ms(self) -> float:
        return float(np.median(np.concatenate(self.samples))) * 1e3

    def pairs(self) -> list[tuple[str, float]]:
        """``extra`` entries for an op finished now: the reference over the same rounds."""
        return [("ref_ms", self.median_ms()), ("ref_id", self.id)]

    def report(self) -> None:
        self.new_group(start=False)
        if len(self.group_ms) > 1:
            lo, hi = min(self.group_ms), max(self.group_ms)
            level = logging.WARNING if hi > 1.1 * lo else logging.INFO
            log.log(
                level,
                "drift reference %s: %.4g-%.4g ms over %d groups (x%.2f)",
                self.item.key,
                lo,
                hi,
                len(self.group_ms),
                hi / lo,
            )

    def close(self) -> None:
        self.runnable.close()
