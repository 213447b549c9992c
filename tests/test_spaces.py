"""Search spaces: deterministic, duplicate-free, valid samples; backbone networks."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from hwlat import spaces, zoo
from hwlat.ops import OpSpec
from hwlat.spaces import PROXYLESS_BACKBONE, backbone_blocks, backbone_network, get_space, list_spaces

torch = pytest.importorskip("torch")

GENERIC = ["conv", "dwconv", "pwconv", "dsconv", "dsconv_pw", "resblock", "linear", "pool", "darc", "mixed"]


def test_registry():
    assert set(list_spaces()) >= {*GENERIC, "mbconv", "mbconv-backbone"}
    assert list_spaces("mbconv*") == ["mbconv", "mbconv-backbone"]
    with pytest.raises(ValueError, match="mbconv-backbone") as info:
        get_space("mbconv-typo")
    assert "mbconv-typo" in str(info.value)


def test_reregistering_warns():
    spaces.register_space("_test")(lambda: get_space("conv"))
    try:
        with pytest.warns(UserWarning, match="_test"):
            spaces.register_space("_test")(lambda: get_space("pool"))
        assert get_space("_test").name == "pool"
    finally:
        spaces.SPACES.unregister("_test")


@pytest.mark.parametrize("name", list_spaces())
def test_samples_are_deterministic_distinct_and_valid(name):
    space = get_space(name)
    assert space.name == name and space.description and space.kinds
    size = space.bound()
    n = 40 if size > 80 else min(40, len(space.configs()))  # the digits spaces are small
    ops = space.sample(n, seed=5)
    assert ops == space.sample(n, seed=5)
    if n == 40 and size > 80:
        assert ops != space.sample(n, seed=6)
    assert len({op.key for op in ops}) == n
    for op in ops:
        assert isinstance(op, OpSpec) and op.kind in space.kinds
        assert OpSpec.from_key(op.key) == op
        assert op.h == op.w or op.kind in ("slice", "transpose")  # theirs: the sizes around the axes they move


@pytest.mark.parametrize("name", GENERIC)
def test_generic_spaces_stay_small(name):
    assert all(op.flops <= spaces.MAX_FLOPS for op in get_space(name).sample(200, seed=1))


@pytest.mark.parametrize("name", list_spaces())
def test_samples_build_and_run(name):
    for op in get_space(name).sample(4, seed=2):
        with torch.no_grad():
            y = op.build()(torch.randn(op.input_shape))
        assert all(tuple(part.shape) == op.output_shape for part in (y if isinstance(y, tuple) else (y,)))  # splits


def test_too_many_says_how_many():
    space = get_space("mbconv-backbone")
    assert len(space.sample(len(space.configs()))) == len(space.configs()) == 71
    with pytest.raises(ValueError, match="only 71 distinct"):
        space.sample(72)
    with pytest.raises(ValueError, match="only 16768 distinct"):
        get_space("linear").sample(10**6)


def test_mixed_covers_every_kind():
    kinds = {op.kind for op in get_space("mixed").sample(300)}
    assert kinds == set(get_space("mixed").kinds)


# ------------------------------------------------------------- backbone
def test_backbone_blocks():
    slots = list(backbone_blocks())
    assert len(slots) == 21
    assert slots[0] == (16, 24, 112, 112, 2, False)
    assert slots[-1] == (192, 320, 7, 7, 1, False)
    assert sum(s.skippable for s in slots) == 15
    for a, b in itertools.pairwise(slots):  # positions chain
        assert b.cin == a.cout and b.h == -(-a.h // a.stride)


def test_mbconv_backbone_is_the_lookup_table_grid():
    ops = get_space("mbconv-backbone").configs()
    mb = [op for op in ops if op.kind == "mbconv"]
    # 11 distinct block shapes x (3 kernels x 2 expands) + the first block x 3 kernels.
    assert len(mb) == 11 * 6 + 3
    slots = {(s.cin, s.cout, s.h, s.stride) for s in backbone_blocks()}
    assert {(op.cin, op.cout, op.h, op.stride) for op in mb} == slots | {(32, 16, 112, 1)}
    assert {op.kind for op in ops} == {"stem", "mbconv", "head"}


def test_mbconv_space_has_off_grid_widths_and_keeps_skips():
    space = get_space("mbconv")
    rng = random.Random(0)
    draws = [space.draw(rng) for _ in range(1000)]
    grid = {(s.cin, s.cout) for s in backbone_blocks()} | {(32, 16)}
    off = [op for op in draws if (op.cin, op.cout) not in grid]
    assert 0.3 < len(off) / len(draws) < 0.6  # half are rescaled; some round back onto the grid
    assert all(op.cin % 8 == 0 and op.cout % 8 == 0 and op.cin >= 8 for op in off)
    assert all(op.expand in (3, 6) or (op.h, op.expand) == (112, 1) for op in draws)
    # Every stride-1 position at 56 and 28 px has cin == cout: rescaling keeps its skip.
    assert all(op.has_skip for op in draws if op.stride == 1 and op.h in (56, 28))


def _choices(name: str) -> list:
    return [b if b is None else b[:2] for b in zoo.proxyless_blocks(name)[1:]]


def test_backbone_network_reproduces_proxyless_mobile():
    choices = _choices("proxyless-mobile")
    mobile = zoo.get_network("proxyless-mobile")
    # proxyless-mobile widened the first stage to 32 channels; with that width it is identical.
    widened = PROXYLESS_BACKBONE.replace(stages=((32, 4, 2), *PROXYLESS_BACKBONE.stages[1:]))
    assert backbone_network(choices, "proxyless-mobile", widened) == mobile
    # On the plain backbone the same choices give the same kernels, expands and skipped blocks.
    net = backbone_network(choices)
    assert len(net) == len(mobile)
    assert [(op.kind, op.kernel, op.expand, op.stride) for op in net.ops] == [
        (op.kind, op.kernel, op.expand, op.stride) for op in mobile.ops
    ]


@pytest.mark.parametrize("name", ["proxyless-gpu", "proxyless-cpu", "proxyless-mobile-14"])
def test_every_published_network_is_a_backbone_network(name):
    stem, mix, blocks = zoo.proxyless._PROXYLESS[name]
    stages, i = [], 1
    for _, n, stride in PROXYLESS_BACKBONE.stages:
        stages.append((blocks[i][2], n, stride))
        i += n
    backbone = PROXYLESS_BACKBONE.replace(stem=stem, first=blocks[0][2], stages=tuple(stages), mix=mix)
    assert backbone_network(_choices(name), name, backbone) == zoo.get_network(name)


def test_backbone_network_rejects_bad_choices():
    good = [(3, 6)] * 21
    with pytest.raises(ValueError, match="21"):
        backbone_network(good[:-1])
    with pytest.raises(ValueError, match="first of its stage"):
        backbone_network([None, *good[1:]])
    with pytest.raises(ValueError, match="kernel"):
        backbone_network([(4, 6), *good[1:]])


def test_random_networks():
    a, b = spaces.random_network(1), spaces.random_network(1, name="x")
    assert a.ops == b.ops and a.name == "random-1" and b.name == "x"
    nets = spaces.sample_networks(20, seed=4)
    assert nets == spaces.sample_networks(20, seed=4)
    assert len({n.key for n in nets}) == 20 and len({n.ops for n in nets}) == 20
    assert any(len(n) < 24 for n in nets)  # some blocks are skipped
    for net in nets:
        assert net.ops[0].kind == "stem" and net.ops[-1].output_shape == (1, 1000)
        assert all(op.kind == "mbconv" for op in net.ops[1:-1])
    small = PROXYLESS_BACKBONE.replace(resolution=32, classes=10)
    net = spaces.random_network(2, backbone=small)
    with torch.no_grad():
        assert tuple(net.build()(torch.randn(net.input_shape)).shape) == (1, 10)


SHARED = Path(__file__).resolve().parents[1] / "datasets_lat" / "published"


def test_mbconv_backbone_matches_published_lookup_table():
    lut = pytest.importorskip("hwlat.formats.lut")
    yaml = pytest.importorskip("yaml")
    keys = set()
    for op in get_space("mbconv-backbone").configs():
        if op.kind == "head":  # the LUT splits hwlat's head into Conv_1 (feature mix) and Logits
            keys.add(lut.lut_key(OpSpec("pwconv", cin=op.cin, cout=op.mid, h=op.h, w=op.w)))
            keys.add(lut.lut_key(OpSpec("head", cin=op.mid, cout=op.cout, h=op.h, w=op.w)))
        else:
            keys.add(lut.lut_key(op))
    published = yaml.safe_load((SHARED / "proxylessnas_mobile_trim.yaml").read_text())
    assert keys == set(published)
