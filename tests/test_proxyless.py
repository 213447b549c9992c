"""ProxylessNAS: binary-gate gradients, two-path rescaling, latency losses, derived networks, a tiny search."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hwlat.devices import create_backend
from hwlat.measure import Protocol, measure
from hwlat.network import Network
from hwlat.predict import LatencyPredictor
from hwlat.search import proxyless as px
from hwlat.search._latency import CalibratedPredictor, NetworkCalibration
from hwlat.search._mixed import MixedOp, gate_alpha_grad, rescale_pair, sample_pair
from hwlat.spaces import DIGITS_BACKBONE, Backbone, backbone_blocks, block_candidates, get_space

FAKE = create_backend("fake")
TINY = Backbone(resolution=16, stem=8, first=8, stages=((8, 2, 2), (16, 2, 1)), mix=16, classes=10)


@pytest.fixture(scope="module")
def predictor():
    ops = px.candidate_ops(TINY)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


class _Loaders:
    def __init__(self, n: int = 48, resolution: int = 16, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 3, resolution, resolution, generator=g)
        y = torch.arange(n) % 10
        x[torch.arange(n), 0, y, y] += 3.0  # a learnable signal: class = position of a bright pixel
        ds = TensorDataset(x, y)
        self.train = DataLoader(ds, batch_size=16, shuffle=True, generator=g)
        self.valid = DataLoader(ds, batch_size=16, shuffle=True, generator=g)
        self.test = DataLoader(ds, batch_size=16)


# ------------------------------------------------------------- the space
def test_digits_space_has_every_candidate_op():
    ops = px.candidate_ops(DIGITS_BACKBONE)
    space = get_space("digits-mbconv").configs()
    assert {op.key for op in ops} == {op.key for op in space}
    assert len(ops) == 39
    slots = list(backbone_blocks(DIGITS_BACKBONE))
    assert len(slots) == 9 and sum(s.skippable for s in slots) == 6
    assert [len(block_candidates(s)) for s in slots] == [6, 7, 7] * 3


def test_lut_gradient_matches_finite_differences(predictor):
    lut = px.build_lut(predictor, TINY)
    alphas = [
        torch.randn(len(block_candidates(s)), dtype=torch.float64, requires_grad=True) for s in backbone_blocks(TINY)
    ]
    lat = lut.expected_latency([torch.softmax(a, 0) for a in alphas])
    grads = torch.autograd.grad(lat, alphas)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    eps = 1e-5
    with torch.no_grad():
        for b, j in [(0, 0), (1, 6), (3, 2)]:
            up = [a.clone() for a in alphas]
            up[b][j] += eps
            down = [a.clone() for a in alphas]
            down[b][j] -= eps
            num = (
                lut.expected_latency([torch.softmax(a, 0) for a in up])
                - lut.expected_latency([torch.softmax(a, 0) for a in down])
            ) / (2 * eps)
            assert float(grads[b][j]) == pytest.approx(float(num), rel=1e-4, abs=1e-9)


# ------------------------------------------------------- binary gates
def _toy_mixed(shortcut: bool = False) -> tuple[MixedOp, torch.Tensor]:
    torch.manual_seed(0)
    cands = [
        torch.nn.Sequential(torch.nn.Conv2d(4, 4, k, padding=k // 2), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        for k in (1, 3, 5)
    ]
    x = torch.randn(6, 4, 5, 5)
    return MixedOp(cands, shortcut), x


@pytest.mark.parametrize("shortcut", [False, True])
@pytest.mark.parametrize("active", [0, 2])
def test_memory_saving_gate_gradient_equals_naive_all_paths(active, shortcut):
    op, x = _toy_mixed(shortcut)
    w = torch.randn(6, 4, 5, 5)
    # Naive: keep every path's output, y = Σ g_j o_j(x) (+ x), autograd gives ∂L/∂g and ∂L/∂x.
    xn = x.clone().requires_grad_(True)
    g = torch.zeros(3)
    g[active] = 1
    g.requires_grad_(True)
    y = sum(g[j] * op.candidates[j](xn) for j in range(3))
    loss = ((y + xn if shortcut else y) * w).sum() ** 2 / 1e3
    g_naive, x_naive = torch.autograd.grad(loss, [g, xn])
    # Memory-saving: only the active path in forward, the others recomputed in backward.
    xm = x.clone().requires_grad_(True)
    gates = op.set_gates(active, involved=(0, 1, 2))
    loss = (op(xm) * w).sum() ** 2 / 1e3
    g_saved, x_saved = torch.autograd.grad(loss, [gates, xm])
    assert torch.allclose(g_saved, g_naive, rtol=1e-5, atol=1e-6)
    assert torch.allclose(x_saved, x_naive, rtol=1e-5, atol=1e-6)
    assert g_saved.abs().min() > 0  # every involved path got a gradient


def test_two_path_mode_computes_only_the_pair():
    op, x = _toy_mixed()
    gates = op.set_gates(1, involved=(1, 2))
    (g,) = torch.autograd.grad(op(x).sum() ** 2, [gates])
    assert g[0] == 0 and g[1] != 0 and g[2] != 0


def test_eq4_alpha_gradient_is_the_softmax_chain_rule():
    alpha = torch.randn(5, dtype=torch.float64)
    gate_grad = torch.randn(5, dtype=torch.float64)
    a = alpha.clone().requires_grad_(True)
    (expect,) = torch.autograd.grad((torch.softmax(a, 0) * gate_grad).sum(), a)
    assert torch.allclose(gate_alpha_grad(alpha, gate_grad, range(5)), expect)
    pair = gate_alpha_grad(alpha, gate_grad, (1, 3))
    assert pair[[0, 2, 4]].abs().sum() == 0
    assert float(pair.sum()) == pytest.approx(0.0, abs=1e-12)  # softmax gradients sum to 0


def test_two_path_rescaling_keeps_unsampled_probabilities():
    torch.manual_seed(1)
    alpha = torch.randn(7)
    before = alpha.clone()
    p_before = torch.softmax(before, 0)
    alpha[2] += 0.7  # an update of the two sampled logits
    alpha[5] -= 0.3
    rescale_pair(alpha, before, (2, 5))
    p_after = torch.softmax(alpha, 0)
    others = [0, 1, 3, 4, 6]
    assert torch.allclose(p_after[others], p_before[others], atol=1e-7)
    assert float(p_after[[2, 5]].sum()) == pytest.approx(float(p_before[[2, 5]].sum()), abs=1e-6)
    assert p_after[2] > p_before[2] and p_after[5] < p_before[5]


def test_sample_pair_draws_two_distinct_paths():
    gen = torch.Generator().manual_seed(0)
    alpha = torch.tensor([5.0, 0.0, 0.0, -5.0])
    seen = set()
    for _ in range(50):
        active, pair = sample_pair(torch.softmax(alpha, 0), alpha, gen)
        assert pair[0] != pair[1] and active in pair
        seen.add(pair[0])
    assert 0 in seen and 3 not in seen


# ---------------------------------------------------------------- losses
@pytest.mark.parametrize(
    ("loss", "at_target"), [("add#linear", 1.0), ("mul#log", 0.2), ("add#abs", 1.0), ("none", 1.0)]
)
def test_losses_at_the_target(loss, at_target):
    cfg = px.ProxylessConfig(loss=loss, target_ms=0.05)
    ce = torch.tensor(0.8)
    assert float(px.latency_loss(ce, torch.tensor(0.05), cfg)) == pytest.approx(0.8 * at_target, rel=1e-5)
    if loss != "none":  # slower than the target always costs more
        assert float(px.latency_loss(ce, torch.tensor(0.06), cfg)) > float(px.latency_loss(ce, torch.tensor(0.05), cfg))


def test_add_is_eq7_and_reinforce_reward():
    cfg = px.ProxylessConfig(loss="add", lam2=2.0)
    assert float(px.latency_loss(torch.tensor(1.0), torch.tensor(0.3), cfg)) == pytest.approx(1.6)
    r = px.ProxylessConfig(loss="reinforce", target_ms=0.1)
    assert px._reward(0.9, 0.08, r) == pytest.approx(0.9)  # no reward for beating T (w = 0)
    assert px._reward(0.9, 0.2, r) == pytest.approx(0.45)  # w = -1 above T


def test_config_errors_name_valid_choices():
    with pytest.raises(ValueError, match="mul#log"):
        px.ProxylessConfig(loss="typo")
    with pytest.raises(ValueError, match="two"):
        px.ProxylessConfig(gate_mode="three")
    with pytest.raises(ValueError, match="target"):
        px.ProxylessConfig(loss="add#linear").check_target()


# --------------------------------------------------------------- supernet
def test_nested_init_makes_candidates_one_function():
    torch.manual_seed(0)
    net = px.ProxylessSupernet(TINY).train()
    x = torch.randn(4, 3, 16, 16)
    net.set_paths([0] * len(net.blocks))
    ref = net(x)
    net.set_paths([len(b) - 1 if b.shortcut else 5 for b in net.blocks])  # zero where skippable, else 7x7 e6
    assert not torch.allclose(net(x), ref)
    net.set_paths([5] * len(net.blocks))
    assert torch.allclose(net(x), ref, atol=1e-5)


def test_derived_network_builds_copies_weights_and_measures(predictor):
    torch.manual_seed(0)
    net = px.ProxylessSupernet(TINY, nested_init=False).eval()
    indices = [3, 6, 1, 6]  # block 1 and 3 skipped
    network = net.derive("found", indices)
    assert isinstance(network, Network) and len(network.ops) == 3 + 2
    assert net.choices(indices) == [(5, 6), None, (3, 6), None]
    model = net.derived_model(network, indices).eval()
    net.set_paths(indices)
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(model(x), net(x), atol=1e-5)
    assert Network.from_dict(network.to_dict()) == network
    (m,) = measure(FAKE, [network], Protocol())
    assert m.median_ms == pytest.approx(FAKE.true_latency_s(network) * 1e3, rel=0.05)
    lut = px.build_lut(predictor, TINY)
    assert lut.latency(indices) == pytest.approx(predictor.predict_network(network), rel=1e-5)


def test_calibration_recovers_a_per_op_overhead(predictor):
    nets = px.calibration_networks(TINY, n=6)
    truth = [float(predictor.predict(list(n.ops)).sum()) * 0.9 - 0.004 * len(n.ops) + 0.01 for n in nets]
    calib = NetworkCalibration.fit(predictor, nets, truth)
    assert (calib.scale, calib.per_op_ms, calib.offset_ms) == pytest.approx((0.9, -0.004, 0.01), rel=1e-4)
    cp = CalibratedPredictor(predictor, calib)
    assert cp.predict_network(nets[3]) == pytest.approx(truth[3], rel=1e-6)
    assert CalibratedPredictor(predictor).predict_network(nets[0]) == pytest.approx(predictor.predict_network(nets[0]))


# ------------------------------------------------------------ searches
def test_latency_term_drives_the_architecture_to_faster_ops(predictor):
    lut = px.build_lut(predictor, TINY)
    loaders = _Loaders()
    cfg = dict(epochs=3, warmup_epochs=0, arch_lr=0.1, arch_every=1, final_epochs=0, target_ms=None)
    runs = {}
    for loss, extra in (("add", {"lam2": 50.0}), ("none", {})):
        torch.manual_seed(0)
        net = px.ProxylessSupernet(TINY)
        hist = px.search(net, loaders.train, loaders.valid, lut, px.ProxylessConfig(loss=loss, **cfg, **extra))
        runs[loss] = hist[-1]["expected_ms"]
        assert all(torch.allclose(torch.softmax(a, 0).sum(), torch.tensor(1.0)) for a in net.alphas)
    uniform = float(lut.expected_latency([torch.full((len(b),), 1 / len(b)) for b in block_candidates_all()]))
    assert runs["add"] < uniform - 0.05 * (uniform - float(lut.fixed_ms))
    assert runs["add"] < runs["none"]


def block_candidates_all():
    return [block_candidates(s) for s in backbone_blocks(TINY)]


@pytest.mark.parametrize("loss", ["mul#log", "reinforce"])
def test_every_arch_update_rule_moves_alpha(predictor, loss):
    lut = px.build_lut(predictor, TINY)
    loaders = _Loaders(n=32)
    torch.manual_seed(0)
    net = px.ProxylessSupernet(TINY)
    cfg = px.ProxylessConfig(
        loss=loss,
        target_ms=0.3,
        epochs=1,
        warmup_epochs=0,
        arch_every=1,
        arch_lr=0.05,
        reinforce_samples=3,
        gate_mode="full",
    )
    px.search(net, loaders.train, loaders.valid, lut, cfg)
    assert any(a.detach().abs().sum() > 0 for a in net.alphas)


def test_end_to_end_search_on_the_fake_device(predictor, tmp_path):
    cfg = px.ProxylessConfig(
        loss="add#abs", target_ms=0.35, epochs=2, warmup_epochs=1, arch_every=1, arch_lr=0.1, final_epochs=1
    )
    result = px.run_proxyless(predictor, _Loaders(), config=cfg, backbone=TINY, device="fake", calibrate_n=3)
    net = result.network
    assert net.ops[0].kind == "stem" and net.ops[-1].kind == "head" and net.input_shape == (1, 3, 16, 16)
    assert len(result.choices) == 4 and len(result.history) == 2
    assert 0 <= result.test_acc <= 1
    assert result.measured_ms == pytest.approx(result.predicted_ms, rel=0.1)  # calibrated on the same device
    assert "calibrated on 5" in result.calibration
    # The calibration networks are measured again with the found one: the deterministic fake has not drifted.
    assert result.machine_drift == pytest.approx(1.0, rel=1e-9) and result.drift_note is None
    import dataclasses

    busy = dataclasses.replace(result, machine_drift=1.8)
    assert "took 1.80x" in busy.drift_note and f"{result.corrected_ms:.4f} ms" in busy.drift_note
    no_pairs = dataclasses.replace(result, machine_drift=1.8, corrected_ms=None)
    assert f"{result.measured_ms / 1.8:.4f} ms" in no_pairs.drift_note
    assert dataclasses.replace(result, machine_drift=1.1).drift_note is None
    path = net.save(tmp_path / "found.json")
    assert Network.load(path) == net
    assert result.to_dict()["network"]["ops"] == [op.key for op in net.ops]


# ------------------------------------------------- target validation
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -1.0])
def test_target_that_is_not_a_finite_positive_latency_is_refused(bad):
    with pytest.raises(ValueError, match=r"Invalid target_ms=.*finite number > 0 \(ms\)"):
        px.ProxylessConfig(loss="add#abs", target_ms=bad)


def test_target_outside_the_spaces_predicted_range(predictor, caplog):
    lut = px.build_lut(predictor, TINY)
    lo, hi = lut.latency_range()
    assert 0 < lo < hi
    # The range is the per-layer min/max sum: the cheapest and dearest architectures of the LUT.
    import itertools

    every = [lut.latency(c) for c in itertools.product(*(range(len(b)) for b in block_candidates_all()))]
    assert (lo, hi) == pytest.approx((min(every), max(every)), rel=1e-6)
    cfg = dict(loss="add#abs", epochs=0, warmup_epochs=0, final_epochs=0)
    with pytest.raises(ValueError, match=rf"target_ms=1e-09 ms is below the cheapest .* spans {lo:.4g}-{hi:.4g} ms"):
        px.run_proxyless(predictor, _Loaders(n=16), config=px.ProxylessConfig(target_ms=1e-9, **cfg), backbone=TINY)
    with caplog.at_level("WARNING", logger="hwlat.cost"):
        result = px.run_proxyless(
            predictor, _Loaders(n=16), config=px.ProxylessConfig(target_ms=1e6, **cfg), backbone=TINY
        )
    assert result.network is not None
    assert any("above the dearest" in r.message and "no constraint" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="hwlat.cost"):
        px.run_proxyless(
            predictor, _Loaders(n=16), config=px.ProxylessConfig(target_ms=(lo * hi) ** 0.5, **cfg), backbone=TINY
        )
    assert not caplog.records
