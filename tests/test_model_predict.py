"""hwlat.predict.model: a whole model predicted kernel by kernel, and what it lacks named, never costed 0 ms."""

import math
from pathlib import Path

import numpy as np
import pytest

from hwlat.graph import detect_kernels, item_graph, load_model
from hwlat.predict.model import MissingKernelsError, assign_kernels, kernel_specs, predict_model
from hwlat.zoo import get_network

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "datasets_lat" / "onnxruntime-cpu_mbconv.csv"  # mbconv blocks, a stem, a head, 200 networks


def ort_predictor(tmp_path_factory):
    """A predictor fitted once per session on the shipped ONNX Runtime table (saved, so other files load it)."""
    from hwlat.predict import LatencyPredictor, load_predictor, save_predictor
    from hwlat.store import LatencyStore

    path = tmp_path_factory.getbasetemp() / "ort-mbconv-predictor.skops"
    if path.exists():
        return load_predictor(path)
    with LatencyStore(tmp_path_factory.getbasetemp() / "ort-mbconv.db") as store:
        if not list(store.measurements()):
            store.import_files([TABLE])
        p = LatencyPredictor(model="prior").fit_table(store)
    save_predictor(p, path)
    return p


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield ort_predictor(tmp_path_factory)


def test_the_predictor_knows_blocks_not_their_parts(predictor):
    assert predictor.kinds_ == ["head", "mbconv", "stem"]
    assert predictor.device_key_ == "onnxruntime-cpu/t1/b1/fp32"
    assert predictor.overhead_ms_ > 0  # calibrated on the table's network rows


@pytest.mark.parametrize("name", ["mobilenetv2", "proxyless-mobile", "proxyless-gpu"])
def test_a_zoo_network_predicts_as_predict_network(predictor, name):
    net = get_network(name)
    r = predict_model(predictor, net)
    assert abs(r.total_ms - predictor.predict_network(net)) < 1e-9
    # the kernels compose back into the network's own ops: the stem, each MBConv block, the head
    assert [u.spec.key for u in r.units] == [op.key for op in net.ops]
    assert [u.type for u in r.units] == ["conv", *(["mbconv"] * (len(net.ops) - 2)), "head"]
    assert not r.missing and r.macs == net.flops
    assert math.isclose(r.total_ms, r.scale * sum(u.ms for u in r.units) + r.overhead_ms, rel_tol=1e-12)
    per_op = predictor.predict(list(net.ops))
    np.testing.assert_allclose([u.ms for u in r.units], per_op, rtol=1e-12)
    assert r.device_key == predictor.device_key_


def test_the_same_network_as_a_file_a_graph_or_through_the_method(predictor, tmp_path):
    from hwlat.devices.onnxruntime import export_onnx

    net = get_network("mobilenetv2")
    expected = predictor.predict_network(net)
    as_file = load_model(export_onnx(net, 1))
    assert abs(predict_model(predictor, as_file).total_ms - expected) < 1e-9
    assert abs(predict_model(predictor, item_graph(net)).total_ms - expected) < 1e-9
    assert abs(predictor.predict_model(net).total_ms - expected) < 1e-9


def test_missing_kernels_are_named_never_zero(predictor):
    net = get_network("resnet18")
    with pytest.raises(MissingKernelsError) as err:
        predict_model(predictor, net)
    msg = str(err.value)
    r = err.value.prediction
    ks = detect_kernels(item_graph(net), device=predictor.device_key_)
    convs = [k for k in ks if k.type == "conv" and k.input_shape[1] != 3]
    conv_share = sum(k.macs for k in convs) / ks.macs
    assert "\n" not in msg
    assert msg.startswith(
        f"resnet18: the predictor for onnxruntime-cpu/t1/b1/fp32 cannot predict 22 of {len(ks)} kernels"
    )
    assert f"conv x{len(convs)} ({100 * conv_share:.1f} % of MACs: no data for op kind conv)" in msg
    assert "maxpool x1" in msg and "linear x1" in msg and "gap x1" in msg
    assert "`hwlat measure --model resnet18 --kernels --device onnxruntime-cpu --db TABLE` and re-fit" in msg
    assert msg.endswith("--allow-missing predicts the rest")
    # the 3-channel 7x7 first convolution is a stem, which the table has
    assert [u.spec.kind for u in r.known] == ["stem"]
    rows = r.missing_summary()
    assert rows[0][:2] == ("conv", len(convs)) and math.isclose(rows[0][2], conv_share)
    assert math.isclose(sum(s for _, _, s, _ in rows) + r.known[0].macs / r.macs, 1.0)
    assert all(math.isnan(u.ms) for u in r.missing)


def test_allow_missing_predicts_the_known_part(predictor):
    r = predict_model(predictor, get_network("resnet18"), allow_missing=True)
    known = r.known[0]
    first = get_network("resnet18").ops[0]  # conv:cin=3,...: the same geometry stands as a stem
    assert first.kind == "conv" and known.spec.key == "stem:" + first.key.partition(":")[2]
    assert r.total_ms == pytest.approx(r.scale * known.ms + r.overhead_ms, rel=1e-12)
    assert r.total_ms == pytest.approx(predictor.predict([known.spec])[0] + predictor.overhead_ms_, rel=1e-12)
    assert len(r.missing) == 22


def test_kernels_without_an_op_kind_say_no_table_covers_them(predictor):
    from test_kernels import node, onnx_graph, weight  # the same hand-built SE block

    nodes = [
        node("GlobalAveragePool", ["x"], ["p"], "gap"),
        node("Conv", ["p", "w1"], ["c1"], "fc1", kernel_shape=[1, 1]),
        node("Relu", ["c1"], ["r"], "relu"),
        node("Conv", ["r", "w2"], ["c2"], "fc2", kernel_shape=[1, 1]),
        node("Sigmoid", ["c2"], ["s"], "gate"),
        node("Mul", ["x", "s"], ["y"], "scale"),
    ]
    g = onnx_graph(
        nodes, {"x": [1, 16, 8, 8]}, {"y": [1, 16, 8, 8]}, [weight("w1", 4, 16, 1, 1), weight("w2", 16, 4, 1, 1)]
    )
    # the SE block has an op kind (se) but the MBConv table has no data for it: measuring fills it
    with pytest.raises(MissingKernelsError) as err:
        predict_model(predictor, g)
    assert "cannot predict 1 of 1 kernels (100.0 % of MACs): se x1 (100.0 % of MACs: no data for op kind se)" in str(
        err.value
    )
    assert "--kernels --device onnxruntime-cpu --db TABLE` and re-fit" in str(err.value)
    hint = predict_model(predictor, g, allow_missing=True)
    assert hint.known == [] and hint.total_ms == pytest.approx(predictor.overhead_ms_)
    with pytest.raises(MissingKernelsError, match="; measure it yourself; --allow-missing"):
        predict_model(predictor, g, measure_hint="measure it yourself")
    # a transpose that reverses three axes has no op kind at all (one that swaps two groups of axes is a
    # `transpose`): no table can cover it
    t = onnx_graph(
        [node("Transpose", ["x"], ["y"], "t", perm=[0, 3, 2, 1])], {"x": [1, 16, 8, 4]}, {"y": [1, 4, 8, 16]}
    )
    with pytest.raises(MissingKernelsError) as err:
        predict_model(predictor, t)
    assert "transpose x1 (0.0 % of MACs: a transpose that is not a swap of two groups of axes" in str(err.value)
    assert "they have no op kind yet, so no table can cover them" in str(err.value)


def test_breakdown_is_sorted_with_shares(predictor):
    r = predict_model(predictor, get_network("mobilenetv2"))
    lines = r.breakdown().splitlines()
    assert lines[0].split() == ["kernel", "type", "op", "kind", "ms", "%", "time", "%", "MACs"]
    ms = [float(line.split()[-3]) for line in lines[1:]]
    assert len(ms) == len(r.units) and ms == sorted(ms, reverse=True)
    assert sum(float(line.split()[-2]) for line in lines[1:]) == pytest.approx(100, abs=0.1 * len(ms))
    assert sum(float(line.split()[-1]) for line in lines[1:]) == pytest.approx(100, abs=0.1 * len(ms))
    short = r.breakdown(limit=3).splitlines()
    assert len(short) == 5 and short[-1] == f"... {len(r.units) - 3} more kernels"


def test_kernel_specs_are_the_distinct_configs_to_measure(predictor):
    net = get_network("mobilenetv1")
    ks = detect_kernels(item_graph(net), device="onnxruntime-cpu")
    specs = kernel_specs(ks)
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)) == len({k.specs[0].key for k in ks if k.specs})
    assert {s.kind for s in specs} == {"conv", "dwconv", "pwconv", "gap", "linear"}
    # this predictor knows the stem and the head (1x1 conv + pool + linear, composed into one unit), not
    # mobilenetv1's depthwise-separable parts: those units name the kinds to measure
    units = assign_kernels(ks, predictor)
    assert [u.spec.kind for u in units if u.spec is not None] == ["stem", "head"]
    assert {u.why for u in units if u.spec is None} == {"no data for op kind pwconv", "no data for op kind dwconv"}
    assert len(units) == len(ks) - 2  # the head's three kernels are one unit


@pytest.mark.slow
def test_a_real_model_names_what_it_lacks(predictor, tmp_path_factory):
    from hwlat.graph.wheels import DownloadError, fixture_models

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        try:
            paths = {p.stem: p for p in fixture_models("rapidocr")}
        except DownloadError as exc:
            pytest.skip(f"pip cannot download the fixture wheels: {exc}")
        rec = load_model(paths["ch_PP-OCRv4_rec_infer"], input_shape="1x3x48x320")
    with pytest.raises(MissingKernelsError) as err:
        predict_model(predictor, rec)
    msg = str(err.value)
    assert msg.startswith("ch_PP-OCRv4_rec_infer: the predictor for onnxruntime-cpu/t1/b1/fp32 cannot predict")
    assert "attention x2" in msg and "no data for op kind attention" in msg
    assert f"hwlat measure --model {paths['ch_PP-OCRv4_rec_infer']} --kernels" in msg
    r = predict_model(predictor, rec, allow_missing=True)
    assert 0 < len(r.known) < len(r.units) and r.macs == rec.graph().macs


def test_the_readme_user_model_maps_every_kernel(monkeypatch):
    """examples/user_net.py, the README's own model: every kernel has an op kind on ONNX Runtime."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    model = load_model("user_net:build")
    assert model.input_shape == (1, 3, 192, 192)
    ks = detect_kernels(model.graph(), device="onnxruntime-cpu")
    specs = [k.specs[0] for k in ks.kernels if k.specs]
    assert len(specs) == len(ks.kernels)
    kinds = {s.kind for s in specs}
    assert {"conv", "dwconv", "pwconv", "se", "linear"} <= kinds  # the residual adds fuse into the pwconv
    assert {s.act for s in specs if s.kind == "dwconv"} == {"silu"}
    assert any(s.kind == "dwconv" and s.kernel == 5 and s.stride == 2 for s in specs)
