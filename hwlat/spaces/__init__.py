"""Search spaces: samplers of op configurations, registered by name.

A :class:`Space` draws :class:`~hwlat.ops.OpSpec` configurations for a latency
table: ``get_space("mbconv").sample(500, seed=0)``. The ProxylessNAS backbone
is stored as data (:data:`PROXYLESS_BACKBONE`) so the MBConv spaces, random
networks and the search frontends agree on block positions.

One module per family: ``_base`` (the :class:`Space` type and the registry),
``generic`` (grids of op kinds), ``kernels`` (the kernel vocabulary of real models: SE, grouped
convs, adds, concats, resize, softmax, LayerNorm, attention, ...), ``models`` (``model-kernels``: every kind real
CNNs and small ViTs contain, sampled over their ranges, for predicting users' models), ``proxyless`` (the
backbone, its networks and MBConv spaces), ``candidates`` (what a searchable block or a DARC layer may
become) and ``digits`` (the scikit-learn digits demos).

Examples
--------
>>> ops = get_space("mbconv-backbone").sample(5, seed=1)
>>> len({op.key for op in ops})
5
>>> len(list(backbone_blocks()))
21
>>> list_spaces("digits-*")
['digits-darc', 'digits-mbconv', 'digits-widths']
"""

from __future__ import annotations

from hwlat.spaces._base import SPACES, Space, get_space, list_spaces, register_space
from hwlat.spaces.candidates import (
    DARC_CANDIDATES,
    backbone_fixed_ops,
    block_candidates,
    block_choices,
    darc_candidates,
)
from hwlat.spaces.digits import (
    DIGITS_BACKBONE,
    DIGITS_CHANNEL_MULTIPLE,
    DIGITS_RESOLUTIONS,
    DIGITS_WIDTH_RANGE,
)
from hwlat.spaces.generic import CHANNELS, MAX_FLOPS, RESOLUTIONS
from hwlat.spaces.kernels import KERNEL_SPACES
from hwlat.spaces.models import MODEL_KINDS, kind_spaces, sample_per_kind
from hwlat.spaces.proxyless import (
    MBCONV_EXPANDS,
    MBCONV_KERNELS,
    PROXYLESS_BACKBONE,
    Backbone,
    BlockSlot,
    Choice,
    backbone_blocks,
    backbone_network,
    random_network,
    sample_networks,
)

__all__ = [
    "Space",
    "SPACES",
    "Backbone",
    "BlockSlot",
    "Choice",
    "PROXYLESS_BACKBONE",
    "MAX_FLOPS",
    "RESOLUTIONS",
    "CHANNELS",
    "KERNEL_SPACES",
    "MODEL_KINDS",
    "kind_spaces",
    "sample_per_kind",
    "MBCONV_KERNELS",
    "MBCONV_EXPANDS",
    "register_space",
    "get_space",
    "list_spaces",
    "backbone_blocks",
    "backbone_network",
    "random_network",
    "sample_networks",
    "DIGITS_BACKBONE",
    "DIGITS_CHANNEL_MULTIPLE",
    "DIGITS_RESOLUTIONS",
    "DIGITS_WIDTH_RANGE",
    "DARC_CANDIDATES",
    "block_candidates",
    "block_choices",
    "backbone_fixed_ops",
    "darc_candidates",
]
