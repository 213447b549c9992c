"""A zoo of real architecture families as plain ``torch.nn`` modules, with width and resolution variants.

Each family is written from its paper's published configuration (one module per family) and
checked against the published parameter counts (:data:`REFERENCES`). Every registered variant is
a :class:`ModelSpec`: a name such as ``mobilenetv2-w0.75-r160``, its family, its input shape
``(1, 3, R, R)`` and ``build() -> nn.Module`` (eval mode, random weights). Listing and looking up
variants imports no torch; building does.

The builders themselves live in :mod:`hwlat.models.families`, so a command line can name one
as ``hwlat.models.families:mobilenet_v2`` (keyword arguments ``width``/``variant``,
``resolution``, ``classes``, all with defaults).

Examples
--------
>>> spec = get_model("mobilenetv2-w0.75-r160")
>>> spec.family, spec.input_shape
('mobilenetv2', (1, 3, 160, 160))
>>> list_models("efficientnet-b0-*")
['efficientnet-b0-r160', 'efficientnet-b0-r192', 'efficientnet-b0-r224', 'efficientnet-b0-r256']
>>> "shufflenetv2" in list_families()
True
"""

from __future__ import annotations

from hwlat.models._count import count_macs, count_params
from hwlat.models._reference import REFERENCES, Reference
from hwlat.models._registry import FAMILIES, MODELS, Family, ModelSpec, load_factory, variant_name

__all__ = [
    "FAMILIES",
    "MODELS",
    "REFERENCES",
    "Family",
    "ModelSpec",
    "Reference",
    "count_macs",
    "count_params",
    "list_families",
    "get_model",
    "list_models",
    "load_factory",
    "variant_name",
]


def get_model(name: str) -> ModelSpec:
    """The registered variant ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not registered; the message gives the closest names and lists the valid ones.
    """
    return MODELS.get(name)


def list_models(pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
    """Registered variant names matching the shell wildcard ``pattern`` (or any of several), sorted."""
    return MODELS.names(pattern)


def list_families() -> list[str]:
    """The family names, sorted (``FAMILIES.get(name)`` gives a family's grid, paper and kernels)."""
    return FAMILIES.names()
