import numpy as np
import pytest

from hwlat.devices import DeviceSpec, create_backend
from hwlat.measure import AdaptiveStop, FixedStop, Measurement, Protocol, measure, median_ci, summarize
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
        assert m.rounds >= Protocol().stop.min_rounds
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
        assert m.n * m.median_ms * 1e-3 >= 0.5 * protocol.stop.budget_s or m.rounds == protocol.stop.max_rounds


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


# Stored tables are keyed by Protocol.key: these strings were taken before the stop rule became a field.
@pytest.mark.parametrize(
    "protocol, key",
    [
        (Protocol(), "adaptive/ci=0.02/spread=0.05/budget=0.4s/round=0.01s/warmup=3+0.05s"),
        (Protocol.fixed(), "fixed/warmup=1+0.5s/runs=50/min=1s"),
        (Protocol(rel_ci=0.05, budget_s=2), "adaptive/ci=0.05/spread=0.05/budget=2s/round=0.01s/warmup=3+0.05s"),
        (
            Protocol(
                min_rounds=2, max_rounds=3, round_s=0.002, warmup_runs=1, warmup_s=0.002, budget_s=0.004, rel_ci=0.5
            ),
            "adaptive/ci=0.5/spread=0.05/budget=0.004s/round=0.002s/warmup=1+0.002s",
        ),
        (Protocol.fixed(warmup_s=0.005, runs=5, min_s=0.005), "fixed/warmup=1+0.005s/runs=5/min=0.005s"),
        (
            Protocol(max_round_spread=0.1, seed=3, interleave=2).replace(rel_ci=0.01),
            "adaptive/ci=0.01/spread=0.1/budget=0.4s/round=0.01s/warmup=3+0.05s",
        ),
    ],
)
def test_protocol_keys_are_pinned(protocol, key):
    assert protocol.key == key


def test_protocol_holds_its_stop_rule():
    assert Protocol().stop == AdaptiveStop() and Protocol().name == "adaptive"
    fixed = Protocol.fixed()
    assert fixed.stop == FixedStop(runs=50, min_s=1.0) and fixed.name == "fixed" and fixed.interleave == 1
    assert Protocol(name="fixed").stop == FixedStop()
    assert Protocol(rel_ci=0.1).replace(budget_s=3).stop == AdaptiveStop(rel_ci=0.1, budget_s=3)
    assert Protocol().replace(seed=4) == Protocol(seed=4)
    assert hash(Protocol()) == hash(Protocol())
    with pytest.raises(ValueError, match="budget_s for the fixed stop rule; valid: .*min_s"):
        Protocol.fixed().replace(budget_s=1)  # a fixed rule has no budget: the error lists what it has


def test_the_stop_rule():
    stop = AdaptiveStop(rel_ci=0.02, max_round_spread=0.05, budget_s=1.0, min_rounds=3)
    assert stop.settled(0.02, 0.05) and not stop.settled(0.021, 0.0) and not stop.settled(0.01, 0.06)
    assert not stop.finished(2, 5.0, lambda: True)  # fewer than min_rounds
    assert stop.finished(3, 0.1, lambda: True) and not stop.finished(3, 0.1, lambda: False)
    assert stop.finished(3, 1.0, lambda: False)  # budget spent
    assert stop.plan(Protocol(round_s=0.01), 0.001).runs == 10
    assert stop.plan(Protocol(round_s=0.01), None).min_s == 0.01  # the device warms up and times itself
    fixed = FixedStop(runs=5, min_s=0.5)
    assert fixed.plan(Protocol.fixed(), 1e-3).runs == 5
    assert fixed.finished(1, 0.5, lambda: False) and not fixed.finished(3, 0.4, lambda: True)
    assert stop.unsettled_warning(0.01, 0.0) is None
    assert "CI ±3.0%" in stop.unsettled_warning(0.03, 0.0)


def test_unsettled_results_carry_a_warning():
    protocol = Protocol(rel_ci=0.005, budget_s=0.05, max_round_spread=0.01)
    results = measure(fake(noise=0.03, unstable="kernel=7"), OPS, protocol)
    for m in results:
        assert bool(m.warnings) == (not m.stable)
        if m.warnings:
            assert m.warnings[0].startswith("did not settle")


@pytest.mark.parametrize("budget", [0.0, -1.0, float("inf"), float("nan")])
def test_adaptive_budget_must_be_finite_and_positive(budget):
    with pytest.raises(ValueError, match="Invalid budget_s="):
        Protocol(budget_s=budget)
