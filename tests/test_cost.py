import pytest
import torch

from hwlat.cost import LatencyLUT
from hwlat.devices import create_backend
from hwlat.ops import OpSpec
from hwlat.predict import LatencyPredictor
from hwlat.spaces import get_space

FAKE = create_backend("fake")


@pytest.fixture(scope="module")
def predictor():
    ops = get_space("mbconv-backbone").sample(71)
    return LatencyPredictor(model="prior").fit(ops, [FAKE.true_latency_s(o) * 1e3 for o in ops])


def candidates():
    layers = []
    for c, h in ((24, 56), (40, 28), (80, 14)):
        layer = [
            OpSpec("mbconv", cin=c, cout=c, h=h, w=h, kernel=k, stride=1, expand=e) for k in (3, 5, 7) for e in (3, 6)
        ]
        layers.append(layer + [None])
    return layers


def test_expected_latency_gradient_matches_finite_differences(predictor):
    lut = LatencyLUT(predictor, candidates())
    alpha = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    lat = lut.expected_latency(torch.softmax(alpha, -1))
    assert lat.requires_grad
    (grad,) = torch.autograd.grad(lat, alpha)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    eps = 1e-4
    num = torch.zeros_like(alpha)
    with torch.no_grad():
        for i in range(3):
            for j in range(7):
                d = torch.zeros_like(alpha)
                d[i, j] = eps
                up = lut.expected_latency(torch.softmax(alpha + d, -1))
                down = lut.expected_latency(torch.softmax(alpha - d, -1))
                num[i, j] = (up - down) / (2 * eps)
    assert torch.allclose(grad, num, rtol=1e-4, atol=1e-6)


def test_one_hot_equals_discrete_latency_and_zero_is_free(predictor):
    lut = LatencyLUT(predictor, candidates(), overhead=False)
    one_hot = torch.zeros(3, 7)
    one_hot[0, 2] = one_hot[1, 6] = one_hot[2, 0] = 1
    expect = predictor.predict([candidates()[0][2], candidates()[2][0]]).sum()
    assert float(lut.expected_latency(one_hot)) == pytest.approx(expect, rel=1e-5)
    assert lut.latency([2, 6, 0]) == pytest.approx(expect, rel=1e-5)


def test_ragged_layers_and_fixed_parts(predictor):
    stem = OpSpec("stem", cin=3, cout=32, h=224, w=224, kernel=3, stride=2)
    cands = [candidates()[0][:2], candidates()[1]]
    lut = LatencyLUT(predictor, cands, fixed=[stem])
    probs = [torch.tensor([0.5, 0.5]), torch.full((7,), 1 / 7)]
    lat = lut.expected_latency(probs)
    manual = 0.5 * predictor.predict(cands[0]).sum() + predictor.predict(cands[1][:6]).sum() / 7
    assert float(lat) == pytest.approx(manual + predictor.predict([stem])[0] + predictor.overhead_ms_, rel=1e-5)
    with pytest.raises(ValueError, match="does not exist"):
        lut.latency([3, 0])
    with pytest.raises(ValueError, match="shape"):
        lut.expected_latency(torch.ones(2, 3))


def test_one_hot_latency_equals_predict_network_of_a_calibrated_predictor(predictor):
    """Fixed ops get the predictor's scale too: the LUT and predict_network must agree exactly."""
    import copy

    from hwlat.network import Network

    calibrated = copy.deepcopy(predictor)
    calibrated.scale_, calibrated.overhead_ms_ = 1.7, 0.4
    stem = OpSpec("stem", cin=3, cout=24, h=112, w=112, kernel=3, stride=2)
    layer = [OpSpec("mbconv", cin=24, cout=24, h=56, w=56, kernel=k, stride=1, expand=3) for k in (3, 5)]
    lut = LatencyLUT(calibrated, [layer + [None]], fixed=[stem])
    for j, op in enumerate(layer):
        net = Network("n", (stem, op))
        assert lut.latency([j]) == pytest.approx(calibrated.predict_network(net), rel=1e-5)
    assert lut.latency([2]) == pytest.approx(calibrated.predict_network(Network("n", (stem,))), rel=1e-5)
