"""Composed networks (hwlat.models.composed): reproducible plans, the blocks real networks have, bounded size."""

from __future__ import annotations

import collections

import pytest

from hwlat.models import count_macs, list_models
from hwlat.models.composed import BLOCKS, MAX_MACS, describe_network, network_spec, plan_of, sample_networks
from hwlat.workflows import composed_specs, resolve_models


def test_a_seed_gives_the_same_plan_and_resolution_only_replaces_the_input():
    assert describe_network(7) == describe_network(7)
    assert describe_network(7) != describe_network(8)
    fixed = describe_network(7, resolution=96)
    assert fixed["resolution"] == 96 and {**fixed, "resolution": describe_network(7)["resolution"]} == describe_network(
        7
    )


def test_forty_plans_cover_every_block_type_and_vision_transformers():
    blocks = collections.Counter()
    for seed in range(40):
        plan = describe_network(seed)
        blocks.update({s["block"] for s in plan.get("stages", [])} or {"vit"})
    assert set(BLOCKS) | {"vit"} == set(blocks)


def test_sample_networks_are_specs_outside_the_zoo():
    specs = sample_networks(3, seed=5)
    assert [s.name for s in specs] == ["composed-5", "composed-6", "composed-7"]
    assert all(s.family == "composed" and s.factory == "hwlat.models.families:random_network" for s in specs)
    assert not set(list_models()) & {s.name for s in specs}
    with pytest.raises(ValueError, match="must be >= 1"):
        sample_networks(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 2, 7, 13])
def test_networks_build_run_and_stay_under_the_mac_limit(seed):
    import torch

    spec = network_spec(seed)
    model = spec.build()
    assert spec.input_shape == (1, 3, plan_of(seed)["resolution"], plan_of(seed)["resolution"])
    assert 0 < count_macs(model, spec.input_shape) <= MAX_MACS
    with torch.no_grad():
        assert tuple(model(torch.zeros(spec.input_shape)).shape) == (1, 1000)


def test_composed_names_on_the_command_line():
    assert [s.name for s in composed_specs("composed:2:10")] == ["composed-10", "composed-11"]
    assert [s.name for s in composed_specs("composed:1")] == ["composed-0"]
    for bad in ("composed:", "composed:0", "composed:x", "composed:1:2:3"):
        with pytest.raises(ValueError, match="composed:N or composed:N:SEED"):
            composed_specs(bad)


@pytest.mark.slow
def test_resolve_models_builds_composed_networks_as_models():
    (model,) = resolve_models("composed:1:17")
    assert model.name == "composed-17" and model.kind == "model" and model.key.startswith("model:composed-17:")
    assert model.input_shape == network_spec(17).input_shape
    # the graph also counts pooling and squeeze MACs, which the papers' count leaves out
    assert 1.0 <= model.graph().macs / count_macs(network_spec(17).build(), model.input_shape) < 1.1
