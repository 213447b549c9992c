"""The network zoo: named builders of whole :class:`~hwlat.network.Network` objects.

Builders are registered with :func:`register_network` and called through
:func:`get_network`. One module per family: ``classic`` (MobileNetV1/V2,
ResNet-18), ``proxyless`` (the published ProxylessNAS networks, stored as
plain tuples transcribed from their released JSON configs: nothing is read
from disk at run time) and ``digits`` (the scikit-learn digits demos). The
reader of the JSON configs themselves is :mod:`hwlat.formats.proxyless`.

Examples
--------
>>> net = get_network("proxyless-mobile", resolution=64)
>>> net.input_shape
(1, 3, 64, 64)
>>> "resnet18" in list_networks("res*")
True
"""

from __future__ import annotations

from hwlat.formats.proxyless import from_proxyless_config
from hwlat.zoo._base import (
    NETWORKS,
    Block,
    Builder,
    get_network,
    list_networks,
    make_divisible,
    mbconv_network,
    register_network,
)
from hwlat.zoo.classic import mobilenetv1, mobilenetv2, resnet18
from hwlat.zoo.digits import (
    MOBILENET_DIGITS_STAGES,
    MOBILENET_DIGITS_STEM,
    RESNET_DIGITS_STAGES,
    RESNET_DIGITS_STEM,
    mobilenet_digits,
    resnet_digits,
)
from hwlat.zoo.proxyless import proxyless_blocks

__all__ = [
    "NETWORKS",
    "Block",
    "Builder",
    "register_network",
    "get_network",
    "list_networks",
    "make_divisible",
    "proxyless_blocks",
    "mbconv_network",
    "from_proxyless_config",
    "mobilenetv1",
    "mobilenetv2",
    "resnet18",
    "mobilenet_digits",
    "resnet_digits",
    "MOBILENET_DIGITS_STAGES",
    "MOBILENET_DIGITS_STEM",
    "RESNET_DIGITS_STAGES",
    "RESNET_DIGITS_STEM",
]
