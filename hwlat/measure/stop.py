"""When an op's measurement is done: the stop rules, the one place the "settled" test is written.

A :class:`~hwlat.measure.timing.Protocol` holds one stop rule; the measurement
loop (:mod:`hwlat.measure.loop`) asks it how large a block is, whether an op is
finished after a round, and whether its result settled (the ``stable`` flag):

- :class:`AdaptiveStop` (the default): rounds until the 95 % CI of the median is
  within ``rel_ci`` and the round medians agree within ``max_round_spread``, or
  the time budget is spent, between ``min_rounds`` and ``max_rounds`` rounds;
- :class:`FixedStop`: TFLite ``benchmark_model``'s way, blocks of ``runs`` runs
  until ``min_s`` of timed runs have passed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from hwlat.measure.timing import Protocol

__all__ = ["AdaptiveStop", "BlockPlan", "FixedStop", "StopRule", "rel_ci_of", "round_spread_of"]


def rel_ci_of(median: float, lo: float, hi: float) -> float:
    """Half-width of the median's CI ``[lo, hi]`` relative to the median (inf for a median <= 0)."""
    return max(median - lo, hi - median) / median if median > 0 else math.inf


def round_spread_of(round_medians: Sequence[float], median: float) -> float:
    """IQR of the round medians relative to the overall median (0 with fewer than two rounds)."""
    if len(round_medians) < 2 or median <= 0:
        return 0.0
    r75, r25 = np.percentile(np.asarray(round_medians, dtype=float), [75, 25])
    return float((r75 - r25) / median)


@dataclass(frozen=True)
class BlockPlan:
    """What one block of an op is: ``runs`` timed runs.

    ``min_s``: a runner that times its runs itself keeps running until this much
    time has passed (``benchmark_model``'s ``--min_secs``); the host's runner
    runs exactly ``runs`` and the loop repeats blocks until the stop rule is met.
    """

    runs: int
    min_s: float = 0.0


@dataclass(frozen=True)
class StopRule:
    """The settled test shared by every rule: CI and round spread within limits.

    Parameters
    ----------
    rel_ci : float
        Settled when the 95 % CI half-width of the median is within this fraction.
    max_round_spread : float
        Rounds "agree" when the IQR of their medians is within this fraction of the median.
    """

    name: ClassVar[str]
    rel_ci: float = 0.02
    max_round_spread: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.rel_ci < 1:
            raise ValueError(f"Invalid rel_ci={self.rel_ci}: must be in (0, 1), e.g. 0.02 for 2 %")
        if self.max_round_spread < 0:
            raise ValueError(f"Invalid max_round_spread={self.max_round_spread}: must be >= 0")

    def settled(self, rel_ci: float, round_spread: float) -> bool:
        """The stop rule: the median's CI and the rounds' spread are both within limits."""
        return bool(rel_ci <= self.rel_ci and round_spread <= self.max_round_spread)

    def unsettled_warning(self, rel_ci: float, round_spread: float) -> str | None:
        """The warning attached to a result that did not settle (None: it did)."""
        if self.settled(rel_ci, round_spread):
            return None
        return (
            f"did not settle: CI ±{100 * rel_ci:.1f}% (limit {100 * self.rel_ci:g}%), "
            f"round spread {100 * round_spread:.1f}% (limit {100 * self.max_round_spread:g}%)"
        )

    # What varies between rules
    shared_rounds: ClassVar[bool] = False  # ops take turns in shuffled rounds (a drift reference can join them)

    @property
    def min_rounds(self) -> int:
        """Fewest rounds (blocks) an op gets."""
        return 1

    @property
    def max_rounds(self) -> int:
        """Most rounds (blocks) an op gets."""
        return sys.maxsize

    def group_size(self, interleave: int) -> int:
        """Ops measured together."""
        return 1

    def plan(self, protocol: Protocol, est_s: float | None) -> BlockPlan:
        """One block of an op whose single run takes ``est_s`` (None: the runner does its own warm-up)."""
        raise NotImplementedError

    def finished(self, rounds: int, spent_s: float, settled: Callable[[], bool]) -> bool:
        """Whether an op is done after ``rounds`` blocks and ``spent_s`` of timed runs."""
        raise NotImplementedError

    def key(self, protocol: Protocol) -> str:
        """``Protocol.key`` (rows are keyed by it: never change a string it gives)."""
        raise NotImplementedError


@dataclass(frozen=True)
class AdaptiveStop(StopRule):
    """Rounds until settled or ``budget_s`` is spent, within ``[min_rounds, max_rounds]``.

    Parameters
    ----------
    rel_ci, max_round_spread : float
        See :class:`StopRule`.
    budget_s : float
        Time budget per op (timed runs).
    min_rounds, max_rounds : int
        Bounds on the number of rounds per op.
    """

    name: ClassVar[str] = "adaptive"
    shared_rounds: ClassVar[bool] = True
    budget_s: float = 0.4
    # Fields here, properties of the base (a fixed rule has no bounds but its own).
    min_rounds: int = 5  # type: ignore[assignment]
    max_rounds: int = 60  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("min_rounds", "max_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid protocol {name}={getattr(self, name)}")
        if not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise ValueError(f"Invalid budget_s={self.budget_s}: must be a finite number of seconds > 0")

    def group_size(self, interleave: int) -> int:
        return interleave

    def plan(self, protocol: Protocol, est_s: float | None) -> BlockPlan:
        if est_s is None:  # the runner warms up itself: ask it for round_s of runs
            return BlockPlan(1, protocol.round_s)
        return BlockPlan(int(min(protocol.max_block, max(1, math.ceil(protocol.round_s / max(est_s, 1e-9))))))

    def finished(self, rounds: int, spent_s: float, settled: Callable[[], bool]) -> bool:
        return rounds >= self.min_rounds and (settled() or spent_s >= self.budget_s)

    def key(self, protocol: Protocol) -> str:
        return (
            f"adaptive/ci={self.rel_ci:g}/spread={self.max_round_spread:g}/budget={self.budget_s:g}s"
            f"/round={protocol.round_s:g}s/warmup={protocol.warmup_runs}+{protocol.warmup_s:g}s"
        )


@dataclass(frozen=True)
class FixedStop(StopRule):
    """``benchmark_model``'s defaults: blocks of ``runs`` runs until ``min_s`` has passed, one op at a time.

    ``rel_ci`` and ``max_round_spread`` only judge the result (its ``stable`` flag).
    """

    name: ClassVar[str] = "fixed"
    runs: int = 50
    min_s: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.runs < 1:
            raise ValueError("The fixed protocol needs runs >= 1")

    def plan(self, protocol: Protocol, est_s: float | None) -> BlockPlan:
        return BlockPlan(self.runs, self.min_s)

    def finished(self, rounds: int, spent_s: float, settled: Callable[[], bool]) -> bool:
        return rounds >= 1 and spent_s >= self.min_s

    def key(self, protocol: Protocol) -> str:
        return f"fixed/warmup={protocol.warmup_runs}+{protocol.warmup_s:g}s/runs={self.runs}/min={self.min_s:g}s"
