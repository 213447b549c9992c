"""hwlat.spaces.auto: configs sampled around real models' kernels, then adaptively near the worst predicted."""

import random

import pytest

from hwlat.ops import OpSpec
from hwlat.spaces import get_space
from hwlat.spaces.auto import auto_space, out_of_fold_errors, perturb, sample_adaptive

PRIOR = [
    OpSpec("conv", cin=32, cout=64, h=40, w=40, kernel=3, stride=1, act="relu"),
    OpSpec("conv", cin=64, cout=64, h=28, w=28, kernel=3, stride=1, act="relu", groups=64),
    OpSpec("pwconv", cin=64, cout=128, h=28, w=28, act="relu6"),
    OpSpec("add", cin=64, h=28, w=28, act="none"),
]


def space(**kw):
    return auto_space(["test"], prior=PRIOR, **kw)


def test_draws_are_valid_distinct_and_near_the_real_kernels():
    ops = space().sample(60, seed=0)
    assert len({op.key for op in ops}) == 60
    assert {op.kind for op in ops} <= {"conv", "pwconv", "add"} and len({op.kind for op in ops}) == 3
    real = {op.key for op in PRIOR}
    assert not real & {op.key for op in ops}  # the models' own kernels are left out by default
    for op in ops:
        assert 8 <= op.cin <= 256 and op.cin % 8 == 0
        assert 20 <= op.h <= 44
        if op.kind == "conv" and op.groups > 1:
            assert op.groups == op.cin == op.cout  # depthwise stays depthwise


def test_include_real_and_perturb_keeps_stems():
    assert {op.key for op in PRIOR} <= {op.key for op in space(include_real=True).configs()}
    stem = OpSpec("conv", cin=3, cout=16, h=224, w=224, kernel=3, stride=2, act="hswish")
    rng = random.Random(0)
    for _ in range(20):
        out = perturb(stem, rng, {})
        assert out is None or out.cin == 3


def test_get_space_and_no_models():
    with pytest.raises(ValueError, match="auto space needs models"):
        get_space("auto:")


def hard_region(ops):
    """Latency with a step the predictor cannot know in advance: adds above 40 px cost 10x."""
    return [
        (10.0 if op.kind == "add" and op.h > 40 else 1.0) * (0.01 + 1e-8 * op.bytes + 1e-9 * op.flops) for op in ops
    ]


def test_adaptive_rounds_total_n_never_repeat_and_go_where_the_error_is():
    calls = []

    def measure(batch):
        calls.append(list(batch))
        return hard_region(batch)

    known_op = OpSpec("add", cin=64, h=48, w=48, act="none")
    new, rounds = sample_adaptive(
        space(), 60, measure, seed=1, rounds=3, known=[(known_op, hard_region([known_op])[0])]
    )
    keys = [op.key for op in new]
    assert len(new) == 60 == sum(r.measured for r in rounds) == sum(len(c) for c in calls)
    assert len(set(keys)) == 60 and known_op.key not in keys
    assert [r.index for r in rounds] == [0, 1, 2] and rounds[0].measured == 30 and rounds[0].around_worst == 0
    assert rounds[1].around_worst > 0 and rounds[1].cv_mape

    # later rounds sample the hard adds (big ones) more often than the prior round did
    def share(batch):
        return sum(op.kind == "add" for op in batch) / len(batch)

    assert share(calls[1] + calls[2]) > share(calls[0])


def test_out_of_fold_errors_are_small_on_a_smooth_latency_and_nan_for_tiny_kinds():
    ops = space().sample(40, seed=2) + [OpSpec("gap", cin=64, h=7, w=7)]
    err = out_of_fold_errors(ops, hard_region(ops))
    assert err[-1] != err[-1]  # NaN: one gap config cannot be cross-validated
    smooth = [e for op, e in zip(ops, err) if op.kind == "pwconv"]
    assert smooth and max(smooth) < 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="n >= 1"):
        sample_adaptive(space(), 0, hard_region)
