"""hwlat.graph.fusion and hwlat fusion-rules: rounds, intervals and verdicts, learned rule sets, storage, use in
prediction. Synthetic timings and the deterministic fake device only: no timing of this machine."""

import dataclasses
import json
import math

import numpy as np
import pytest

from hwlat.graph import detect_kernels, rule_set
from hwlat.graph.fusion import (
    FUSED_BELOW,
    PAIRS,
    FusionRules,
    PairResult,
    learned_rule_set,
    median_ci,
    pair_models,
    run_pair_tests,
)

OVERHEAD, HEAD, FOLLOWER = 0.01, 0.5, 0.3


def result(name, head, follower, shares, default=True, drift=None):
    """A PairResult whose rounds give exactly ``shares`` (a number: five rounds of it), each round scaled by
    ``drift`` (a slow spell of the machine hits the round's four models alike)."""
    shares = [shares] * 5 if isinstance(shares, (int, float)) else list(shares)
    drift = drift or [1.0] * len(shares)
    rounds = [
        tuple(d * v for v in (HEAD + s * (FOLLOWER - OVERHEAD), HEAD, FOLLOWER, OVERHEAD))
        for s, d in zip(shares, drift)
    ]
    return PairResult.from_rounds(name, head, follower, rounds, default)


def synthetic(shares, noise=0.0, drift=(1.0, 1.3, 0.9, 1.6, 1.0), seed=0):
    """measure(items) -> ms from true shares per pair (1.0 when not given), Gaussian noise (ms) and a drift factor
    per call (the call's four models alike); also returns the list of calls (item names in measured order)."""
    rng = np.random.default_rng(seed)
    calls = []

    def measure(items):
        calls.append([it.name for it in items])
        d = drift[len(calls) % len(drift)]
        out = []
        for it in items:
            if it.name == "fusion-call-overhead":
                base = OVERHEAD
            else:
                pair, part = it.name[len("fusion-") :].rsplit("-", 1)
                base = {
                    "head": HEAD,
                    "follower": FOLLOWER,
                    "pair": HEAD + shares.get(pair, 1.0) * (FOLLOWER - OVERHEAD),
                }[part]
            out.append(base * d + float(rng.normal(0.0, noise)))
        return out

    return measure, calls


def kernel_ops(graph, rules):
    return [k.ops for k in detect_kernels(graph, rules)]


def conv_pattern(rules):
    return next(p for p in rules.kernels if p.name == "conv" and p.steps[0].ops == {"conv"})


def test_median_interval_is_order_statistics():
    assert median_ci([5, 1, 4, 2, 3]) == (1, 5, pytest.approx(1 - 2 / 32))  # lowest..highest of 5: 93.75 %
    lo, hi, cov = median_ci(range(10))  # 2nd lowest..2nd highest of 10: 97.9 % (3rd..3rd would be 89 %)
    assert (lo, hi) == (1, 8) and cov == pytest.approx(1 - 2 * 11 / 1024)
    lo, hi, cov = median_ci([1, 2, 3, 4])  # 4 values cannot reach 90 %
    assert (lo, hi) == (1, 4) and cov == pytest.approx(0.875)
    assert all(math.isnan(v) for v in median_ci([1.0, float("nan"), 2.0])[:2])


def test_verdict_needs_the_whole_interval_on_one_side():
    fused = result("conv+relu", "conv", "relu", [0.0, 0.1, 0.05, 0.2, 0.1], default=True)
    assert fused.verdict == "fused" and fused.fused and not fused.differs
    assert fused.follower_share == pytest.approx(0.1) and fused.ci[:2] == pytest.approx((0.0, 0.2))
    separate = result("add+relu", "add", "relu", [0.9, 1.1, 1.0, 0.8, 1.2], default=True)
    assert separate.verdict == "separate" and separate.differs and separate.ci[:2] == pytest.approx((0.8, 1.2))
    straddle = result("conv+tanh", "conv", "tanh", [0.3, 0.6, 0.4, 0.45, 0.42], default=False)
    assert straddle.follower_share < FUSED_BELOW and straddle.verdict == "undecided"  # the median alone would say fused
    assert not straddle.fused and not straddle.differs and "spans 0.5" in straddle.why_undecided
    four = PairResult.from_rounds("conv+relu", "conv", "relu", fused.rounds[:4], True)
    assert four.verdict == "undecided" and "88 % interval" in four.why_undecided
    free = PairResult.from_rounds("conv+relu", "conv", "relu", [(0.5, 0.5, 0.01, 0.01)] * 5, True)
    assert free.verdict == "undecided" and "no more than a call" in free.why_undecided


def test_one_wild_round_of_eight_does_not_sway_the_verdict():
    r = result("conv+relu", "conv", "relu", [0.1, 0.05, 0.12, 1.6, 0.08, 0.1, 0.02, 0.11])
    assert r.ci[:2] == pytest.approx((0.05, 0.12)) and r.verdict == "fused"
    two = result("conv+relu", "conv", "relu", [0.1, 0.05, 0.12, 1.6, 0.08, 0.1, 0.02, 1.5])  # two: no verdict
    assert two.verdict == "undecided"


def test_drift_between_rounds_cancels_in_the_share():
    r = result("conv+relu", "conv", "relu", 0.05, drift=[1.0, 1.8, 0.7, 1.3, 2.5])
    assert r.verdict == "fused" and r.ci[:2] == pytest.approx((0.05, 0.05))
    assert r.head_spread_ms == pytest.approx(HEAD * 1.8)  # the head's own spread holds the drift ...
    assert r.resolution == pytest.approx(math.inf) or r.resolution > 10  # ... the share's reading does not
    assert r.follower_cost_ms == pytest.approx((FOLLOWER - OVERHEAD) * 1.3)  # the median round


def test_learned_rules_use_decided_verdicts_only():
    pairs = [
        result("conv+relu", "conv", "relu", 0.0),
        result("conv+hardswish", "conv", "hardswish", 1.0),
        result("conv+silu", "conv", "silu", [0.2, 0.7, 0.4, 0.6, 0.5]),  # undecided: silu stays as the default has it
        result("add+relu", "add", "relu", 1.0),
        result("batchnorm+relu", "batchnorm", "relu", [0.3, 0.6, 0.9, 0.4, 0.7]),  # undecided: norm kept
        result("conv+batchnorm", "conv", "batchnorm", 1.0),  # sets no rule
    ]
    default = rule_set("onnxruntime")
    learned = learned_rule_set(default, pairs)
    acts = [s for s in conv_pattern(learned).steps[1:] if "relu" in s.ops or "silu" in s.ops]
    assert acts and all("relu" in s.ops and "hardswish" not in s.ops and "silu" in s.ops for s in acts)
    assert conv_pattern(learned).steps[:4] == conv_pattern(default).steps[:4]  # batchnorm, mul, add kept
    elementwise = next(p for p in learned.kernels if p.name == "elementwise")
    assert all("relu" not in s.ops for s in elementwise.steps[1:]) and "sigmoid" in elementwise.steps[1].ops
    assert next(p for p in learned.kernels if p.name == "norm") in default.kernels
    assert next(p for p in learned.kernels if p.name == "attention") in default.kernels
    assert learned.name == "onnxruntime+learned"
    for name in {f.name for f in dataclasses.fields(default)} - {"name", "kernels"}:  # free, composites, layout, ...
        assert getattr(learned, name) == getattr(default, name)
        assert getattr(learned_rule_set(rule_set("litert"), pairs), name) == getattr(rule_set("litert"), name)


def test_conv_and_dwconv_disagreeing_keep_the_default():
    default = rule_set("litert")  # conv activations: relu|relu6|clip|tanh
    pairs = [
        result("conv+relu6", "conv", "relu6", 1.0),
        result("dwconv+relu6", "dwconv", "relu6", 0.0),  # the two convolutions disagree on relu6: kept
        result("conv+tanh", "conv", "tanh", 1.0),
        result("dwconv+silu", "dwconv", "silu", 0.0),  # fused after one head, not tested after the other: added
    ]
    ops = {op for s in conv_pattern(learned_rule_set(default, pairs)).steps[1:] for op in s.ops}
    assert {"relu", "relu6", "clip", "silu"} <= ops and "tanh" not in ops


def test_residual_verdicts_split_the_conv_pattern():
    (res_pair, _h, _f) = pair_models("conv+add", "conv", "add")
    (res_relu, _h, _f) = pair_models("conv+add+relu", "conv+add", "relu")
    (conv_relu, _h, _f) = pair_models("conv+relu", "conv", "relu")
    default = rule_set("litert")
    assert len(detect_kernels(res_pair.graph(), default)) == 2  # the defaults fuse the residual add into the conv
    separate = learned_rule_set(default, [result("conv+add", "conv", "add", 1.0)])
    assert kernel_ops(res_pair.graph(), separate) == ["Conv", "Conv", "Add"]
    assert kernel_ops(res_relu.graph(), separate) == ["Conv", "Conv", "Add+Relu"]  # the elementwise pattern's
    assert len(detect_kernels(conv_relu.graph(), separate)) == 1
    # a folded BatchNorm (conv -> mul -> add, constants) is still one kernel
    steps = [[s.ops, s.optional] for s in conv_pattern(separate).steps]
    assert steps[:4] == [[{"conv"}, False], [{"batchnorm"}, True], [{"mul"}, False], [{"add"}, True]]
    plain = [p for p in separate.kernels if p.name == "conv" and p.steps[0].ops == {"conv"}][1]
    assert all("add" not in s.ops for s in plain.steps)
    # the residual add costs most of an add (ONNX Runtime reads its operand), the relu after it nothing: conv -> add
    # -> relu stays one kernel, a conv -> add alone splits
    sum_relu = learned_rule_set(
        default, [result("conv+add", "conv", "add", 0.8), result("conv+add+relu", "conv+add", "relu", 0.0)]
    )
    assert kernel_ops(res_relu.graph(), sum_relu) == ["Conv", "Conv+Add+Relu"]
    assert kernel_ops(res_pair.graph(), sum_relu) == ["Conv", "Conv", "Add"]
    assert len(detect_kernels(conv_relu.graph(), sum_relu)) == 1
    # residual fused, the relu after it not: the add stays in the conv, the relu is a kernel of its own
    after = learned_rule_set(
        default, [result("conv+add", "conv", "add", 0.1), result("conv+add+relu", "conv+add", "relu", 1.0)]
    )
    assert kernel_ops(res_relu.graph(), after) == ["Conv", "Conv+Add", "Relu"]
    assert len(detect_kernels(conv_relu.graph(), after)) == 1  # relu after a conv alone still fuses
    # undecided residual: the default's pattern, unchanged
    undecided = learned_rule_set(default, [result("conv+add", "conv", "add", [0.2, 0.8, 0.5, 0.4, 0.6])])
    assert conv_pattern(undecided) == conv_pattern(default)


def test_detection_follows_the_learned_rules():
    (pair, _head, _follower) = pair_models("conv+hardswish", "conv", "hardswish")
    g = pair.graph()
    assert len(detect_kernels(g, device="onnxruntime-cpu")) == 1
    learned = learned_rule_set(rule_set("onnxruntime"), [result("conv+hardswish", "conv", "hardswish", 1.0)])
    assert kernel_ops(g, learned) == ["Conv", "HardSwish"]


def test_pair_tests_measure_rounds_interleaved_and_round_trip_json():
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol

    truth = {"conv+relu": 0.0, "conv+relu6": 0.05, "conv+add+relu": 0.1, "dwconv+relu": 0.0}
    measure, calls = synthetic(truth, noise=0.004)
    rules = run_pair_tests(create_backend("fake"), Protocol.fixed(), pattern="*", measure=measure)  # 8 rounds
    assert len(calls) == 8 * len(PAIRS) and all(len(c) == 4 for c in calls)
    first = calls[0]  # one pair's four models per call, the order rotated from round to round
    assert sorted(first) == sorted(calls[len(PAIRS)]) and first != calls[len(PAIRS)]
    assert {n.rsplit("-", 1)[-1] for n in first} == {"overhead", "pair", "head", "follower"}
    verdict = rules.verdicts()
    assert all(verdict[name] == "fused" for name in truth) and verdict["add+relu"] == "separate"
    for p in rules.pairs:
        lo, hi, cov = p.ci
        assert len(p.rounds) == 8 and cov == pytest.approx(1 - 2 * 9 / 256)  # 2nd lowest..2nd highest: 93 %
        assert lo - 0.05 <= truth.get(p.name, 1.0) <= hi + 0.05
    assert rules.pairs[0].default_fused and not next(p for p in rules.pairs if p.name == "conv+maxpool").default_fused
    again = FusionRules.from_json(rules.to_json())
    assert again.verdicts() == verdict and again.device_key == "fake/t1/b1/fp32" and again.pairs == rules.pairs
    assert json.loads(rules.to_json())["format"] == "hwlat.fusion-rules/2"
    table = rules.table()
    assert "DIFFERS" in table and "93 % CI" in table
    with pytest.raises(ValueError, match="no fusion pair matches"):
        run_pair_tests(create_backend("fake"), Protocol.fixed(), pattern="nothing*", measure=measure)


def test_noisy_pairs_stay_undecided_and_keep_the_default():
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol

    # the follower's cost (0.29 ms) against 0.15 ms of noise on each model: shares all over the place
    measure, _ = synthetic({"add+relu": 1.0, "add+relu6": 0.0}, noise=0.15, seed=3)
    rules = run_pair_tests(create_backend("fake"), Protocol.fixed(), pattern="add+*", rounds=5, measure=measure)
    assert set(rules.verdicts().values()) == {"undecided"} and not any(p.differs for p in rules.pairs)
    assert "default kept" in rules.table() and "2 undecided" in rules.summary()
    default = rule_set("default")
    assert learned_rule_set(default, rules.pairs).kernels == default.kernels


def test_format_1_rules_still_load_as_undecided():
    old = {
        "format": "hwlat.fusion-rules/1",
        "device_key": "onnxruntime-cpu/t1/b1/fp32",
        "created_at": "2025-01-01T00:00:00Z",
        "hwlat_version": "0.0.9",
        "pairs": [
            {
                "name": "conv+relu",
                "head": "conv",
                "follower": "relu",
                "pair_ms": 0.57,
                "head_ms": 0.57,
                "follower_ms": 0.02,
                "overhead_ms": 0.01,
                "default_fused": True,
            },
            {
                "name": "add+relu",
                "head": "add",
                "follower": "relu",
                "pair_ms": 0.2,
                "head_ms": 0.1,
                "follower_ms": 0.05,
                "overhead_ms": 0.01,
                "default_fused": True,
            },
        ],
    }
    rules = FusionRules.from_json(json.dumps(old))
    assert rules.format == "hwlat.fusion-rules/1" and rules.verdicts() == {
        "conv+relu": "undecided",
        "add+relu": "undecided",
    }
    assert rules.pairs[1].follower_share == pytest.approx(2.5)  # still shown, not trusted
    assert "one measurement (format 1)" in rules.table()
    assert rules.rule_set().kernels == rule_set("onnxruntime").kernels
    with pytest.raises(ValueError, match="not hwlat fusion rules"):
        FusionRules.from_json(json.dumps({**old, "format": "hwlat.fusion-rules/9"}))


def test_cli_stores_rules_and_fit_uses_them(tmp_path, capsys):
    from hwlat.cli.main import main
    from hwlat.predict import LatencyPredictor
    from hwlat.predict.model import learned_rules
    from hwlat.store import LatencyStore

    db = tmp_path / "t.db"
    assert main(["fusion-rules", "--device", "fake", "--db", str(db), "--pairs", "add+*", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "add+relu" in out and "stored in" in out and "93 % CI" in out
    assert main(["measure", "--device", "fake", "--space", "add", "--n", "20", "--db", str(db), "--quiet"]) == 0
    with LatencyStore(db) as store:
        stored = FusionRules.from_json(store.fusion_rules("fake/t1/b1/fp32"))
        assert len(store.frame()) == 20  # the test models are not rows of the table: their rounds are in the rules
    assert all(len(p.rounds) == 8 for p in stored.pairs)
    p = LatencyPredictor().fit_table(db, device="fake/t1/b1/fp32")
    assert FusionRules.from_json(p.fusion_rules_).verdicts() == stored.verdicts()
    assert learned_rules(p).name == "default+learned"
    assert main(["fusion-rules", "--device", "fake", "--db", str(db), "--show"]) == 0
    shown = capsys.readouterr().out
    assert "default+learned" in shown and "hwlat.fusion-rules/2" in shown
    assert main(["fusion-rules", "--device", "litert-cpu", "--db", str(db), "--show"]) == 1
    assert "no fusion rules for litert-cpu" in capsys.readouterr().err
    assert main(["fusion-rules", "--device", "fake", "--db", str(db), "--rounds", "3"]) == 2
    assert "at least 5" in capsys.readouterr().err
