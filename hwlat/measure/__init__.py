"""Measuring: the timing protocol, its stop rules, the one measurement loop, and drift correction.

``timing`` holds :class:`Protocol` and :class:`Measurement`; ``stop`` the stop
rules (:class:`AdaptiveStop`, :class:`FixedStop`); ``loop`` :func:`measure`;
``drift`` the reference op and the correction of a table to its typical speed.
"""

from hwlat.measure.loop import Block, measure
from hwlat.measure.stop import AdaptiveStop, BlockPlan, FixedStop, StopRule
from hwlat.measure.timing import Measurement, Protocol, deliver, median_ci, reference_problem, summarize

__all__ = [
    "AdaptiveStop",
    "Block",
    "BlockPlan",
    "FixedStop",
    "Measurement",
    "Protocol",
    "StopRule",
    "deliver",
    "measure",
    "median_ci",
    "reference_problem",
    "summarize",
]
