"""The one Registry class and the registries built on it (backends, op kinds, spaces, networks)."""

from __future__ import annotations

import pytest

from hwlat import ops, spaces, zoo
from hwlat.devices import _registry
from hwlat.registry import Registry


def test_register_get_names_and_wildcards():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1)
    reg.register("beta")(2)
    assert reg.get("alpha") == 1 and reg.get("beta") == 2
    assert reg.names() == ["alpha", "beta"] and reg.names("a*") == ["alpha"]
    assert reg.names(["a*", "b*"]) == ["alpha", "beta"] and reg.names("z*") == []
    assert "alpha" in reg and "gamma" not in reg and len(reg) == 2 and list(reg) == ["alpha", "beta"]
    assert reg.items() == [("alpha", 1), ("beta", 2)]


def test_unknown_names_list_the_valid_ones():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match=r"Unknown thing 'alpah' \(did you mean 'alpha'\?\); valid things: alpha"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="Unknown thing 'zzz'; valid things: alpha"):
        reg.get("zzz")
    with pytest.raises(ValueError, match="valid things: alpha"):
        reg.get(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 3)


def test_reregistering_warns_and_unregister_removes():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1)
    reg.register("alpha", 1)  # the same object again: no warning
    with pytest.warns(UserWarning, match="'alpha' registered again"):
        reg.register("alpha", 2)
    assert reg.get("alpha") == 2
    assert reg.unregister("alpha") == 2 and "alpha" not in reg
    with pytest.raises(ValueError, match="Unknown thing 'alpha'"):
        reg.unregister("alpha")


@pytest.mark.parametrize(
    ("registry", "what", "example"),
    [
        (_registry.BACKENDS, "device", "fake"),
        (ops.KINDS, "op kind", "mbconv"),
        (spaces.SPACES, "space", "mbconv"),
        (zoo.NETWORKS, "network", "resnet18"),
    ],
)
def test_each_name_kind_uses_the_one_registry_class(registry, what, example):
    assert isinstance(registry, Registry) and registry.what == what and example in registry.names()
    with pytest.raises(ValueError, match=f"valid {what}s: .*{example}"):
        registry.get("no-such-name")


def test_list_functions_filter_with_wildcards():
    from hwlat.devices import list_backends

    assert list_backends(["fake", "torch-*"]) == ["fake", "torch-cpu"]
    assert spaces.list_spaces("digits-*") == ["digits-darc", "digits-mbconv", "digits-widths"]
    assert zoo.list_networks(["resnet*"]) == ["resnet-digits", "resnet18"]
    assert ops.list_op_kinds("*conv") == ["conv", "dwconv", "pwconv", "mbconv", "dsconv"]  # registration order
    assert ops.list_op_kinds() == list(ops.OP_KINDS)
