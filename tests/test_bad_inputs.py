"""The bad-input catalogue (benchmarks/bad_inputs.py, issue #12), its quick subset run for real.

Every quick case must end in an error (rc != 0) of one line, with no traceback, no pre-existing data file
changed, nothing left behind and no code executed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "benchmarks" / "bad_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = mod
    spec.loader.exec_module(mod)
    return mod


bad_inputs = _load()


def test_catalogue_is_large_and_covers_every_item():
    cases = bad_inputs.CASES
    assert len(cases) >= 150
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    assert sum(c.cli is not None for c in cases) >= 100
    assert sum(c.api is not None for c in cases) >= 20
    items = {c.group.split()[0] for c in cases}
    assert {"1", "2", "3", "4", "6", "7", "8", "9"} <= items
    for c in cases:
        assert (c.cli is None) != (c.api is None), c.name
        for _name, maker, _arg in c.setup:
            assert maker in bad_inputs.MAKERS, (c.name, maker)
    quick = bad_inputs.select(quick=True)
    assert 15 <= len(quick) <= 30
    assert {c.group.split()[0] for c in quick} >= {"1", "2", "3", "4", "7", "8", "9"}


def test_message_lines_ignore_warnings_and_progress_bars():
    err = "warning: slow machine\n 40%|####      | 4/10\r 50%|#####     | 5/10\n\nhwlat fit: error: bad thing\n"
    assert bad_inputs.message_lines(err) == ["hwlat fit: error: bad thing"]
    assert bad_inputs.message_lines("a\nb\n") == ["a", "b"]
    usage = (
        "usage: hwlat measure [-h] --device DEVICE\n                     [--n N]\nhwlat measure: error: argument --n\n"
    )
    assert bad_inputs.message_lines(usage) == ["hwlat measure: error: argument --n"]


@pytest.mark.slow
def test_quick_catalogue_every_case_is_a_clean_one_line_error():
    results = bad_inputs.run_all(bad_inputs.select(quick=True), jobs=2, progress=False)
    summary = bad_inputs.summarize(results)
    assert summary["tried"] == len(results) >= 15
    assert summary["code_executed"] == 0, [r["name"] for r in results if r["executed"]]
    assert summary["data_files_changed"] == 0, [(r["name"], r["changed"]) for r in results if r["changed"]]
    assert summary["tracebacks"] == 0, [(r["name"], r["first_line"]) for r in results if r["traceback"]]
    bad = [(r["name"], r["rc"], r["first_line"]) for r in results if not r["ok"]]
    assert not bad, bad
    for r in results:
        assert r["rc"] != 0, r["name"]
        assert r["one_line"], (r["name"], r["first_line"])
        assert not r["left_behind"], (r["name"], r["left_behind"])
