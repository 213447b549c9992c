"""The registry of searches: names as ``hwlat search`` uses them, lazy entry points."""

import subprocess
import sys

import pytest

from hwlat.search import SEARCHES


@pytest.mark.parametrize("name", ["proxyless", "darc", "split", "width"])
def test_each_search_loads_its_entry_point(name):
    import importlib

    info = SEARCHES.get(name)
    assert info.load() is getattr(importlib.import_module(info.module), info.function)
    assert callable(info.load())


def test_unknown_search_lists_the_valid_ones():
    with pytest.raises(ValueError, match="did you mean 'split'.*valid searches: darc, proxyless, split, width"):
        SEARCHES.get("splt")


def test_listing_searches_does_not_import_torch():
    code = "import sys, hwlat.search as s; s.SEARCHES.names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_darc_size_mode_cost_is_a_latency_model():
    from hwlat.predict.protocol import LatencyModel
    from hwlat.search.darc import _ParamCount

    assert isinstance(_ParamCount(), LatencyModel)
