import numpy as np
import pytest

from hwlat.devices import DeviceSpec, create_backend
from hwlat.measure import Measurement, Protocol, measure, median_ci, summarize
from hwlat.ops import OpSpec

OPS = [
    OpSpec("mbconv", cin=c, cout=c, h=28, w=28, kernel=k, stride=1, expand=e)
    for c in (16, 32)
    for k in (3, 5, 7)
    for e in (3, 6)
]


def fake(**options):
    return create_backend(DeviceSpec("fake", options=tuple(options.items())))


def test_median_ci_order_statistics():
    x = np.arange(1, 101, dtype=float)  # n=100: ranks 50 -/+ 9.8 -> [40, 60] (0-based)
    assert median_ci(x) == (41.0, 61.0)
    assert median_ci(np.array([3.0])) == (3.0, 3.0)


def test_measure_is_deterministic_on_fake():
    a = measure(fake(), OPS)
    b = measure(fake(), OPS)
    assert [m.op_key for m in a] == [m.op_key for m in b]
    assert [m.median_ms for m in a] == [m.median_ms for m in b]
    assert {m.op_key for m in a} == {op.key for op in OPS}


def test_stops_when_ci_is_tight_and_estimates_truth():
    backend = fake(noise=0.03)
    results = measure(backend, OPS, Protocol(rel_ci=0.02))
    for m in results:
        truth_ms = backend.true_latency_s(OpSpec.from_key(m.op_key)) * 1e3
        assert m.stable
        assert m.rel_ci <= 0.02
        assert m.rounds >= Protocol().min_rounds
        # log-normal noise: median of exp(N(0, s)) is exactly 1
        assert m.median_ms == pytest.approx(truth_ms, rel=0.02)
        assert m.p5_ms < m.median_ms < m.p95_ms
        assert m.ci_low_ms <= m.median_ms <= m.ci_high_ms


def test_noisy_op_spends_budget_and_is_flagged():
    protocol = Protocol(rel_ci=0.005, budget_s=0.05, max_round_spread=0.01)
    results = {m.op_key: m for m in measure(fake(noise=0.03, unstable="kernel=7"), OPS, protocol)}
    noisy = [m for k, m in results.items() if "kernel=7" in k]
    assert noisy and all(not m.stable for m in noisy)
    for m in noisy:  # stopped by the budget (one block may overshoot it) or max rounds
        assert m.n * m.median_ms * 1e-3 >= 0.5 * protocol.budget_s or m.rounds == protocol.max_rounds


def test_tighter_ci_takes_more_samples():
    loose = measure(fake(noise=0.05), OPS[:4], Protocol(rel_ci=0.05))
    tight = measure(fake(noise=0.05), OPS[:4], Protocol(rel_ci=0.005, budget_s=5))
    assert sum(m.n for m in tight) > 2 * sum(m.n for m in loose)
    assert all(m.rel_ci <= 0.005 for m in tight)


def test_fixed_protocol_runs_like_benchmark_model():
    p = Protocol.fixed()
    assert p.key == "fixed/warmup=1+0.5s/runs=50/min=1s"
    (m,) = measure(fake(), [OPS[0]], p)
    assert m.rounds >= 1 and m.n % 50 == 0
    assert m.n * m.median_ms * 1e-3 >= 0.9  # kept running until min_s = 1 s


def test_on_result_called_per_op_in_shuffled_order():
    seen = []
    measure(fake(), OPS, on_result=seen.append)
    assert len(seen) == len(OPS)
    assert all(isinstance(m, Measurement) for m in seen)
    assert [m.op_key for m in seen] != [op.key for op in OPS]  # shuffled rounds


def test_summarize_round_disagreement_marks_unstable():
    samples = np.r_[np.full(50, 1e-3), np.full(50, 1.5e-3)]
    m = summarize(samples, [1e-3, 1e-3, 1.5e-3, 1.5e-3], item=OPS[0], device_key="d", protocol=Protocol(), wall_s=0.1)
    assert not m.stable
    assert m.round_spread > 0.05


@pytest.mark.parametrize("bad", [dict(rel_ci=0), dict(rel_ci=1.5), dict(name="other"), dict(min_rounds=0)])
def test_protocol_validation(bad):
    with pytest.raises(ValueError):
        Protocol(**bad)
