"""Measuring: the timing protocol, the one measurement loop, and drift correction.

``timing`` holds :class:`Protocol`, :class:`Measurement` and :func:`measure`;
``drift`` the reference op and the correction of a table to its typical speed.
"""

from hwlat.measure.timing import Measurement, Protocol, deliver, measure, median_ci, reference_problem, summarize

__all__ = ["Measurement", "Protocol", "deliver", "measure", "median_ci", "reference_problem", "summarize"]
