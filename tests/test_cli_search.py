"""``hwlat search``: each search a subcommand, the CLI's copies of the searches' choices, runs on the fake backend."""

from __future__ import annotations

import argparse
import json

import pytest

from hwlat.devices import create_backend
from hwlat.network import Network
from hwlat.predict import LatencyPredictor, save_predictor
from hwlat.search import SEARCHES, SearchInfo
from hwlat.spaces import DIGITS_BACKBONE, get_space
from hwlat.zoo import get_network

FAKE = create_backend("fake")


@pytest.fixture(scope="module")
def predictor():
    """test_width.py's predictor: a prior model fitted on the fake backend's true latencies of digits-widths."""
    pytest.importorskip("torch")  # the split and width searches train networks
    ops = get_space("digits-widths").sample(400, seed=0)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


# ------------------------------------------------------------------ the subcommands
@pytest.mark.parametrize("name", ["proxyless", "darc", "split", "width"])
def test_each_search_is_a_cli_subcommand_with_its_description(name, capsys):
    from hwlat.cli.main import build_parser

    assert name in SEARCHES and isinstance(SEARCHES.get(name), SearchInfo)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["search", "--help"])
    assert exc.value.code == 0
    listing = " ".join(capsys.readouterr().out.split())
    assert f"{name} {' '.join(SEARCHES.get(name).description.split())}" in listing


def test_cli_split_modes_and_eigen_methods_match_the_search():
    """hwlat.cli.search_width keeps copies of these so that ``hwlat --help`` does not import torch."""
    pytest.importorskip("torch")
    from hwlat.cli import search_width
    from hwlat.search import splitting, width

    assert search_width.SPLIT_MODES == splitting.MODES and search_width.EIGEN_METHODS == splitting.EIGEN_METHODS
    assert search_width.STACK_RULES == width.STACK_RULES
    assert search_width.WIDTH_OPTIMIZERS == tuple(width.WIDTH_OPTIMIZERS)


# ------------------------------------------------------------------ proxyless, darc
def test_cli_search_proxyless_then_predict_and_darc_errors(tmp_path):
    pytest.importorskip("torch")
    from conftest import run_cli

    from hwlat.cli import search as cli_search
    from hwlat.search import darc
    from hwlat.search import proxyless as px

    assert cli_search.LOSSES == px.LOSSES and cli_search.DARC_MODES == darc.MODES
    ops = px.candidate_ops(DIGITS_BACKBONE) + get_space("digits-darc").configs()
    p = LatencyPredictor(model="prior").fit(
        ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake/t1/b1/fp32"
    )
    path, _ = save_predictor(p, tmp_path / "p.skops")
    out = tmp_path / "out"
    res = run_cli(
        "search",
        "proxyless",
        "--device",
        "fake",
        "--predictor",
        str(path),
        "--target-ms",
        "0.4",
        "--epochs",
        "1",
        "--warmup-epochs",
        "0",
        "--final-epochs",
        "0",
        "--calibrate",
        "2",
        "--out",
        str(out),
        "-q",
    )
    assert res.returncode == 0, res.stderr
    assert "measured latency on fake" in res.stdout and "predicted latency" in res.stdout
    assert "measured interleaved with the calibration networks" in res.stdout and "predictor error" in res.stdout
    (found,) = out.glob("proxyless-*ms.json")
    assert Network.load(found).input_shape == (1, 3, 32, 32)
    res = run_cli("predict", "--predictor", str(path), "--network", str(found))
    assert res.returncode == 0 and "ms predicted" in res.stdout, res.stderr
    res = run_cli("search", "proxyless", "--device", "fake", "--predictor", str(path), "--out", str(out))
    assert res.returncode == 2 and "needs a target latency" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(
        "search", "darc", "--device", "fake", "--predictor", str(path), "--budget-ms", "0.0001", "--out", str(out)
    )
    assert res.returncode == 2 and "cheapest" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # Targets and budgets that are not finite positive latencies, or below the space: one line, nothing written.
    fresh = tmp_path / "fresh"
    common = ["--device", "fake", "--predictor", str(path), "--out", str(fresh), "--no-measure"]
    for bad in ("nan", "inf", "0", "-1"):
        res = run_cli("search", "proxyless", *common, "--target-ms", bad, "--epochs", "0", "--final-epochs", "0")
        assert res.returncode == 2 and "Invalid target_ms=" in res.stderr and "finite number > 0" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        res = run_cli("search", "darc", *common, "--budget-ms", bad)
        assert res.returncode == 2 and "Invalid budget=" in res.stderr and "finite number > 0" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = run_cli("search", "proxyless", *common, "--target-ms", "1e-6", "--epochs", "0", "--final-epochs", "0")
    assert res.returncode == 2 and "below the cheapest network of the space" in res.stderr and "spans" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not fresh.exists()


# ------------------------------------------------------------------ split, width
def _cli(argv, capsys):
    from hwlat.cli.search_width import register_search

    parser = argparse.ArgumentParser(prog="hwlat")
    sub = parser.add_subparsers(dest="command", required=True)
    ssub = sub.add_parser("search").add_subparsers(dest="search_command", required=True)
    register_search(ssub)
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_cli_split_and_width_on_the_fake_backend(predictor, tmp_path, capsys):
    path, _ = save_predictor(predictor, tmp_path / "p.skops")
    common = ["--device", "fake", "--predictor", str(path), "--resolution", "8", "--data-fraction", "0.1", "-q"]
    out = _cli(
        [
            "search",
            "split",
            *common,
            "--stages",
            "1",
            "--mode",
            "both",
            "--eigen",
            "fast",
            "--sweeps",
            "1",
            "--refine",
            "3",
            "--epochs",
            "1",
            "--stage-epochs",
            "1",
            "--seed-width",
            "0.125",
            "--out",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    data = json.loads((tmp_path / "s" / "splitting.json").read_text())
    assert [(r["mode"], r["stage"]) for r in data["stages"]] == [
        ("energy", 0),
        ("energy", 1),
        ("vanilla", 0),
        ("vanilla", 1),
    ]
    assert all(r["measured_ms"] > 0 for r in data["stages"])
    assert (tmp_path / "s" / "splitting_tradeoff.png").stat().st_size > 0
    assert (tmp_path / "s" / "splitting-energy-1.json").exists() and "energy" in out
    out = _cli(
        [
            "search",
            "width",
            *common,
            "--budget-ms",
            "0.6",
            "--transfer",
            "width=0.5,depth=0.5,res=8,data=0.5",
            "--compare",
            "--opt-steps",
            "2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "w"),
        ],
        capsys,
    )
    data = json.loads((tmp_path / "w" / "width.json").read_text())
    assert sorted(r["method"] for r in data["results"]) == ["direct", "transfer", "uniform"]
    assert all(abs(r["budget_error"]) < 0.02 and r["measured_ms"] > 0 for r in data["results"])
    assert data["cost_saved"]["macs_ratio"] > 1 and "width transfer" in out
    assert Network.load(tmp_path / "w" / "width-transfer-0.json").name == "mobilenet-digits-transfer"


def test_standalone_hook_and_budget_options():
    from hwlat.cli.search_width import register

    parser = argparse.ArgumentParser(prog="hwlat")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["search", "width", "--predictor", "p.skops", "--budget-ms", "0.1", "0.2"])
    assert args.func.__name__ == "cmd_width" and args.budget_ms == [0.1, 0.2] and args.device == "onnxruntime-cpu"
    args = parser.parse_args(["search", "split", "--predictor", "p.skops"])
    assert (args.growth, args.stages, args.mode, args.eigen) == (0.5, 4, "energy", "fast")
    with pytest.raises(SystemExit):  # a budget is required, and only one kind of it
        parser.parse_args(["search", "width", "--predictor", "p", "--budget-ms", "1", "--budget-mmacs", "2"])


def test_cli_width_calibrates_on_the_networks_of_a_table(predictor, tmp_path, capsys):
    """``--calibrate TABLE``: budgets are met under the input-MB calibration fitted on TABLE's networks."""
    from hwlat.measure import Protocol
    from hwlat.search._latency import calibrate_from_table
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    path, _ = save_predictor(predictor, tmp_path / "p.skops")
    db = tmp_path / "t.db"
    nets = [
        get_network("mobilenet-digits", width_mult=m, resolution=8, network_name=f"cal-{m}") for m in (0.25, 0.5, 1)
    ]
    with LatencyStore(db) as store:
        run_measure(FAKE, nets, store, Protocol(), quiet=True)
    calibrated = calibrate_from_table(predictor, str(db))
    assert calibrated.calibration.terms == "input-mb" and calibrated.calibration.n_networks == 3
    common = [
        "--device",
        "fake",
        "--predictor",
        str(path),
        "--resolution",
        "8",
        "--data-fraction",
        "0.1",
        "-q",
        "--calibrate",
        str(db),
    ]
    _cli(
        [
            "search",
            "width",
            *common,
            "--budget-ms",
            "0.5",
            "--opt-steps",
            "2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "w"),
        ],
        capsys,
    )
    (row,) = json.loads((tmp_path / "w" / "width.json").read_text())["results"]
    net = Network.load(tmp_path / "w" / row["network"])
    assert row["predicted_ms"] == pytest.approx(calibrated.predict_network(net), rel=1e-9)
    assert row["predicted_ms"] != pytest.approx(predictor.predict_network(net), rel=1e-3)
    assert abs(row["budget_error"]) < 0.05
    # --remeasure: the table's networks measured again on --device (here the same fake) with a scale term.
    _cli(
        [
            "search",
            "width",
            *common,
            "--remeasure",
            "--budget-ms",
            "0.5",
            "--opt-steps",
            "2",
            "--epochs",
            "1",
            "--no-measure",
            "--out",
            str(tmp_path / "w2"),
        ],
        capsys,
    )
    (row,) = json.loads((tmp_path / "w2" / "width.json").read_text())["results"]
    assert abs(row["budget_error"]) < 0.05 and row["measured_ms"] is None
    with pytest.raises(ValueError, match="--remeasure needs --calibrate"):
        _cli(
            ["search", "width", "--device", "fake", "--predictor", str(path), "--remeasure", "--budget-ms", "0.5"],
            capsys,
        )


def test_cli_width_refuses_budgets_that_are_not_finite_positive(predictor, tmp_path):
    from conftest import run_cli

    path, _ = save_predictor(predictor, tmp_path / "p.skops")
    fresh = tmp_path / "fresh"
    for flag, bad in (("--budget-ms", "nan"), ("--budget-ms", "inf"), ("--budget-ms", "-1"), ("--budget-mmacs", "0")):
        res = run_cli("search", "width", "--device", "fake", "--predictor", str(path), flag, bad, "--out", str(fresh))
        assert res.returncode == 2 and f"Invalid {flag}=" in res.stderr and "finite number > 0" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not fresh.exists()
