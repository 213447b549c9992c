from pathlib import Path

import pytest
import yaml

from hwlat.formats.lut import export_lut, import_lut, lut_key, parse_lut_key, read_lut
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor
from hwlat.store import LatencyStore

PIXEL1 = Path(__file__).resolve().parents[1] / "datasets_lat" / "published" / "proxylessnas_mobile_trim.yaml"


@pytest.mark.parametrize(
    "key, op",
    [
        ("Conv-input:224x224x3-output:112x112x32", OpSpec("stem", cin=3, cout=32, h=224, w=224, kernel=3, stride=2)),
        (
            "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0",
            OpSpec("mbconv", cin=16, cout=24, h=112, w=112, kernel=5, stride=2, expand=3),
        ),
        (
            "expanded_conv-input:28x28x40-output:28x28x40-expand:6-kernel:7-stride:1-idskip:1",
            OpSpec("mbconv", cin=40, cout=40, h=28, w=28, kernel=7, stride=1, expand=6),
        ),
        ("Conv_1-input:7x7x320-output:7x7x1280", OpSpec("pwconv", cin=320, cout=1280, h=7, w=7)),
        ("Logits-input:7x7x1280-output:1000", OpSpec("head", cin=1280, cout=1000, h=7, w=7)),
    ],
)
def test_key_grammar_both_ways(key, op):
    assert parse_lut_key(key) == op
    assert lut_key(op) == key


@pytest.mark.parametrize(
    "bad",
    [
        "Conv",
        "Foo-input:7x7x3-output:7x7x3",
        "expanded_conv-input:7x7x8-output:7x7x8",
        "expanded_conv-input:28x28x40-output:28x28x80-expand:6-kernel:7-stride:1-idskip:1",
        "expanded_conv-input:28x28x40-output:14x14x40-expand:6-kernel:7-stride:1-idskip:0",
    ],
)
def test_bad_keys_are_named(bad):
    with pytest.raises(ValueError, match="Invalid LUT key"):
        parse_lut_key(bad)


def test_import_pixel1_table():
    store = LatencyStore(":memory:")
    assert import_lut(PIXEL1, store, "pixel1") == 73  # 72 entries + the composed head
    assert import_lut(PIXEL1, store, "pixel1") == 0
    df = store.frame()
    assert (df["device_key"] == "lut/t1/b1/fp32/name=pixel1").all()
    stem = df[df["kind"] == "stem"].iloc[0]
    assert stem["median_ms"] == pytest.approx(4.083755600814664)
    assert stem["std_ms"] == pytest.approx(0.2502372872758427**0.5)
    head = df[(df["kind"] == "head") & df["op_key"].str.contains("mid=1280")].iloc[0]
    assert head["median_ms"] == pytest.approx(3.088623217922607 + 0.3096415478615071)


def test_import_export_import_round_trip(tmp_path):
    store = LatencyStore(":memory:")
    import_lut(PIXEL1, store, "pixel1")
    p = LatencyPredictor(model="prior+gbr").fit_table(store)
    original = read_lut(PIXEL1)
    ops = [parse_lut_key(k) for k in original if not k.startswith(("Conv_1", "Logits"))]
    ops.append(OpSpec("head", cin=320, mid=1280, cout=1000, h=7, w=7))
    out = export_lut(p, ops, tmp_path / "lut.yaml")
    exported = yaml.safe_load(out.read_text())
    assert set(exported) == set(original)
    for key, entry in original.items():  # the predictor fitted on the table reproduces it
        assert exported[key]["mean"] == pytest.approx(entry["mean"], rel=0.05), key
    again = LatencyStore(":memory:")
    assert import_lut(out, again, "exported") == 73
    a = {r.op_key: r.median_ms for r in store.measurements()}
    b = {r.op_key: r.median_ms for r in again.measurements()}
    assert a.keys() == b.keys()
    assert b[ops[-1].key] == pytest.approx(p.predict([ops[-1]])[0])
