"""The one measurement loop: groups, shuffled rounds, warm-up, block size, stop rule, budgets.

The loop knows nothing about how a block is timed. A backend gives it hooks
(as ``torch.utils.benchmark``'s ``_threaded_measurement_loop(number, time_hook,
stop_hook, ...)``): :meth:`~hwlat.devices.Backend.prepare` an op,
:meth:`~hwlat.devices.Backend.warm_up` it, :meth:`~hwlat.devices.Backend.time_block`
one block of it, and :meth:`~hwlat.devices.Backend.summarize` its blocks into a
:class:`~hwlat.measure.timing.Measurement`. Host backends time ``n`` calls of a
prepared :class:`~hwlat.devices.Runnable`; the adb backend runs one
``benchmark_model`` invocation per block and reads its output.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hwlat.measure.stop import BlockPlan
from hwlat.measure.timing import Measurement, Protocol, deliver, reference_problem

if TYPE_CHECKING:
    from hwlat.devices import Backend, Item, Runnable

__all__ = ["Block", "measure", "warm_up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One timed block of one op, as a ``time_block`` hook returns it.

    ``sample``: what the backend's ``summarize`` reads (per-run times in seconds
    for host backends, a parsed ``benchmark_model`` output for adb);
    ``spent_s``: timed-run time it covered (counts against the budget);
    ``wall_s``: wall time it took.
    """

    sample: Any
    spent_s: float
    wall_s: float


def warm_up(backend: Backend, runnable: Runnable, protocol: Protocol) -> float:
    """Warm up with ``backend.run``; return the median per-run time seen (seconds)."""
    seen: list[np.ndarray] = []
    spent, runs = 0.0, 0
    while runs < max(protocol.warmup_runs, 1) or spent < protocol.warmup_s:
        chunk = 1 if not seen else max(1, min(1000, int(0.01 / max(np.median(seen[-1]), 1e-7))))
        t = backend.run(runnable, chunk)
        seen.append(t)
        spent += float(t.sum())
        runs += chunk
    return float(np.median(np.concatenate(seen)))


class _OpState:
    def __init__(self, item: Item, runnable: Runnable, plan: BlockPlan, wall_s: float) -> None:
        self.item, self.runnable, self.plan, self.wall_s = item, runnable, plan, wall_s
        self.blocks: list[Block] = []
        self.spent_s = 0.0
        self.done = False

    def add(self, block: Block) -> None:
        self.blocks.append(block)
        self.wall_s += block.wall_s
        self.spent_s += block.spent_s


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
    """
    protocol = protocol or Protocol()
    stop = protocol.stop
    if reference is not None and (problem := reference_problem(backend, protocol)):
        raise ValueError(f"a drift reference {problem}")
    if extra is None:
        extra = backend.measurement_extra
    rng = np.random.default_rng(protocol.seed)
    results: list[Measurement] = []
    group_size = stop.group_size(protocol.interleave)
    ref: _Reference | None = None

    def finish(st: _OpState) -> None:
        st.done = True
        pairs = list(extra(st.item)) + list(getattr(st.item, "provenance", ()))
        if ref is not None:
            pairs += ref.pairs()
        m = backend.summarize(
            st.runnable, [b.sample for b in st.blocks], protocol=protocol, wall_s=st.wall_s, extra=pairs
        )
        deliver(m, results, on_result, progress)

    def settled(st: _OpState) -> Callable[[], bool]:
        def judge() -> bool:
            m = backend.summarize(st.runnable, [b.sample for b in st.blocks], protocol=protocol, wall_s=st.wall_s)
            return stop.settled(m.rel_ci, m.round_spread)

        return judge

    with backend.session(), contextlib.ExitStack() as stack:
        if reference is not None:
            ref = _Reference(backend, reference, protocol)
            stack.callback(ref.close)
        for start in range(0, len(items), group_size):
            states: list[_OpState] = []
            try:
                for item in items[start : start + group_size]:
                    t0 = time.perf_counter()
                    runnable = backend.prepare(item)
                    est = backend.warm_up(runnable, protocol)
                    states.append(_OpState(item, runnable, stop.plan(protocol, est), time.perf_counter() - t0))
                if ref is not None:
                    ref.new_group()
                for _rnd in range(stop.max_rounds):
                    active = [st for st in states if not st.done]
                    if not active:
                        break
                    for i in rng.permutation(len(active) + (ref is not None)):
                        if i == len(active):
                            ref.run_block()  # type: ignore[union-attr]
                            continue
                        st = active[i]
                        st.add(backend.time_block(st.runnable, st.plan))
                        if stop.finished(len(st.blocks), st.spent_s, settled(st)):
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
        est = backend.warm_up(self.runnable, protocol)
        self.block = protocol.stop.plan(protocol, est).runs
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
