"""DARC: simplex projection, candidates, student–teacher initialisation, the block schedule, a tiny run."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hwlat.devices import create_backend
from hwlat.measure import Protocol, measure
from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor
from hwlat.search import darc as dc
from hwlat.spaces import DARC_CANDIDATES, darc_candidates, get_space
from hwlat.zoo import get_network

FAKE = create_backend("fake")


def tiny_base() -> Network:
    return get_network("resnet-digits", width_mult=0.5, resolution=16)


@pytest.fixture(scope="module")
def predictor():
    base = tiny_base()
    ops = [c for op in base.ops for c in (darc_candidates(op) if op.kind == "conv" else [op])]
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


class _Loaders:
    def __init__(self, n: int = 48, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, 16, 16, generator=g)
        y = torch.arange(n) % 10
        x[torch.arange(n), 0, y, y] += 3.0
        ds = TensorDataset(x, y)
        self.train = DataLoader(ds, batch_size=16, shuffle=True, generator=g)
        self.valid = DataLoader(ds, batch_size=16)
        self.test = DataLoader(ds, batch_size=16)


# ------------------------------------------------------------ projection
def test_projection_sums_to_one_is_nonnegative_and_sparsifies():
    a = torch.tensor([0.5, -0.2, 0.3, 0.0, 0.2])
    p = dc.project_simplex(a)
    assert torch.allclose(p, torch.tensor([0.5, 0.0, 0.3, 0.0, 0.2]))
    assert float(p.sum()) == pytest.approx(1.0) and bool((p >= 0).all())
    q = dc.project_simplex(torch.tensor([0.9, 0.4, -0.1, -0.3]))
    assert (q == 0).sum() == 2 and float(q.sum()) == pytest.approx(1.0)
    assert torch.allclose(q, torch.tensor([0.9, 0.4, 0, 0]) / 1.3)


def test_projection_edge_cases():
    assert torch.equal(dc.project_simplex(torch.tensor([-0.3, -0.1, -0.2])), torch.tensor([0.0, 1.0, 0.0]))
    alive = torch.tensor([True, False, True])
    assert torch.allclose(dc.project_simplex(torch.tensor([0.2, 5.0, 0.6]), alive), torch.tensor([0.25, 0.0, 0.75]))
    assert torch.equal(dc.project_simplex(torch.tensor([-1.0, 5.0, -2.0]), alive), torch.tensor([1.0, 0.0, 0.0]))


def test_projected_penalty_steps_zero_the_expensive_candidate_first():
    layer = dc.DARCLayer(darc_candidates(OpSpec("conv", cin=8, cout=8, h=8, w=8, kernel=3, act="relu")))
    costs = torch.tensor([1.0, 0.05, 0.12, 0.2])
    for _ in range(12):
        with torch.no_grad():
            layer.alpha -= 0.1 * costs  # the penalty's gradient, λ = 1
            layer.project()
    assert float(layer.alpha.detach()[0]) == 0.0 and bool((layer.alpha.detach()[1:] > 0).all())
    assert float(layer.alpha.detach().sum()) == pytest.approx(1.0)
    assert layer.remove_zeros() == 3 and not bool(layer.alive[0])
    assert layer.kept(costs.tolist()) == 3  # the most expensive remaining


# ------------------------------------------------------------ candidates
def test_candidates_keep_shapes_and_follow_the_paper():
    for stride in (1, 2):
        op = OpSpec("conv", cin=16, cout=32, h=16, w=16, kernel=3, stride=stride, act="relu")
        cands = darc_candidates(op)
        assert [c.output_shape for c in cands] == [op.output_shape] * 4
        assert [c.kind for c in cands][::3] == ["conv", "dsconv_pw"] and cands[1].kind == "dsconv"
        assert cands[2].kind == ("pwconv" if stride == 1 else "conv") and (stride == 1 or cands[2].kernel == 1)
        assert cands[0].params > cands[3].params > cands[1].params
    assert DARC_CANDIDATES == ("original", "3x3DS", "1x1FC", "3x3DS+1x1FC")
    with pytest.raises(ValueError, match="conv"):
        darc_candidates(OpSpec("pwconv", cin=8, cout=8, h=4, w=4))


def test_resnet_digits_and_its_space():
    net = get_network("resnet-digits")
    assert net.input_shape == (1, 3, 32, 32) and net.ops[-1].output_shape == (1, 10)
    assert [op.kind for op in net.ops].count("conv") == 7
    space = get_space("digits-darc").configs()
    assert len(space) == 2 + 7 * 4 and {"conv", "dsconv", "pwconv", "dsconv_pw", "stem", "head"} == {
        o.kind for o in space
    }


# ----------------------------------------------------------------- model
def test_student_teacher_init_makes_candidates_mimic_the_original():
    torch.manual_seed(0)
    base = tiny_base()
    base_model = base.build().train()
    model = dc.DARCModel(base)
    model.load_base(base_model)
    loaders = _Loaders()
    before = dc.student_teacher_init(dc.DARCModel(base), base_model, loaders.train, batches=2, steps=1, lr=1e-9)
    after = dc.student_teacher_init(model, base_model, loaders.train, batches=2, steps=20, lr=0.1)
    assert len(after) == 7 * 3
    assert sum(after) < 0.7 * sum(before)


def test_snapshot_keeps_the_most_expensive_remaining_candidate(predictor):
    torch.manual_seed(0)
    base = tiny_base()
    model = dc.DARCModel(base)
    lut = dc.cost_table(model, predictor, "latency")
    costs = lut.table_ms.tolist()
    with torch.no_grad():
        for layer in model.darc_layers:
            layer.alpha.copy_(torch.tensor([0.0, 0.5, 0.0, 0.5]))
            layer.remove_zeros()
    net, snap_model = model.snapshot(costs, "snap")
    assert [op.kind for op in net.ops if op.kind != "stem" and op.kind != "head"] == ["dsconv_pw"] * 7
    assert dc._l0_cost(model, lut) == pytest.approx(
        lut.latency([1] * 7) + lut.latency([3] * 7) - float(lut.fixed_ms), rel=1e-5
    )
    x = torch.randn(2, 3, 16, 16)
    assert snap_model(x).shape == (2, 10)
    (m,) = measure(FAKE, [net], Protocol())
    assert m.median_ms == pytest.approx(FAKE.true_latency_s(net) * 1e3, rel=0.05)
    size = dc.cost_table(model, None, "size")
    assert size.latency([0] * 7) == pytest.approx(base.params)


def test_budget_below_the_cheapest_network_is_refused(predictor):
    with pytest.raises(ValueError, match="cheapest"):
        dc.run_darc(tiny_base(), 1e-6, predictor, _Loaders())
    with pytest.raises(ValueError, match="predictor"):
        dc.run_darc(tiny_base(), 1.0, None, _Loaders())
    with pytest.raises(ValueError, match="latency, size"):
        dc.DARCConfig(mode="speed")


@pytest.mark.parametrize("mode", ["latency", "size"])
def test_end_to_end_darc_meets_the_budget(predictor, mode):
    base = tiny_base()
    cfg = dc.DARCConfig(
        mode=mode,
        base_epochs=1,
        init_batches=2,
        init_steps=2,
        block_epochs=1,
        max_blocks=6,
        lam0=2.0,
        alpha_lr=0.3,
        finetune_epochs=1,
    )
    lut = dc.cost_table(dc.DARCModel(base), predictor, mode)
    cheapest = lut.latency(lut.table_ms.argmin(1).tolist())
    budget = cheapest + 0.4 * (lut.latency([0] * 7) - cheapest)  # 60 % of the way from the base to the cheapest
    result = dc.run_darc(
        base, budget, predictor, _Loaders(), config=cfg, device="fake", calibrate_n=2 if mode == "latency" else 0
    )
    assert result.chosen is not None and result.chosen.cost <= budget
    assert result.snapshots[-1].l0_cost <= budget or len(result.snapshots) == 6
    costs = [s.cost for s in result.snapshots]
    assert costs == sorted(costs, reverse=True)  # candidates only ever get removed
    assert result.chosen.measured_ms is not None and result.base_measured_ms is not None
    if mode == "size":
        assert result.chosen.network.params <= budget < base.params
    else:
        assert result.chosen.measured_ms < result.base_measured_ms
    assert result.to_dict()["chosen_block"] == result.chosen.block


# ------------------------------------------------- budget validation
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0])
def test_budget_that_is_not_a_finite_positive_number_is_refused(predictor, bad):
    with pytest.raises(ValueError, match=r"Invalid budget=.*finite number > 0 \(ms\)"):
        dc.run_darc(tiny_base(), bad, predictor, _Loaders())
    with pytest.raises(ValueError, match=r"Invalid budget=.*\(parameters\)"):
        dc.run_darc(tiny_base(), bad, None, _Loaders(), config=dc.DARCConfig(mode="size"))


class _Stop(Exception):
    pass


def test_budget_above_the_dearest_network_warns(predictor, caplog, monkeypatch):
    def stop(*args, **kwargs):
        raise _Stop  # the budget was checked: no need to train

    monkeypatch.setattr(dc, "evaluate", stop)
    base = tiny_base()
    with caplog.at_level("WARNING", logger="hwlat.cost"), pytest.raises(_Stop):
        dc.run_darc(base, 1e6, predictor, _Loaders(), base_model=base.build())
    assert any("budget=1e+06 ms is above the dearest" in r.message and "spans" in r.message for r in caplog.records)
