"""hwlat.spaces.models: the model-kernels space (every kind of real CNNs and small ViTs, over their ranges)."""

import math

import pytest

from hwlat.spaces import MODEL_KINDS, get_space, kind_spaces, sample_per_kind
from hwlat.spaces.models import MODEL_KERNEL_ELEMENTS, MODEL_KERNEL_FLOPS, TOKENS


def test_sample_per_kind_gives_n_distinct_configs_of_every_kind():
    ops = sample_per_kind(40, seed=1)
    assert len(ops) == 40 * len(MODEL_KINDS) == len({op.key for op in ops})
    assert {op.kind for op in ops} == set(MODEL_KINDS)
    assert [op.key for op in sample_per_kind(40, seed=1)] == [op.key for op in ops]  # reproducible
    assert [op.key for op in sample_per_kind(40, seed=2)] != [op.key for op in ops]


def test_configs_stay_inside_the_bounds_real_networks_have():
    for op in sample_per_kind(60, seed=0):
        assert op.flops <= MODEL_KERNEL_FLOPS
        assert max(math.prod(op.input_shape), math.prod(op.output_shape)) <= MODEL_KERNEL_ELEMENTS


def test_the_ranges_cover_stems_groups_heads_and_tokens():
    ops = sample_per_kind(150, seed=0, kinds=("conv", "linear", "act"))
    convs = [op for op in ops if op.kind == "conv"]
    assert any(op.cin == 3 and op.h >= 160 for op in convs)  # stems at the input resolution
    assert any(op.groups > 1 for op in convs) and any(op.groups == 1 for op in convs)
    assert any(op.cin >= 512 for op in convs) and any(op.cin <= 32 for op in convs)
    linears = [op for op in ops if op.kind == "linear"]
    assert any(op.cout == 1000 for op in linears) and any(op.tokens > 1 for op in linears)
    assert {op.act for op in ops if op.kind == "act"} >= {"hswish", "gelu", "sigmoid"}
    sizes = {op.h for op in convs}
    assert {20, 40, 80} & sizes  # sizes strided 160 px inputs have, not only powers of two


def test_the_mixed_space_and_unknown_kinds():
    space = get_space("model-kernels")
    assert set(space.kinds) == set(MODEL_KINDS) == set(kind_spaces())
    assert len({op.key for op in space.sample(100, seed=0)}) == 100
    with pytest.raises(ValueError, match="no model-kernels space for mbconv"):
        sample_per_kind(5, kinds=("conv", "mbconv"))


def test_slices_transposes_and_patch_embeddings_at_real_ranges():
    """ShuffleNetV2 half-splits of 24-1024 channels at 7-56 px (channels first and last), a ViT's q/k/v split and
    class token at 17-257 tokens; its transposes (heads 1-12, 64-768 dims); patch embeddings of 3-channel inputs."""
    ops = sample_per_kind(200, seed=0, kinds=("slice", "transpose", "patch_embed"))
    slices = [op for op in ops if op.kind == "slice"]
    halves = [op for op in slices if op.cin == 2 * op.cout]
    assert any(op.h == 1 and op.w in (7 * 7, 56 * 56) for op in halves) and any(op.w == 1 for op in halves)
    assert min(op.cin for op in halves) >= 24 and max(op.cin for op in halves) > 512
    assert {op.outputs for op in slices} == {1, 2, 3}
    assert any(op.cin == 3 and op.outputs == 3 and op.w % 17 == 0 for op in slices)  # q/k/v of (3, tokens * dim)
    assert any(op.cout == 1 and op.cin in (17, 197, 257) for op in slices)  # the class token
    transposes = [op for op in ops if op.kind == "transpose"]
    assert {op.heads for op in transposes} >= {1, 3, 12} and {op.cin for op in transposes} >= {1, 64}
    assert any(op.h == 2 and op.heads == 1 and op.cin > 1 for op in transposes)  # an NCHW shuffle in an NHWC graph
    patches = [op for op in ops if op.kind == "patch_embed"]
    assert any(op.cin == 3 and op.kernel == 16 and op.h == 224 for op in patches)
    assert any(op.kernel == 2 and op.cout == 2 * op.cin for op in patches)  # ConvNeXt-style downsampling
    assert any(op.heads > 1 and op.h in TOKENS and op.w in (32, 48, 64) for op in transposes)  # k^T per head
    assert all(op.h != op.w for op in transposes + slices if op.w == 1 or op.h == 1)  # not squares: views
