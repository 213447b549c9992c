"""The searches hwlat ships, by the name ``hwlat search NAME`` uses: :data:`SEARCHES`.

An entry names the module and function that run the search instead of holding
the function itself, so listing the searches (building the CLI parser, ``--help``)
does not import torch; :meth:`SearchInfo.load` imports it on first use.

Examples
--------
>>> SEARCHES.names()
['darc', 'proxyless', 'split', 'width']
>>> SEARCHES.get("split").function
'run_splitting'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from hwlat.registry import Registry

__all__ = ["SEARCHES", "SearchInfo"]


@dataclass(frozen=True)
class SearchInfo:
    """One search: what it does and where its entry point lives.

    Parameters
    ----------
    description : str
        One line, shown as the command's help.
    module : str
        Module holding the entry point (imported lazily: searches import torch).
    function : str
        Name of the entry point in ``module``.
    """

    description: str
    module: str
    function: str

    def load(self) -> Callable:
        """The entry point (imports :attr:`module`)."""
        return getattr(importlib.import_module(self.module), self.function)


SEARCHES: Registry[SearchInfo] = Registry("search", "searches")

SEARCHES.register(
    "proxyless",
    SearchInfo(
        "ProxylessNAS on the digits MBConv backbone, latency from a predictor",
        "hwlat.search.proxyless",
        "run_proxyless",
    ),
)
SEARCHES.register(
    "darc",
    SearchInfo(
        "DARC: replace convs of a network by cheaper candidates under a budget", "hwlat.search.darc", "run_darc"
    ),
)
SEARCHES.register(
    "split",
    SearchInfo(
        "grow a digits MobileNet by latency-aware splitting (knapsack)", "hwlat.search.splitting", "run_splitting"
    ),
)
SEARCHES.register(
    "width",
    SearchInfo("latency-aware per-layer widths, optionally by width transfer", "hwlat.search.width", "optimize_widths"),
)
