"""The command line with users' models: hwlat measure/predict/inspect/compare --model(s)."""

import csv
import hashlib
import shutil
import warnings

import pytest

from hwlat.cli.main import main
from hwlat.store import LatencyStore
from hwlat.zoo import get_network

BUDGET = ["--budget", "0.05"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ONNX files of two zoo networks (exported by hwlat, copied as a user's files) and a fitted predictor."""
    from test_model_predict import ort_predictor

    from hwlat.devices.onnxruntime import export_onnx
    from hwlat.predict import save_predictor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        root = tmp_path_factory.mktemp("user-files")
        digits = shutil.copy(export_onnx(get_network("mobilenet-digits"), 1), root / "digits.onnx")
        mnv2 = shutil.copy(export_onnx(get_network("mobilenetv2"), 1), root / "mnv2.onnx")
        predictor = save_predictor(ort_predictor(tmp_path_factory), root / "ort.skops")[0]
        yield {"digits": digits, "mnv2": mnv2, "predictor": predictor, "root": root}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(result, *needles):
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def rows(db):
    with LatencyStore(db, readonly=True) as store:
        return list(store.measurements())


def test_measure_a_model_file_with_provenance_and_resume(capsys, files, tmp_path):
    db = tmp_path / "t.db"
    code, out, _ = run(capsys, "measure", "--model", files["digits"], "--device", "fake", "--db", db, "-q")
    assert code == 0 and "fake/t1/b1/fp32: 1 measured, 0 already in" in out
    (m,) = rows(db)
    sha = hashlib.sha256(files["digits"].read_bytes()).hexdigest()
    assert m.kind == "model" and m.op_key == f"model:digits:{sha[:12]}:3x32x32"
    extra = dict(m.extra)
    assert extra["model_sha256"] == sha and extra["input_shape"] == "1x3x32x32"
    assert extra["model_format"] == "onnx" and extra["model_source"] == str(files["digits"])
    code, out, _ = run(capsys, "measure", "--model", files["digits"], "--device", "fake", "--db", db, "-q")
    assert code == 0 and "0 measured, 1 already in" in out
    # a file and a zoo name in one go: a model row next to a network row; the file is not measured again
    code, out, _ = run(
        capsys, "measure", "--model", f"{files['digits']},mobilenet-digits", "--device", "fake", "--db", db
    )
    assert code == 0 and "1 measured, 1 already in" in out
    assert sorted(m.kind for m in rows(db)) == ["model", "network"]
    # the exported file's batch is fixed at 1: another batch is refused, in one line, before measuring
    one_line_error(
        run(capsys, "measure", "--model", files["digits"], "--device", "fake/b2", "--db", db),
        "digits cannot run at batch 2",
        "input 'x' is fixed at 1x3x32x32",
    )
    assert len(rows(db)) == 2


def test_measure_a_dynamic_model_needs_input_shape(capsys, tmp_path):
    from test_graph_import import relu_model, save

    path = save(relu_model(["N", 3, "H", "W"]), tmp_path / "dyn.onnx")
    db = tmp_path / "d.db"
    line = one_line_error(
        run(capsys, "measure", "--model", path, "--device", "fake", "--db", db),
        "has dynamic dimensions",
        "--input-shape",
    )
    assert line.startswith("hwlat measure: error: ")
    assert not db.exists()
    code, out, _ = run(capsys, "measure", "--model", path, "--input-shape", "1x3x16x16", "--device", "fake", "--db", db)
    assert code == 0 and "1 measured" in out
    (m,) = rows(db)
    assert m.op_key.endswith(":3x16x16") and dict(m.extra)["input_shape"] == "1x3x16x16"
    # a dynamic batch runs at the device's: another device key, the same model key
    code, out, _ = run(
        capsys, "measure", "--model", path, "--input-shape", "1x3x16x16", "--device", "fake/b2", "--db", db
    )
    assert code == 0 and "fake/t1/b2/fp32: 1 measured" in out
    assert {r.device_key: r.op_key for r in rows(db)} == {"fake/t1/b1/fp32": m.op_key, "fake/t1/b2/fp32": m.op_key}
    one_line_error(
        run(capsys, "measure", "--space", "pwconv", "--input-shape", "1x3x8x8", "--device", "fake", "--db", db),
        "--input-shape applies to --model files and modules",
    )
    one_line_error(
        run(capsys, "measure", "--model", path, "--networks", "mobilenetv2", "--device", "fake", "--db", db),
        "give one of --model, --networks or --space",
    )


def test_nothing_is_written_when_a_model_fails(capsys, files, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(files["digits"].read_bytes()[:5000])
    db = tmp_path / "t.db"
    one_line_error(
        run(capsys, "measure", "--model", f"mobilenet-digits,{bad}", "--device", "fake", "--db", db),
        "bad.onnx: not a readable ONNX file (corrupt or truncated?)",
    )
    assert not db.exists()
    one_line_error(
        run(capsys, "measure", "--model", files["digits"], "--device", "torch-cpu", "--db", db),
        "digits is a .onnx file, which torch-cpu does not run; measure it on onnxruntime-cpu",
    )
    assert not db.exists() or rows(db) == []
    # the check comes before anything is measured: the zoo network given with it is not measured either
    one_line_error(
        run(capsys, "measure", "--model", f"mobilenet-digits,{files['digits']}", "--device", "litert-cpu", "--db", db),
        "which litert-cpu does not run",
    )
    assert not db.exists() or rows(db) == []


def test_measure_on_onnxruntime_as_the_file_is(capsys, files, tmp_path):
    db = tmp_path / "ort.db"
    argv = ["measure", "--model", files["digits"], "--device", "onnxruntime-cpu", "--db", db, "--protocol", "fixed"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "onnxruntime-cpu/t1/b1/fp32: 1 measured" in out
    (m,) = rows(db)
    assert m.kind == "model" and m.n >= 50 and 0 < m.median_ms < 50
    assert dict(m.extra)["model_sha256"] == hashlib.sha256(files["digits"].read_bytes()).hexdigest()
    assert run(capsys, *argv)[1].startswith("onnxruntime-cpu/t1/b1/fp32: 0 measured, 1 already in")


def test_kernels_measure_fit_predict_loop(capsys, files, tmp_path):
    """A predictor that lacks a model's kernels says what to measure; measuring them makes it predict."""
    db, pred = tmp_path / "k.db", tmp_path / "k.skops"
    code, out, _ = run(capsys, "measure", "--model", "mobilenetv1", "--kernels", "--device", "fake", "--db", db, "-q")
    assert code == 0
    assert out.splitlines()[0] == "mobilenetv1: 29 kernels, 21 distinct op configs to measure"
    assert "21 measured" in out.splitlines()[1]
    assert len(rows(db)) == 21 and {m.kind for m in rows(db)} == {"conv", "dwconv", "pwconv", "gap", "linear"}
    assert run(capsys, "fit", "--table", db, "--out", pred, "--model", "prior")[0] == 0
    code, out, _ = run(capsys, "predict", "--predictor", pred, "--model", "mobilenetv1", "--kernels")
    assert code == 0
    head = out.splitlines()[0]
    assert head.startswith("mobilenetv1: ") and "ms predicted on fake/t1/b1/fp32 (29 kernels, 568.8 MMACs" in head
    table = out.splitlines()[1:]
    assert table[0].split()[:3] == ["kernel", "type", "op"] and len(table) == 30
    one_line_error(run(capsys, "measure", "--kernels", "--device", "fake", "--db", db), "--kernels needs --model")


def test_predict_names_what_is_missing(capsys, files):
    p = files["predictor"]
    code, out, _ = run(capsys, "predict", "--predictor", p, "--model", f"{files['mnv2']},mobilenetv2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("mnv2: 7.") and lines[0].split()[1] == lines[1].split()[1]  # the file = the network
    assert lines[1].startswith("mobilenetv2: ") and "(19 kernels, 300.8 MMACs" in lines[1]
    line = one_line_error(
        run(capsys, "predict", "--predictor", p, "--model", "resnet18"),
        "resnet18: the predictor for onnxruntime-cpu/t1/b1/fp32 cannot predict 22 of 23 kernels (93.5 % of MACs)",
        "conv x19 (93.4 % of MACs: no data for op kind conv)",
        "hwlat measure --model resnet18 --kernels --device onnxruntime-cpu --db TABLE",
    )
    assert line.endswith("--allow-missing predicts the rest")
    code, out, _ = run(capsys, "predict", "--predictor", p, "--model", "resnet18", "--allow-missing")
    assert code == 0
    assert "for the 1 kernels it covers (23 kernels, 1815.9 MMACs" in out.splitlines()[0]
    assert out.splitlines()[1] == "  missing (22 kernels, 93.5 % of MACs, not in the total):"
    assert "    conv x19: 93.4 % of MACs (no data for op kind conv)" in out.splitlines()
    one_line_error(run(capsys, "predict", "--predictor", p), "give --network (hwlat networks) or --model")
    one_line_error(
        run(capsys, "predict", "--predictor", p, "--network", "mobilenetv2", "--kernels"),
        "--kernels, --allow-missing and --input-shape go with --model",
    )


def test_inspect_shows_kernels_without_a_predictor(capsys, files):
    code, out, _ = run(capsys, "inspect", "--model", files["mnv2"], "--device", "onnxruntime-cpu")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "mnv2 (onnx, input 1x3x224x224): 99 nodes, 300.8 M MACs, 3.49 M params"
    assert lines[1] == "  sha256 " + hashlib.sha256(files["mnv2"].read_bytes()).hexdigest()
    assert lines[2] == "  ops: conv x52, relu6 x35, add x10, reduce_mean x1, gemm x1"
    assert lines[3].startswith("  54 kernels with the onnxruntime rules (onnxruntime-cpu), 0 free nodes; 54 kernels")
    assert lines[5].split()[-1] == "conv:cin=3,cout=32,h=224,w=224,kernel=3,stride=2,act=relu6"
    assert lines[-1] == "  ... 29 more"
    code, out, _ = run(capsys, "inspect", "--model", files["mnv2"], "--all", "--device", "torch-cpu")
    assert code == 0 and len(out.splitlines()) == 4 + 1 + 52 + 35 + 10 + 2
    code, out, _ = run(capsys, "inspect", "--rules", "--device", "litert-cpu")
    assert code == 0 and out.startswith("rule set litert\n  free: ")
    one_line_error(run(capsys, "inspect"), "give --model (or --rules to print the kernel rules)")


def test_compare_a_file_and_a_zoo_name_with_predictions(capsys, files, tmp_path):
    out_dir = tmp_path / "cmp"
    argv = [
        "compare",
        "--models",
        f"{files['mnv2']},mobilenet-digits",
        "--devices",
        "onnxruntime-cpu,fake",
        "--predictors",
        f"onnxruntime-cpu={files['predictor']}",
        "--out",
        out_dir,
        "-q",
        *BUDGET,
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, _ = run(capsys, *argv)
    assert code == 0 and "4 measured, 0 already in" in out
    assert any("no prediction of mobilenet-digits on onnxruntime-cpu" in str(w.message) for w in caught)
    with open(out_dir / "compare.csv") as f:
        table = {(r["model"], r["device"]): r for r in csv.DictReader(f)}
    assert set(table) == {(m, d) for m in ("mnv2", "mobilenet-digits") for d in ("onnxruntime-cpu", "fake")}
    assert float(table["mnv2", "onnxruntime-cpu"]["predicted_ms"]) == pytest.approx(
        files_predictor_total(files), abs=1e-9
    )
    assert table["mobilenet-digits", "onnxruntime-cpu"]["predicted_ms"] == ""
    assert all(float(r["median_ms"]) > 0 for r in table.values())
    assert float(table["mnv2", "onnxruntime-cpu"]["mmacs"]) == pytest.approx(300.836992)
    md = (out_dir / "compare.md").read_text()
    assert "| mnv2 | 301 |" in md and "| mobilenet-digits | 3 |" in md
    with pytest.warns(UserWarning, match="no prediction of mobilenet-digits"):
        code, out, _ = run(capsys, *argv)
    assert code == 0 and "0 measured, 4 already in" in out


def files_predictor_total(files):
    from hwlat.predict import load_predictor

    return load_predictor(files["predictor"]).predict_network(get_network("mobilenetv2"))


@pytest.mark.slow
def test_a_corrupt_exported_program_is_one_line(tmp_path):
    from conftest import run_cli

    (tmp_path / "bad.pt2").write_bytes(b"zzzz" * 100)
    proc = run_cli("measure", "--model", str(tmp_path / "bad.pt2"), "--device", "fake", "--db", str(tmp_path / "t.db"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"hwlat measure: error: {tmp_path / 'bad.pt2'}: not a readable exported program")


# ------------------------------------------------------------------ real files out of PyPI wheels
@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    from hwlat.graph.wheels import DownloadError, fixture_models

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HWLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        try:
            yield {p.stem: p for name in ("mediapipe", "rapidocr") for p in fixture_models(name)}
        except DownloadError as exc:
            pytest.skip(f"pip cannot download the fixture wheels: {exc}")


@pytest.mark.slow
def test_wheel_models_measure_on_their_runtimes(capsys, wheel_files, tmp_path):
    db = tmp_path / "w.db"
    cls, recrop = wheel_files["ch_ppocr_mobile_v2.0_cls_infer"], wheel_files["hand_recrop"]
    code, out, _ = run(
        capsys,
        "measure",
        "--model",
        cls,
        "--input-shape",
        "1x3x48x192",
        "--device",
        "onnxruntime-cpu",
        "--db",
        db,
        "-q",
    )
    assert code == 0 and "1 measured" in out
    code, out, _ = run(capsys, "measure", "--model", recrop, "--device", "litert-cpu", "--db", db, "-q", *BUDGET)
    assert code == 0 and "litert-cpu/t1/b1/fp32: 1 measured" in out
    by_format = {dict(m.extra)["model_format"]: m for m in rows(db)}
    assert set(by_format) == {"onnx", "tflite"}
    assert dict(by_format["onnx"].extra)["input_shape"] == "1x3x48x192"
    assert dict(by_format["tflite"].extra)["input_shape"] == "1x256x256x3"
    assert dict(by_format["tflite"].extra)["model_sha256"] == hashlib.sha256(recrop.read_bytes()).hexdigest()
    assert all(m.median_ms > 0 for m in by_format.values())
    # the custom op LiteRT cannot resolve: one line, nothing measured
    custom = wheel_files["face_landmark_with_attention"]
    one_line_error(
        run(capsys, "measure", "--model", custom, "--device", "litert-cpu", "--db", db),
        "Landmarks2TransformMatrix",
        "face_landmark_with_attention.tflite",
    )
    assert len(rows(db)) == 2


@pytest.mark.slow
def test_compare_a_tflite_and_an_onnx_file_with_na_cells(capsys, files, wheel_files, tmp_path):
    out_dir = tmp_path / "cmp"
    models = f"{files['digits']},{wheel_files['hand_recrop']},mobilenet-digits"
    argv = ["compare", "--models", models, "--devices", "onnxruntime-cpu,litert-cpu", "--out", out_dir, "-q", *BUDGET]
    code, out, _ = run(capsys, *argv)
    assert code == 0, out
    with open(out_dir / "compare.csv") as f:
        table = {(r["model"], r["device"]): r for r in csv.DictReader(f)}
    assert table["hand_recrop", "onnxruntime-cpu"]["median_ms"] == ""
    assert (
        "hand_recrop is a .tflite file, which onnxruntime-cpu does not run"
        in table["hand_recrop", "onnxruntime-cpu"]["note"]
    )
    assert table["digits", "litert-cpu"]["median_ms"] == ""
    for cell in (("hand_recrop", "litert-cpu"), ("digits", "onnxruntime-cpu"), ("mobilenet-digits", "litert-cpu")):
        assert float(table[cell]["median_ms"]) > 0, cell
    assert "n/a †" in (out_dir / "compare.md").read_text()


@pytest.mark.slow
def test_input_shape_for_the_onnx_file_does_not_break_the_tflite_one(capsys, wheel_files, tmp_path):
    from hwlat.workflows import resolve_models

    models = resolve_models(
        f"{wheel_files['ch_ppocr_mobile_v2.0_cls_infer']},{wheel_files['hand_recrop']}", input_shape="1x3x48x192"
    )
    assert [m.input_shape for m in models] == [(1, 3, 48, 192), (1, 256, 256, 3)]


def test_measure_auto_space_on_the_fake_device(tmp_path, capsys):
    from hwlat.cli.main import main
    from hwlat.store import LatencyStore

    db = tmp_path / "t.db"
    args = ["measure", "--device", "fake", "--space", "auto:mobilenetv2-w0.35-r128", "--n", "24", "--db", str(db)]
    assert main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "round 0: 12 measured from the prior" in out and "round 2:" in out
    with LatencyStore(db) as store:
        first = set(store.frame()["op_key"])
    assert len(first) == 24
    assert main([*args, "--quiet"]) == 0  # 24 more, none of them a row already there
    assert "24 of these kinds were there already" in capsys.readouterr().out
    with LatencyStore(db) as store:
        assert len(set(store.frame()["op_key"])) == 48
    assert main(["measure", "--device", "fake", "--space", "auto:", "--db", str(tmp_path / "u.db")]) != 0
    assert "needs models" in capsys.readouterr().err
