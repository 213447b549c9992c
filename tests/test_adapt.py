"""Few-shot transfer (hwlat.adapt): recovering known targets, HELP's data, choosing items, the CLI, bad inputs."""

import argparse
import importlib
import json
import warnings

import numpy as np
import pytest
from conftest import QUICK

from hwlat.adapt import (
    AdaptError,
    ArchTable,
    FewShotWarning,
    adapt_predictor,
    choose_items,
    choose_rows,
    fit_arch,
    help_reference_rows,
    load_help,
)
from hwlat.adapt.methods import _split_shares
from hwlat.adapt.workflow import load_source
from hwlat.devices import create_backend
from hwlat.ops import OpSpec
from hwlat.outfile import OutputFileError
from hwlat.predict import LatencyModel, LatencyPredictor, load_predictor, save_predictor
from hwlat.spaces import get_space
from hwlat.store import LatencyStore
from hwlat.workflows import resolve_networks, run_measure

BACKBONE = [op for op in get_space("mbconv-backbone").configs() if op.kind != "mbconv"]
OPS = get_space("mbconv").sample(150, seed=0) + BACKBONE
POOL = get_space("mbconv-backbone").sample(60, seed=3)
SOURCE = create_backend("fake/noise=0")


def _ms(backend, items):
    return np.array([backend.true_latency_s(it) * 1e3 for it in items])


@pytest.fixture(scope="module")
def source():
    return LatencyPredictor(model="prior+gbr").fit(OPS, _ms(SOURCE, OPS), device_key="fake/t1/b1/fp32")


def _cli():
    main = importlib.import_module("hwlat.cli.main")
    return main


@pytest.fixture
def cli(monkeypatch):
    main = _cli()
    if "hwlat.cli.adapt" not in main._EXTENSIONS:
        monkeypatch.setattr(main, "_EXTENSIONS", main._EXTENSIONS + ("hwlat.cli.adapt",))
    return main.main


# ------------------------------------------------------------------ recovering known targets
def test_scale_and_kind_shifts_are_recovered(source):
    """Target = 1.7 x the source, stem 1.3x and head 0.8x on top: kind-scale recovers it within 1 %."""
    shift = {"stem": 1.3, "head": 0.8, "mbconv": 1.0}
    items = choose_items(POOL, [source], 10)
    assert {op.kind for op in items} == {"stem", "head", "mbconv"}
    # a kind gets a weight of its own from two measured ops of it (one is confounded with the rest)
    items += [OpSpec.from_key("stem:cin=3,cout=24,h=224,w=224,kernel=3,stride=2,act=relu6")]
    items += [OpSpec.from_key("head:cin=960,mid=0,cout=1000,h=7,w=7,act=relu6")]

    def truth(ops):
        return 1.7 * source.predict(ops) * np.array([shift[op.kind] for op in ops])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 12 points: no "too few" warning
        p = adapt_predictor([source], items, truth(items), device_key="target")
    assert p.adaptation_["method"] in ("kind-scale", "roofline-kind")
    test = [op for op in POOL if op not in items]
    test += [OpSpec.from_key("stem:cin=3,cout=40,h=224,w=224,kernel=3,stride=2,act=relu6")]
    test += [OpSpec.from_key("head:cin=1280,mid=0,cout=1000,h=7,w=7,act=relu6")]
    np.testing.assert_allclose(p.predict(test), truth(test), rtol=0.01)
    assert p.device_key_ == "target" and p.adaptation_["n"] == 12 and p.adaptation_["trusted"]
    assert isinstance(p, LatencyModel) and isinstance(p, LatencyPredictor)
    assert source.device_key_ == "fake/t1/b1/fp32"  # the source is not modified


def test_roofline_recovers_a_slow_depthwise_7x7(source):
    """A runtime 4x slower on 7x7 depthwise MACs, 1.2x elsewhere: roofline finds both, the networks follow."""
    factor = np.array([1.2, 1.2, 1.2, 1.2, 4.8, 1.2, 1.2, 1.2])

    def truth(ops):
        pred, shares, _ = _split_shares(source, ops)
        return pred * (shares @ factor)

    nets = resolve_networks("random:12:4")
    few = nets[:10]
    y = np.array([truth(list(n.ops)).sum() for n in few])
    p = adapt_predictor([source], few, y)
    assert p.adaptation_["method"].startswith("roofline")
    rest = nets[10:] + resolve_networks("proxyless-mobile,mobilenetv2")
    want = np.array([truth(list(n.ops)).sum() for n in rest])
    np.testing.assert_allclose(p.predict_network(rest), want, rtol=0.03)
    plain = adapt_predictor([source], few, y, methods=("scale",))
    assert np.max(np.abs(plain.predict_network(rest) / want - 1)) > 0.03  # a scale alone cannot do it


def test_several_sources_the_better_one_is_chosen(source):
    other = LatencyPredictor(model="prior").fit(
        OPS, _ms(SOURCE, OPS) * np.exp(np.random.default_rng(0).normal(0, 0.4, len(OPS)))
    )
    items = POOL[:20]
    y = 2.0 * source.predict(items)
    p = adapt_predictor([other, source], items, y, source_names=["noisy", "good"])
    assert p.adaptation_["source"] == "good" and p.adaptation_["sources"] == ["noisy", "good"]
    assert p.adaptation_["global_scale"] == pytest.approx(2.0, rel=1e-3)


def test_fake_device_end_to_end_cli(tmp_path, cli, capsys):
    """Source table on the fake device, 10 networks on a fake device twice as slow: `hwlat adapt` then predict."""
    slow = create_backend("fake/noise=0/peak_gmacs=10/bandwidth_gbs=5/overhead_us=40")
    src_db, few_db = tmp_path / "src.db", tmp_path / "few.db"
    with LatencyStore(src_db) as store:
        run_measure(SOURCE, get_space("mbconv").sample(60, seed=1) + BACKBONE, store, QUICK, quiet=True)
    assert cli(["fit", "--table", str(src_db), "--out", str(tmp_path / "src.skops")]) == 0
    nets = resolve_networks("random:12:8")
    with LatencyStore(few_db) as store:
        run_measure(slow, nets[:10], store, QUICK, quiet=True)
    out = tmp_path / "new.skops"
    assert cli(["adapt", "--from", str(tmp_path / "src.skops"), "--table", str(few_db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "from 10 measurements (10 networks)" in printed and "saved" in printed
    p = load_predictor(out)
    meta = json.loads(out.with_name("new.skops.json").read_text())["adaptation"]
    assert meta["sources"] == ["src.skops"] and meta["n"] == 10 and meta["method"] in ("scale", "roofline")
    assert p.device_key_ == slow.spec.key
    truth = _ms(slow, nets[10:])
    np.testing.assert_allclose(p.predict_network(nets[10:]), truth, rtol=0.05)
    assert cli(["predict", "--predictor", str(out), "--network", "proxyless-mobile"]) == 0
    assert "predicted on fake/t1/b1/fp32" in capsys.readouterr().out


# ------------------------------------------------------------------ architecture tables (HELP)
def test_help_data_loads():
    nb, fb = load_help("nasbench201"), load_help("fbnet")
    assert (len(nb), len(nb.devices)) == (15625, 27) and (len(fb), len(fb.devices)) == (5000, 27)
    assert np.all(nb.counts.sum(1) == 6) and np.all(fb.counts.sum(1) == 22)
    assert nb.latency_ms[0, nb.column("titan_rtx_256")] == pytest.approx(10.6519)
    assert len(help_reference_rows("nasbench201")) == len(help_reference_rows("fbnet")) == 10
    with pytest.raises(AdaptError, match="choose one of"):
        load_help("darts")


def test_help_transfer_from_ten_architectures():
    from scipy.stats import spearmanr

    nb = load_help("nasbench201")
    tests = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
    sources = [d for d in nb.devices if d not in tests]
    rows = np.random.default_rng(0).choice(len(nb), 10, replace=False)
    y = nb.latency_ms[:, nb.column("titan_rtx_256")]
    ad = nb.adapt(rows, y[rows], sources)
    assert spearmanr(nb.predict(ad, sources), y).statistic > 0.97
    assert ad.n == 10 and ad.method in ("scale", "affine", "blend", "blend+kinds")
    chosen = choose_rows(nb.log_latency(sources), 10)
    assert len(set(chosen)) == 10


def test_fit_arch_recovers_an_affine_source():
    rng = np.random.default_rng(1)
    S = rng.normal(0, 1, (200, 3))
    y = np.exp(0.5 + 1.3 * S[:, 1])
    ad = fit_arch(S[:12], y[:12], source_names=["a", "b", "c"], methods=("scale", "affine"))
    assert (ad.method, ad.source) == ("affine", "b")
    np.testing.assert_allclose(ad.predict_ms(S), y, rtol=1e-6)


# ------------------------------------------------------------------ choosing what to measure
def test_choose_items_spreads_over_range_and_kinds(source):
    chosen = choose_items(POOL, [source], 10)
    assert len({op.key for op in chosen}) == 10 and {op.kind for op in chosen} == {"stem", "head", "mbconv"}
    mb = [op for op in POOL if op.kind == "mbconv"]
    scores = np.log(source.predict(mb))
    picked = np.log(source.predict([op for op in chosen if op.kind == "mbconv"]))
    assert picked.min() <= np.quantile(scores, 0.15) and picked.max() >= np.quantile(scores, 0.85)
    with pytest.raises(AdaptError, match="cannot choose 61"):
        choose_items(POOL, [source], 61)


def test_few_shot_arguments_for_measure(tmp_path, source):
    from hwlat.cli.adapt import add_few_shot_arguments, few_shot_items

    path = tmp_path / "src.skops"
    save_predictor(source, path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int)
    add_few_shot_arguments(parser)
    chosen = few_shot_items(parser.parse_args(["--few-shot", "8", "--from", str(path)]), POOL)
    assert [op.key for op in chosen] == [op.key for op in choose_items(POOL, [source], 8)]
    assert few_shot_items(parser.parse_args([]), POOL) is None
    with pytest.raises(AdaptError, match="--from is for --few-shot"):
        few_shot_items(parser.parse_args(["--from", str(path)]), POOL)
    with pytest.raises(AdaptError, match="needs --from"):
        few_shot_items(parser.parse_args(["--few-shot", "3"]), POOL)
    with pytest.raises(SystemExit):
        parser.parse_args(["--few-shot", "0"])


# ------------------------------------------------------------------ bad inputs
def test_no_overlap_in_kinds(source):
    pw = [OpSpec("pwconv", cin=c, cout=c, h=14, w=14) for c in (16, 32, 64)]
    with pytest.raises(AdaptError, match="no overlap: the target's items have op kinds pwconv"):
        adapt_predictor([source], pw, [0.1, 0.2, 0.4])
    nb = load_help("nasbench201")
    with pytest.raises(AdaptError, match="no overlap"):
        nb.adapt([], [], ["1080ti_1"])
    with pytest.raises(AdaptError, match="no device 'phone9'"):
        nb.adapt([0, 1, 2], [1.0, 2.0, 3.0], ["phone9"])


def test_too_few_points_and_warning(source):
    with pytest.raises(AdaptError, match="needs at least 2"):
        adapt_predictor([source], POOL[:1], [0.3])
    with pytest.warns(FewShotWarning, match="too few to trust"):
        p = adapt_predictor([source], POOL[:4], 1.5 * source.predict(POOL[:4]))
    assert not p.adaptation_["trusted"]


@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.0, np.inf])
def test_bad_latencies(source, bad):
    y = list(source.predict(POOL[:10]))
    y[3] = bad
    with pytest.raises(AdaptError, match="NaN, infinite or <= 0"):
        adapt_predictor([source], POOL[:10], y)
    with pytest.raises(AdaptError, match="NaN, infinite or <= 0"):
        fit_arch(np.zeros((10, 2)), y)
    with pytest.raises(AdaptError, match="NaN, infinite or <= 0"):
        ArchTable("t", ["a", "b"], ["d1"], [[1.0], [bad]]).log_latency(["d1"])


def test_foreign_predictors_refused(tmp_path, source):
    import copy

    other = copy.deepcopy(source)
    other.feature_names_ = [*other.feature_names_[:5], "no_such_feature"]
    with pytest.raises(AdaptError, match="features this hwlat does not compute"):
        adapt_predictor([other], POOL[:10], source.predict(POOL[:10]))
    with pytest.raises(AdaptError, match="not a fitted LatencyPredictor"):
        adapt_predictor([LatencyPredictor()], POOL[:10], source.predict(POOL[:10]))
    path, meta_path = save_predictor(source, tmp_path / "old.skops")
    from hwlat.predict.predictor import _meta_digest

    meta = json.loads(meta_path.read_text())
    meta["versions"]["scikit-learn"] = "0.24.2"
    meta["meta_sha256"] = _meta_digest(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AdaptError, match=r"other library versions \(scikit-learn 0.24.2 -> .*re-fit it here"):
        load_source(path)


def test_nothing_is_overwritten(tmp_path, source, cli, capsys):
    src = tmp_path / "src.skops"
    save_predictor(source, src)
    few = tmp_path / "few.db"
    with LatencyStore(few) as store:
        run_measure(SOURCE, POOL[:10], store, QUICK, quiet=True)
    before = few.read_bytes()
    assert cli(["adapt", "--from", str(src), "--table", str(few), "--out", str(few)]) == 2
    assert "is a latency table (SQLite); refusing to overwrite it" in capsys.readouterr().err
    assert few.read_bytes() == before
    notes = tmp_path / "notes.skops"
    notes.write_text("mine")
    assert cli(["adapt", "--from", str(src), "--table", str(few), "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "pass --force" in err and len(err.strip().splitlines()) == 1 and notes.read_text() == "mine"
    assert (
        cli(
            [
                "adapt",
                "--from",
                str(tmp_path / "missing.skops"),
                "--table",
                str(few),
                "--out",
                str(tmp_path / "n.skops"),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err and not (tmp_path / "n.skops").exists()
    with pytest.raises(OutputFileError):
        from hwlat.adapt.workflow import adapt_table

        adapt_table([src], few, few)
