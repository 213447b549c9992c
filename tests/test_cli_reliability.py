"""Issue #12 (CLI side): no output path replaces a latency table, bad options are one line, Ctrl-C at start-up.

Commands run in this process through ``hwlat.cli.main`` (what ``python -m hwlat.cli`` calls), so a
traceback would fail the test by escaping; every bad input also leaves the files on disk as they were.
"""

import hashlib
import importlib
import json

import pytest

from hwlat.cli import main

cli = importlib.import_module("hwlat.cli.main")  # the module (``hwlat.cli.main`` the attribute is the function)


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(capsys, args, *needles, rc=2):
    code, out, err = run(capsys, *args)
    assert code == rc, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    db = tmp_path_factory.mktemp("rel") / "dig.db"
    assert main(["measure", "--device", "fake", "--space", "pwconv", "--n", "25", "--db", str(db), "-q"]) == 0
    return db


@pytest.fixture(scope="module")
def predictor(table):
    out = table.parent / "p.skops"
    assert main(["fit", "--table", str(table), "--out", str(out), "--model", "prior"]) == 0
    return out


# ----------------------------------------------------------------- item 1
def test_fit_never_overwrites_a_latency_table(capsys, tmp_path, table):
    good = tmp_path / "good.db"
    good.write_bytes(table.read_bytes())  # a second table, as a user has
    before = digest(good)
    for force in ([], ["--force"]):
        one_line(
            capsys,
            ["fit", "--table", str(table), "--out", str(good), "--model", "prior", *force],
            f"--out {good}",
            "is a latency table",
            "even with --force",
        )
        assert digest(good) == before and not (tmp_path / "good.db.json").exists()


def test_fit_needs_force_for_a_file_that_is_not_a_predictor(capsys, tmp_path, table, predictor):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    one_line(
        capsys,
        ["fit", "--table", str(table), "--out", str(notes), "--model", "prior"],
        "not a predictor written by hwlat",
        "--force",
    )
    assert notes.read_text() == "my notes\n" and not (tmp_path / "notes.txt.json").exists()
    # its metadata name taken by a table: refused, even with --force
    side = tmp_path / "q.skops"
    (tmp_path / "q.skops.json").write_bytes(table.read_bytes())
    one_line(
        capsys,
        ["fit", "--table", str(table), "--out", str(side), "--model", "prior", "--force"],
        "q.skops.json",
        "is a latency table",
    )
    assert not side.exists() and digest(tmp_path / "q.skops.json") == digest(table)
    # --force replaces the notes; an existing predictor of ours is replaced without it
    assert run(capsys, "fit", "--table", str(table), "--out", str(notes), "--model", "prior", "--force")[0] == 0
    assert notes.read_bytes()[:2] == b"PK"
    again = tmp_path / "again.skops"
    for _ in range(2):
        assert run(capsys, "fit", "--table", str(table), "--out", str(again), "--model", "prior")[0] == 0


def test_lut_export_and_evaluate_never_overwrite_a_table(capsys, tmp_path, table, predictor):
    good = tmp_path / "good.db"
    good.write_bytes(table.read_bytes())
    before = digest(good)
    for force in ([], ["--force"]):
        one_line(
            capsys,
            ["lut", "export", "--predictor", str(predictor), "--space", "pwconv", "--out", str(good), *force],
            "is a latency table",
        )
    assert digest(good) == before
    config = tmp_path / "config.yaml"
    config.write_text("lr: 0.1\n")
    lut_args = ["lut", "export", "--predictor", str(predictor), "--space", "pwconv", "--out", str(config)]
    one_line(capsys, lut_args, "not a LUT written by hwlat", "--force")
    assert config.read_text() == "lr: 0.1\n"
    # evaluate --out is a folder: a table given there, or a table named evaluation.md inside it, stays
    one_line(
        capsys,
        ["evaluate", "--predictor", str(predictor), "--table", str(table), "--out", str(good)],
        "is a file, not a folder",
    )
    folder = tmp_path / "ev"
    folder.mkdir()
    (folder / "evaluation.md").write_bytes(table.read_bytes())
    one_line(
        capsys,
        ["evaluate", "--predictor", str(predictor), "--table", str(table), "--out", str(folder)],
        "evaluation.md",
        "is a latency table",
    )
    assert digest(good) == before and digest(folder / "evaluation.md") == digest(table)
    assert not (folder / "evaluation.png").exists()


# ------------------------------------------------------------ items 4 and 7
@pytest.mark.parametrize(
    "device, needles",
    [
        ("fake/peak_gmacs=0", ["peak_gmacs='0'", "must be > 0"]),
        ("fake/bandwidth_gbs=0", ["bandwidth_gbs='0'", "must be > 0"]),
        ("fake/bandwidth_gbs=nan", ["bandwidth_gbs='nan'", "finite"]),
        ("fake/noise=abc", ["noise='abc'", "must be a number"]),
        ("fake/noise=inf", ["noise='inf'", "finite"]),
        ("fake/cores=99", ["cores='99'", "CPU 99 does not exist", "this machine has"]),
        ("fake/cores=abc", ["cores='abc'", "this machine has"]),
    ],
)
def test_bad_device_options_are_one_line_and_create_no_table(capsys, tmp_path, device, needles):
    db = tmp_path / "x.db"
    one_line(capsys, ["measure", "--device", device, "--space", "pwconv", "--n", "3", "--db", str(db)], *needles)
    assert not db.exists()


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--budget", "0"], ["--budget 0.0", "finite time in seconds > 0"]),
        (["--budget", "-1"], ["--budget -1.0", "> 0"]),
        (["--budget", "inf"], ["--budget inf", "finite"]),
        (["--budget", "nan"], ["--budget nan", "finite"]),
        (["--rel-ci", "0"], ["--rel-ci 0.0", "between 0 and 1"]),
        (["--jobs", "-1"], ["--jobs -1", ">= 1"]),
        (["--jobs", "0"], ["--jobs 0", ">= 1"]),
    ],
)
def test_bad_measure_options_are_one_line_and_create_no_table(capsys, tmp_path, flags, needles):
    db = tmp_path / "x.db"
    args = ["measure", "--device", "fake", "--space", "pwconv", "--n", "3", "--db", str(db), *flags]
    one_line(capsys, args, *needles)
    assert not db.exists()


def test_compare_refuses_a_bad_budget(capsys, tmp_path):
    args = ["compare", "--models", "random:1", "--devices", "fake", "--out", str(tmp_path / "c"), "--budget", "-1"]
    one_line(capsys, args, "--budget -1.0")
    assert not (tmp_path / "c").exists()


def test_compare_never_writes_over_a_table(capsys, tmp_path, table):
    out = tmp_path / "c"
    out.mkdir()
    (out / "compare.csv").write_bytes(table.read_bytes())
    args = ["compare", "--models", "random:1", "--devices", "fake", "--out", str(out), "-q"]
    one_line(capsys, args, "compare.csv", "is a latency table")
    assert digest(out / "compare.csv") == digest(table) and not (out / "compare.db").exists()
    one_line(capsys, [*args[:-2], str(table), "-q"], "is a file, not a folder")


def test_fit_unknown_target_names_the_valid_ones(capsys, tmp_path, table):
    out = tmp_path / "p.skops"
    one_line(
        capsys,
        ["fit", "--table", str(table), "--out", str(out), "--target", "nosuch"],
        "unknown target 'nosuch'",
        "valid targets: median_ms, mean_ms",
    )
    assert not out.exists()


def test_ctrl_c_during_start_up_is_one_line(capsys, monkeypatch):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)  # Ctrl-C while the parser imports its extensions
    assert one_line(capsys, ["devices"], "interrupted", rc=130) == "interrupted"


# ----------------------------------------------------------------- item 9
def test_edited_predictor_metadata_is_refused(capsys, tmp_path, predictor):
    copy = tmp_path / "p.skops"
    copy.write_bytes(predictor.read_bytes())
    meta = json.loads(predictor.with_name("p.skops.json").read_text())
    meta["scale"] = 2.0
    (tmp_path / "p.skops.json").write_text(json.dumps(meta))
    out = tmp_path / "lut.yaml"
    args = ["lut", "export", "--predictor", str(copy), "--space", "pwconv", "--out", str(out)]
    one_line(capsys, args, "p.skops.json", "metadata was modified", "refusing to load")
    assert not out.exists()


def test_unknown_kind_message_shows_plain_strings(capsys, predictor):
    line = one_line(capsys, ["predict", "--predictor", str(predictor), "--network", "random:1"], "op kind '")
    assert "np.str_" not in line and "trained kinds: pwconv" in line


# ------------------------------------------------------- found by benchmarks/bad_inputs.py
def _in(tmp_path, table, predictor, args):
    if args[:2] == ["table", "show"]:
        return [*args, "--db", str(table)]
    if args[0] == "measure":
        return [*args, "--db", "new.db"]
    if args[0] == "lut":
        return [*args, "--predictor", str(predictor)]
    return args


@pytest.mark.parametrize(
    "args, needle",
    [
        (["measure", "--device", "fake", "--space", "pwconv", "--n", "0"], "--n: must be a whole number >= 1"),
        (["table", "show", "--rows", "-1"], "--rows: must be a whole number >= 0"),
        (["quickstart", "--device", "fake", "--n", "0"], "--n: must be a whole number >= 10"),
    ],
)
def test_counts_are_checked_by_the_parser(capsys, tmp_path, monkeypatch, table, predictor, args, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(_in(tmp_path, table, predictor, args))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert needle in err.strip().splitlines()[-1]  # argparse: the usage line, then the error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, needle",
    [
        (["table", "show", "--device", "nosuch"], "nosuch"),
        (["lut", "export", "--space", "conv", "--out", "o.yaml"], "no op of a kind a LUT has keys for"),
    ],
)
def test_more_bad_arguments_are_one_line_and_write_nothing(
    capsys, tmp_path, monkeypatch, table, predictor, args, needle
):
    monkeypatch.chdir(tmp_path)
    before = digest(table)
    one_line(capsys, _in(tmp_path, table, predictor, args), needle)
    assert digest(table) == before
    assert list(tmp_path.iterdir()) == []


def test_show_device_lists_the_tables_devices(capsys, table):
    line = one_line(capsys, ["table", "show", "--db", str(table), "--device", "nosuch"], "fake/t1/b1/fp32")
    assert "nosuch" in line


def test_create_backend_keyword_typo_is_a_value_error():
    from hwlat.devices import create_backend

    with pytest.raises(ValueError, match=r"Invalid argument tpyo=1 for device 'fake'.*fake/tpyo=\.\.\."):
        create_backend("fake", tpyo=1)


def test_cache_root_that_is_a_file_names_the_variable(tmp_path, monkeypatch):
    from hwlat.cache import cache_dir

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("HWLAT_CACHE", str(tmp_path / "afile"))
    with pytest.raises(ValueError, match="HWLAT_CACHE=.* is not a folder"):
        cache_dir("onnx")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1])
def test_proxyless_loss_weights_must_be_finite_and_non_negative(value):
    pytest.importorskip("torch")
    from hwlat.search.proxyless import ProxylessConfig

    for name in ("lam", "lam2", "lam_abs"):
        with pytest.raises(ValueError, match=f"Invalid {name}="):
            ProxylessConfig(**{name: value})
