"""The Once-for-All MobileNetV3 dialect of the lookup tables (hwlat/formats/lut.py)."""

import math
import re

import pytest
import yaml

from hwlat.formats.lut import (
    DIALECT_KINDS,
    UnmappedLutEntry,
    detect_dialect,
    export_lut,
    import_lut,
    import_lut_report,
    lut_key,
    parse_lut_key,
    read_lut,
)
from hwlat.ops import OpSpec
from hwlat.store import LatencyStore

MBV3 = "ofa-mbv3"

# A small MobileNetV3 at 64 px, every layer one hwlat op: the order OFA's MBv3LatencyTable sums.
NET = {
    "Conv-input:64x64x3-output:32x32x16": (0.50, 0.02),
    "expanded_conv-input:32x32x16-output:32x32x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0": (0.21, 0.01),
    "expanded_conv-input:32x32x16-output:16x16x24-expand:96-kernel:5-stride:2-idskip:0-se:0-hs:0": (0.83, 0.03),
    "expanded_conv-input:16x16x24-output:16x16x24-expand:72-kernel:3-stride:1-idskip:1-se:0-hs:1": (0.40, 0.02),
    "expanded_conv-input:16x16x24-output:8x8x40-expand:144-kernel:7-stride:2-idskip:0-se:0-hs:1": (0.61, 0.04),
    "Conv_1-input:8x8x40-output:8x8x240": (0.30, 0.01),
    "AvgPool2D-input:8x8x240-output:1x1x240": (0.02, 0.001),
    "Conv_2-input:1x1x240-output:1x1x1280": (0.25, 0.01),
    "Logits-input:1x1x1280-output:1000": (0.12, 0.005),
}
NET_OPS = [
    OpSpec("stem", cin=3, cout=16, h=64, w=64, kernel=3, stride=2, act="hswish"),
    OpSpec("mbconv", cin=16, cout=16, h=32, w=32, kernel=3, stride=1, expand=1, act="relu"),
    OpSpec("mbconv", cin=16, cout=24, h=32, w=32, kernel=5, stride=2, expand=6, act="relu"),
    OpSpec("mbconv", cin=24, cout=24, h=16, w=16, kernel=3, stride=1, expand=3, act="hswish"),
    OpSpec("mbconv", cin=24, cout=40, h=16, w=16, kernel=7, stride=2, expand=6, act="hswish"),
    OpSpec("pwconv", cin=40, cout=240, h=8, w=8, act="hswish"),
    OpSpec("gap", cin=240, h=8, w=8),
    OpSpec("pwconv", cin=240, cout=1280, h=1, w=1, act="hswish"),
    OpSpec("linear", cin=1280, cout=1000),
]
# Well-formed entries no hwlat op computes exactly.
SE_KEY = "expanded_conv-input:8x8x40-output:8x8x40-expand:240-kernel:5-stride:1-idskip:1-se:1-hs:1"
ODD_MID_KEY = "expanded_conv-input:8x8x40-output:8x8x40-expand:100-kernel:5-stride:1-idskip:1-se:0-hs:1"
NO_SKIP_KEY = "expanded_conv-input:8x8x40-output:8x8x40-expand:120-kernel:3-stride:1-idskip:0-se:0-hs:0"


def write(path, entries, spread="std"):
    """A LUT file: ``entries`` maps key -> (mean, spread) or to a ready entry dict."""
    data = {
        k: v if isinstance(v, dict) else {"count": 50, "mean": v[0], spread: v[1] ** (2 if spread == "var" else 1)}
        for k, v in entries.items()
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class TablePredictor:
    """A deterministic stand-in for a fitted LatencyPredictor: a fixed cost per op, from its shape."""

    def __init__(self, kinds=("stem", "mbconv", "pwconv", "gap", "linear", "head")):
        self.models_ = dict.fromkeys(kinds)

    def predict(self, ops):
        return [1e-6 * op.flops + 1e-3 * op.cin + (0.05 if op.act == "hswish" else 0.0) for op in ops]


@pytest.mark.parametrize("key, op", list(zip(NET, NET_OPS)))
def test_mbv3_keys_both_ways(key, op):
    assert parse_lut_key(key, MBV3) == op
    assert lut_key(op, MBV3) == key


def test_key_dialect_comes_from_the_key_or_the_table():
    se0 = "expanded_conv-input:28x28x40-output:28x28x40-expand:240-kernel:5-stride:1-idskip:1-se:0-hs:0"
    assert parse_lut_key(se0) == OpSpec("mbconv", cin=40, cout=40, h=28, w=28, kernel=5, expand=6, act="relu")
    # Conv, Conv_1 and Logits are in both dialects; alone they read as ProxylessNAS (relu6, Logits = head)
    assert parse_lut_key("Conv_1-input:7x7x160-output:7x7x960").act == "relu6"
    assert parse_lut_key("Conv_1-input:7x7x160-output:7x7x960", MBV3).act == "hswish"
    assert parse_lut_key("Logits-input:1x1x1280-output:1000").kind == "head"
    assert detect_dialect(NET) == MBV3
    assert (
        detect_dialect(["Conv-input:224x224x3-output:112x112x32", "Logits-input:7x7x1280-output:1000"]) == "proxyless"
    )
    mixed = [*NET, "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0"]
    with pytest.raises(ValueError, match=r"mixes two LUT dialects: 'expanded_conv-input:112x112x16.*split it"):
        detect_dialect(mixed)


@pytest.mark.parametrize(
    "key, reason",
    [
        (SE_KEY, r"se:1 \(squeeze-and-excite"),
        (ODD_MID_KEY, "not a whole multiple of the input channels"),
        (NO_SKIP_KEY, "idskip:0 where hwlat's mbconv adds the identity shortcut"),
        (
            "expanded_conv-input:16x16x24-output:16x16x24-expand:48-kernel:3-stride:1-idskip:1-se:0-hs:0",
            r"expansion ratio 2 \(mbconv allows",
        ),
        (
            "expanded_conv-input:16x16x24-output:16x16x24-expand:72-kernel:9-stride:1-idskip:1-se:0-hs:0",
            r"kernel 9 \(mbconv allows 3, 5, 7\)",
        ),
    ],
)
def test_layers_without_an_hwlat_op_are_named_not_mapped(key, reason):
    with pytest.raises(UnmappedLutEntry, match=reason) as info:
        parse_lut_key(key)
    assert info.value.key == key


@pytest.mark.parametrize(
    "key, words",
    [
        ("AvgPool2D-input:7x7x960-output:7x7x960", "AvgPool2D output must be 1x1x960"),
        ("AvgPool2D-input:7x7x960-output:1x1x480", "AvgPool2D output must be 1x1x960"),
        ("Conv_2-input:7x7x960-output:7x7x1280", "Conv_2 .* is 1x1 in and out"),
        ("Conv_1-input:7x7x160-output:4x4x960", "keeps its 7x7 size"),
        ("Logits-input:7x7x1280-output:1000", "MobileNetV3 Logits input is 1x1xC"),
        ("Conv-input:64x64x3-output:33x33x16", "a 3x3 conv of 64x64 gives 32x32, not 33x33"),
        ("Conv-input:64x64x3-output:16x16x16", "Invalid stride=4 for .stem.; allowed: \\[1, 2\\]"),
        ("Conv-input:64x64x3-output:0x0x16", "every size must be >= 1"),
        ("Pool2D-input:7x7x960-output:1x1x960", "unknown type 'Pool2D'; known: Conv, expanded_conv, Conv_1, AvgPool2D"),
        ("expanded_conv-input:8x8x40-output:8x8x40-expand:240-kernel:5-stride:1-idskip:1-se:1", "expected"),
        ("expanded_conv-input:8x8x40-output:8x8x80-expand:240-kernel:5-stride:1-idskip:1-se:0-hs:0", "idskip:1 but"),
        ("expanded_conv-input:8x8x40-output:8x8x40-expand:240-kernel:5-stride:2-idskip:0-se:0-hs:0", "stride 2 does"),
        ("expanded_conv-input:8x8x40-output:8x8x40-expand:0-kernel:5-stride:1-idskip:1-se:0-hs:0", "must be >= 1"),
        ("Conv_1-input:7x7x160-output:7x7x960-expand:6-kernel:3-stride:1-idskip:0", "only expanded_conv keys have"),
        ("expanded_conv-input:28x28x40-output:28x28x40-expand:6-kernel:7-stride:1-idskip:1", "a proxyless key in a"),
    ],
)
def test_malformed_mbv3_keys_are_named(key, words):
    with pytest.raises(ValueError, match="Invalid LUT key") as info:
        parse_lut_key(key, MBV3)
    assert not isinstance(info.value, UnmappedLutEntry)
    assert key in str(info.value) and re.search(words, str(info.value)), str(info.value)


def test_mbv3_key_in_a_proxyless_table_is_refused():
    with pytest.raises(ValueError, match="Invalid LUT key .*a ofa-mbv3 key in a proxyless table"):
        parse_lut_key("AvgPool2D-input:7x7x960-output:1x1x960", "proxyless")
    with pytest.raises(ValueError, match="Invalid LUT dialect 'mbv3'; valid: proxyless, ofa-mbv3"):
        parse_lut_key("Conv-input:64x64x3-output:32x32x16", "mbv3")


def test_import_mbv3_table_sums_as_ofa_does(tmp_path):
    path = write(tmp_path / "note10.yaml", NET)
    store = LatencyStore(":memory:")
    report = import_lut_report(path, store, "note10")
    assert (report.dialect, report.entries, report.added, report.skipped) == (MBV3, 9, 9, ())
    rows = {r.op_key: r for r in store.measurements()}
    assert set(rows) == {op.key for op in NET_OPS}  # one op per entry; no head is composed
    ofa_total = sum(mean for mean, _ in NET.values())  # Conv + blocks + Conv_1 + AvgPool2D + Conv_2 + Logits
    assert sum(r.median_ms for r in rows.values()) == pytest.approx(ofa_total)
    for (mean, std), op in zip(NET.values(), NET_OPS):
        assert rows[op.key].mean_ms == pytest.approx(mean)
        assert rows[op.key].std_ms == pytest.approx(std)  # std is read as std, not as a variance
        assert rows[op.key].n == 50
    info = next(iter(store.devices().values()))
    assert info["device_key"] == "lut/t1/b1/fp32/name=note10"
    assert import_lut(path, store, "note10") == 0  # again: nothing new


def test_unmapped_entries_refuse_the_import_unless_skipped(tmp_path):
    entries = {**NET, SE_KEY: (0.9, 0.05), ODD_MID_KEY: (0.7, 0.05), NO_SKIP_KEY: (0.3, 0.01)}
    entries["expanded_conv-input:8x8x40-output:8x8x40-expand:200-kernel:3-stride:1-idskip:1-se:1-hs:0"] = (0.8, 0.1)
    path = write(tmp_path / "ofa.yaml", entries)
    db = tmp_path / "t.db"
    with LatencyStore(db) as store, pytest.raises(ValueError) as info:
        import_lut(path, store, "note10")
    msg = str(info.value)
    assert "4 of 13 entries (ofa-mbv3 dialect) have no hwlat op: 2 with se:1" in msg
    assert "1 with idskip:0 where hwlat's mbconv adds the identity shortcut" in msg and SE_KEY in msg
    assert "nothing was imported" in msg and "the other 9 (--skip-unmapped" in msg and "\n" not in msg
    assert not db.exists()
    with LatencyStore(db) as store:
        report = import_lut_report(path, store, "note10", skip_unmapped=True)
        assert (report.added, report.n_skipped) == (9, 4)
        assert report.skipped[0][0].startswith("se:1") and len(report.skipped[0][1]) == 2
        assert "2 with se:1" in report.skipped_text()
        assert {r.op_key for r in store.measurements()} == {op.key for op in NET_OPS}
        assert dict(next(iter(store.devices().values()))["extra"])["skipped_entries"] == "4"


def test_a_table_of_only_unmapped_entries_imports_nothing(tmp_path):
    path = write(tmp_path / "se.yaml", {SE_KEY: (0.9, 0.05)})
    with pytest.raises(ValueError, match="every one of its 1 entries has no hwlat op; nothing was imported"):
        import_lut(path, LatencyStore(":memory:"), "x", skip_unmapped=True)


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"mean": 1.0, "std": 0.1, "var": 0.01}, "has both 'var' and 'std'"),
        ({"mean": 1.0, "count": 5}, "has neither 'var' nor 'std'"),
        ({"mean": -1.0, "std": 0.1}, "mean=-1.0 must be a finite number >= 0"),
        ({"mean": float("nan"), "std": 0.1}, "mean=nan must be a finite number >= 0"),
        ({"mean": 1.0, "std": float("inf")}, "std=inf must be a finite number >= 0"),
        ({"mean": 1.0, "std": "small"}, "std='small' must be a finite number >= 0"),
        ({"mean": 1.0, "std": 0.1, "count": -3}, "count=-3 must be a whole number >= 0"),
    ],
)
@pytest.mark.parametrize("key", [list(NET)[3], SE_KEY])  # a skipped entry's numbers are checked too
def test_bad_numbers_name_the_entry_and_import_nothing(tmp_path, entry, words, key):
    path = write(tmp_path / "bad.yaml", {**NET, key: entry})
    store = LatencyStore(":memory:")
    with pytest.raises(ValueError) as info:
        import_lut(path, store, "x", skip_unmapped=True)
    assert (
        f"entry {key!r}" in str(info.value) and words in str(info.value) and "nothing was imported" in str(info.value)
    )
    assert len(store) == 0 and store.devices() == {}


def test_two_entries_for_one_op_are_refused(tmp_path):
    twin = "Conv_1-input:1x1x240-output:1x1x1280"  # a Conv_1 at 1x1 is the Conv_2 of the same shape
    path = write(tmp_path / "twin.yaml", {**NET, twin: (0.2, 0.01)})
    with pytest.raises(
        ValueError, match=rf"entries 'Conv_2-input:1x1x240-output:1x1x1280' and '{twin}' are the same op"
    ):
        import_lut(path, LatencyStore(":memory:"), "x")


def test_forced_dialect_and_var_spread(tmp_path):
    shared = {k: v for k, v in NET.items() if k.startswith(("Conv-", "Conv_1"))}
    path = write(tmp_path / "v.yaml", shared, spread="var")
    store = LatencyStore(":memory:")
    assert import_lut_report(path, store, "a", dialect=MBV3).added == 2
    assert {r.op_key for r in store.measurements()} == {NET_OPS[0].key, NET_OPS[5].key}  # hswish, as MobileNetV3's
    assert next(iter(store.measurements())).std_ms == pytest.approx(0.02)  # var 0.0004 -> std 0.02
    with pytest.raises(ValueError, match=r"a ofa-mbv3 key in a proxyless table.*nothing was imported"):
        import_lut(write(tmp_path / "n.yaml", NET), store, "b", dialect="proxyless")
    with pytest.raises(ValueError, match="Invalid LUT dialect 'ofa'"):
        import_lut(path, store, "c", dialect="ofa")


def test_export_mbv3_writes_what_import_reads_back(tmp_path):
    predictor = TablePredictor()
    out = export_lut(predictor, NET_OPS, tmp_path / "lut.yaml", dialect=MBV3)
    exported = yaml.safe_load(out.read_text())
    assert list(exported) == list(NET)
    for key, ms in zip(NET, predictor.predict(NET_OPS)):
        assert exported[key] == {"count": 0, "mean": pytest.approx(ms), "std": 0.0}, key
    store = LatencyStore(":memory:")
    assert import_lut(out, store, "exported") == len(NET_OPS)
    assert {r.op_key: r.median_ms for r in store.measurements()} == {
        op.key: pytest.approx(ms) for op, ms in zip(NET_OPS, predictor.predict(NET_OPS))
    }


@pytest.mark.parametrize("kinds", [("head", "pwconv", "gap"), ("head",)])
def test_export_mbv3_splits_a_head_keeping_its_total(tmp_path, kinds):
    predictor = TablePredictor(kinds)
    head = OpSpec("head", cin=40, mid=240, cout=1000, h=8, w=8, act="hswish")
    exported = yaml.safe_load(export_lut(predictor, [head], tmp_path / "h.yaml", dialect=MBV3).read_text())
    keys = [
        "Conv_1-input:8x8x40-output:8x8x240",
        "AvgPool2D-input:8x8x240-output:1x1x240",
        "Logits-input:1x1x240-output:1000",
    ]
    assert list(exported) == keys  # hwlat's head has no feature mix after the pooling: no Conv_2
    total = predictor.predict([head])[0]
    assert sum(e["mean"] for e in exported.values()) == pytest.approx(total)
    mix, pool = NET_OPS[5], NET_OPS[6]
    if "pwconv" in kinds:
        assert exported[keys[0]]["mean"] == pytest.approx(predictor.predict([mix])[0])
        assert exported[keys[1]]["mean"] == pytest.approx(predictor.predict([pool])[0])
    else:  # no part models: the whole head is Conv_1, as the ProxylessNAS export does
        assert exported[keys[0]]["mean"] == pytest.approx(total)
        assert exported[keys[1]]["mean"] == exported[keys[2]]["mean"] == 0.0


def test_export_mbv3_refuses_two_ops_with_one_key(tmp_path):
    relu = NET_OPS[2]
    with pytest.raises(ValueError, match=r"act=relu6 have the same ofa-mbv3 LUT key 'expanded_conv-input:32x32x16"):
        export_lut(TablePredictor(), [relu, relu.replace(act="relu6")], tmp_path / "x.yaml", dialect=MBV3)
    with pytest.raises(ValueError, match="has no Once-for-All MobileNetV3 LUT key"):
        export_lut(TablePredictor(), [OpSpec("dwconv", cin=8, h=8, w=8, kernel=3)], tmp_path / "y.yaml", dialect=MBV3)
    assert not (tmp_path / "y.yaml").exists()


def test_fitted_pixel1_predictor_exports_the_mbconv_backbone_as_mbv3(tmp_path):
    from pathlib import Path

    from hwlat.predict import LatencyPredictor
    from hwlat.spaces import get_space

    pixel1 = Path(__file__).resolve().parents[1] / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml"
    store = LatencyStore(":memory:")
    import_lut(pixel1, store, "pixel1")
    p = LatencyPredictor(model="prior+gbr").fit_table(store)
    ops = [op for op in get_space("mbconv-backbone").configs() if op.kind in DIALECT_KINDS[MBV3]]
    out = export_lut(p, ops, tmp_path / "mbv3.yaml", dialect=MBV3)
    entries = read_lut(out)
    assert detect_dialect(entries) == MBV3 and all(set(e) == {"count", "mean", "std"} for e in entries.values())
    assert sum(k.startswith("expanded_conv") and k.endswith("-se:0-hs:0") for k in entries) == 69
    assert {k.split("-")[0] for k in entries} == {"Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Logits"}
    # the published means come back through the predictor; relu6 blocks are written hs:0
    published = read_lut(pixel1)
    block = "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0"
    mbv3_block = "expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:5-stride:2-idskip:0-se:0-hs:0"
    assert entries[mbv3_block]["mean"] == pytest.approx(published[block]["mean"], rel=0.05)
    head = next(op for op in ops if op.kind == "head")
    tail = [k for k in entries if k.startswith(("Conv_1", "AvgPool2D", "Logits"))]
    assert sum(entries[k]["mean"] for k in tail) == pytest.approx(p.predict([head])[0])
    again = LatencyStore(":memory:")
    assert import_lut(out, again, "mbv3") == len(entries)
    rows = {r.op_key: r.median_ms for r in again.measurements()}
    assert math.isclose(sum(rows.values()), sum(e["mean"] for e in entries.values()), rel_tol=1e-9)


def test_proxyless_keys_keep_the_same_rules():
    # a zero size was a ZeroDivisionError, an idskip:0 block with a fitting shortcut a silent mbconv with one
    with pytest.raises(ValueError, match="Invalid LUT key .*every size must be >= 1"):
        parse_lut_key("Conv-input:224x224x3-output:0x0x32")
    with pytest.raises(UnmappedLutEntry, match="idskip:0 where hwlat's mbconv adds the identity shortcut"):
        parse_lut_key("expanded_conv-input:28x28x40-output:28x28x40-expand:6-kernel:7-stride:1-idskip:0")
    with pytest.raises(UnmappedLutEntry, match=r"expansion ratio 4 \(mbconv allows 1, 3, 6\)"):
        parse_lut_key("expanded_conv-input:28x28x40-output:28x28x40-expand:4-kernel:7-stride:1-idskip:1")
