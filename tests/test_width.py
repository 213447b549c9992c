"""Width optimisation and transfer: stacking, bisection, the latency surrogate, optimisers (fake backend)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from hwlat.cost import WidthLatency  # noqa: E402
from hwlat.devices import create_backend  # noqa: E402
from hwlat.predict import LatencyPredictor  # noqa: E402
from hwlat.search._trainloop import TrainConfig  # noqa: E402
from hwlat.search.width import (  # noqa: E402
    DigitsArch,
    MorphNetConfig,
    Projection,
    fit_multiplier,
    fit_ratios,
    morphnet_ratios,
    stack_ratios,
    transfer_widths,
    uniform_widths,
)
from hwlat.spaces import get_space  # noqa: E402
from hwlat.zoo import get_network  # noqa: E402

FAKE = create_backend("fake")


@pytest.fixture(scope="module")
def predictor():
    ops = get_space("digits-widths").sample(400, seed=0)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops], device_key="fake")


def loaders(resolution: int = 8, n: int = 64):
    gen = torch.Generator().manual_seed(0)

    def one(k: int) -> DataLoader:
        x = torch.randn(n, 3, resolution, resolution, generator=gen)
        return DataLoader(TensorDataset(x, torch.randint(0, 10, (n,), generator=gen)), batch_size=32)

    return SimpleNamespace(train=one(0), valid=one(1), test=one(2), resolution=resolution)


# -------------------------------------------------------------- extrapolation
def test_stacking_rules_on_a_known_width_vector():
    stages = [[1.0], [0.5, 0.7], [0.4, 0.6, 1.0]]
    assert stack_ratios(stages, [1, 4, 5], rule="last") == [[1.0], [0.5, 0.7, 0.7, 0.7], [0.4, 0.6, 1.0, 1.0, 1.0]]
    # Average excludes each stage's first block: (0.6 + 1.0) / 2 = 0.8; a one-block stage repeats that block.
    assert stack_ratios(stages, [3, 4, 5], rule="average") == [
        [1.0, 1.0, 1.0],
        [0.5, 0.7, 0.7, 0.7],
        [0.4, 0.6, 1.0, 0.8, 0.8],
    ]
    assert stack_ratios(stages, [1, 1, 2], rule="average") == [[1.0], [0.5], [0.4, 0.6]]  # deeper than target
    with pytest.raises(ValueError, match="last, average"):
        stack_ratios(stages, [1, 2, 3], rule="first")
    with pytest.raises(ValueError, match="3 stages"):
        stack_ratios(stages, [1, 2], rule="last")


def test_bisection_hits_the_budget():
    m, value = fit_multiplier(lambda m: 3.0 * m**2 + 1.0, 13.0)
    assert m == pytest.approx(2.0, rel=1e-5) and value == pytest.approx(13.0, rel=1e-5)
    m, value = fit_multiplier(lambda m: 100.0 * m, 5000.0)  # beyond the first bracket
    assert m == pytest.approx(50.0, rel=1e-5)
    steps = lambda m: float(np.floor(10 * m))  # noqa: E731  a step function: nearest evaluated point
    assert fit_multiplier(steps, 7.0)[1] == 7.0
    with pytest.raises(ValueError, match="budget"):
        fit_multiplier(lambda m: m, 0.0)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match=r"Invalid budget=.*finite number > 0"):
            fit_multiplier(lambda m: m, bad)


@pytest.mark.parametrize("metric", ["latency", "flops"])
def test_fitted_network_meets_the_budget(predictor, metric):
    arch = DigitsArch()
    ratios = [0.5, 0.5, 1.0, 1.0, 1.5, 1.5, 1.5, 1.5, 2.0, 2.0]
    if metric == "latency":
        budget = float(predictor.predict_network(DigitsArch(width_mult=0.75).network()))
    else:
        budget = float(DigitsArch(width_mult=0.75).network().flops)
    res = fit_ratios(arch, ratios, predictor, budget, metric=metric, method="test")
    assert abs(res.budget_error) < 0.02
    assert res.network.ops[0].cout == res.widths[0] and len(res.widths) == arch.n_slots
    # The optimised pattern survives: later layers keep their larger ratio.
    assert res.widths[-1] / arch.base_widths()[-1] > 2 * res.widths[0] / arch.base_widths()[0]
    uni = uniform_widths(arch, predictor, budget, metric=metric)
    assert abs(uni.budget_error) < 0.02 and uni.ratios == (1.0,) * arch.n_slots


def test_projection_parsing_and_depth_rounding():
    p = Projection.parse("width=0.5, depth=0.5,res=16,data=0.2")
    assert p == Projection(width=0.5, depth=0.5, resolution=16, data=0.2)
    small = DigitsArch().project(p)
    assert small == DigitsArch(width_mult=0.5, depth=(1, 1, 2, 1), resolution=16)
    assert small.base_widths() == [8, 8, 16, 32, 32, 64]
    assert small.stages() == [[1], [2], [3, 4], [5]]
    with pytest.raises(ValueError, match="width, depth, res, data"):
        Projection.parse("widht=0.5")
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        Projection.parse("data=1.5")


def test_zoo_builder_widths_and_errors():
    net = get_network("mobilenet-digits", widths=[3, 4, 5, 6, 7, 8, 9, 10, 11, 12], resolution=16)
    assert [op.cout for op in net.ops if op.kind in ("stem", "pwconv")] == list(range(3, 13))
    assert net.name == "mobilenet-digits-custom-r16" and net.input_shape == (1, 3, 16, 16)
    assert get_network("mobilenet-digits").flops == 2_826_496
    with pytest.raises(ValueError, match="need 10 channel counts"):
        get_network("mobilenet-digits", widths=[3, 4])
    with pytest.raises(ValueError, match="blocks per stage"):
        get_network("mobilenet-digits", depth=(1, 0, 1, 1))


# -------------------------------------------------------------- the surrogate
def test_width_latency_interpolates_the_predictor_with_gradients(predictor):
    arch = DigitsArch()
    lat = WidthLatency(predictor, arch.network, arch.base_widths(), grid=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    on_grid = [16, 16, 32, 32, 64, 64, 64, 64, 128, 128]
    assert lat.latency_ms(on_grid) == pytest.approx(predictor.predict_network(arch.network(on_grid)), rel=1e-6)
    w = torch.tensor([12.0, 20, 40, 24, 50, 70, 90, 100, 150, 200], dtype=torch.float64, requires_grad=True)
    value = lat(w)
    (grad,) = torch.autograd.grad(value, w)
    assert torch.isfinite(grad).all() and (grad > 0).all()
    # Inside a cell the surrogate is multilinear: a central difference equals the gradient.
    with torch.no_grad():
        for k in (0, 5, 9):
            d = torch.zeros_like(w)
            d[k] = 0.25
            assert float((lat(w + d) - lat(w - d)) / 0.5) == pytest.approx(float(grad[k]), rel=1e-6)
    assert np.allclose(lat.marginal_ms(w.detach().tolist()), grad.numpy())
    exact = predictor.predict_network(arch.network([12, 20, 40, 24, 50, 70, 90, 100, 150, 200]))
    assert float(value.detach()) == pytest.approx(exact, rel=0.1)
    with pytest.raises(ValueError, match="one per slot"):
        lat(torch.ones(3))


# ------------------------------------------------------------------ optimisers
def test_morphnet_prunes_expensive_channels_first(predictor):
    arch = DigitsArch(width_mult=0.25, depth=(1, 1, 1, 1), resolution=8)
    data = loaders()
    lat = arch.latency_model(predictor)
    res = morphnet_ratios(arch.network(), data, lat, MorphNetConfig(strength=2.0, train=TrainConfig(epochs=2)))
    assert len(res.ratios) == arch.n_slots and all(0 < r <= 1 for r in res.ratios)
    assert min(res.ratios) < 1  # something was pruned
    assert res.macs == 3 * arch.network().flops * 2 * 64 and res.seconds > 0


def test_transfer_pipeline_meets_the_target_budget(predictor):
    arch = DigitsArch(width_mult=0.5, depth=(1, 2, 2, 2), resolution=16)
    budget = float(predictor.predict_network(arch.network()))
    res = transfer_widths(
        arch,
        Projection(width=0.5, depth=0.5, resolution=8, data=0.5),
        predictor,
        budget,
        loaders_for=lambda r, f: loaders(r),
        config=MorphNetConfig(train=TrainConfig(epochs=1)),
    )
    assert res.method == "transfer" and len(res.widths) == arch.n_slots
    assert abs(res.budget_error) < 0.02
    assert res.detail["projected"]["depth"] == (1, 1, 1, 1) and res.detail["rule"] == "average"
    # Stacking copied each projected block's ratio onto the target's repeated blocks.
    assert res.ratios[2] == res.ratios[3] and res.ratios[6] == res.ratios[7]
