"""The published ProxylessNAS networks (Cai et al. 2019), stored as data."""

from __future__ import annotations

from hwlat.network import Network
from hwlat.zoo._base import Block, _variant, mbconv_network, register_network

__all__ = ["proxyless_blocks"]

# ------------------------------------------------------------ ProxylessNAS
# Published ProxylessNAS networks (Cai et al. 2019), transcribed from the released
# configs (han-cai/files, proxylessnas/proxyless_*.config): stem width, feature-mix
# width and one (kernel, expand, cout, stride) per block, None for a ZeroLayer block.
_PROXYLESS: dict[str, tuple[int, int, tuple[Block, ...]]] = {
    "proxyless-gpu": (
        40,
        1728,
        (
            (3, 1, 24, 1),
            (5, 3, 32, 2),
            None,
            None,
            None,
            (7, 3, 56, 2),
            None,
            None,
            (3, 3, 56, 1),
            (7, 6, 112, 2),
            None,
            None,
            (5, 3, 112, 1),
            (5, 6, 128, 1),
            None,
            (3, 3, 128, 1),
            (5, 3, 128, 1),
            (7, 6, 256, 2),
            (7, 6, 256, 1),
            (7, 6, 256, 1),
            (5, 6, 256, 1),
            (7, 6, 432, 1),
        ),
    ),
    "proxyless-cpu": (
        40,
        1432,
        (
            (3, 1, 24, 1),
            (3, 6, 32, 2),
            (3, 3, 32, 1),
            (3, 3, 32, 1),
            (3, 3, 32, 1),
            (3, 6, 48, 2),
            (3, 3, 48, 1),
            (3, 3, 48, 1),
            (5, 3, 48, 1),
            (3, 6, 88, 2),
            None,
            None,
            (3, 3, 88, 1),
            (5, 6, 104, 1),
            (3, 3, 104, 1),
            (3, 3, 104, 1),
            (3, 3, 104, 1),
            (5, 6, 216, 2),
            (5, 3, 216, 1),
            (5, 3, 216, 1),
            (3, 3, 216, 1),
            (5, 6, 360, 1),
        ),
    ),
    "proxyless-mobile": (
        32,
        1280,
        (
            (3, 1, 16, 1),
            (5, 3, 32, 2),
            (3, 3, 32, 1),
            None,
            None,
            (7, 3, 40, 2),
            (3, 3, 40, 1),
            (5, 3, 40, 1),
            (5, 3, 40, 1),
            (7, 6, 80, 2),
            (5, 3, 80, 1),
            (5, 3, 80, 1),
            (5, 3, 80, 1),
            (5, 6, 96, 1),
            (5, 3, 96, 1),
            (5, 3, 96, 1),
            (5, 3, 96, 1),
            (7, 6, 192, 2),
            (7, 6, 192, 1),
            (7, 3, 192, 1),
            (7, 3, 192, 1),
            (7, 6, 320, 1),
        ),
    ),
    "proxyless-mobile-14": (
        48,
        1792,
        (
            (3, 1, 24, 1),
            (5, 3, 40, 2),
            (3, 3, 40, 1),
            None,
            None,
            (7, 3, 56, 2),
            (3, 3, 56, 1),
            (5, 3, 56, 1),
            (5, 3, 56, 1),
            (7, 6, 112, 2),
            (5, 3, 112, 1),
            (5, 3, 112, 1),
            (5, 3, 112, 1),
            (5, 6, 136, 1),
            (5, 3, 136, 1),
            (5, 3, 136, 1),
            (5, 3, 136, 1),
            (7, 6, 256, 2),
            (7, 6, 256, 1),
            (7, 3, 256, 1),
            (7, 3, 256, 1),
            (7, 6, 448, 1),
        ),
    ),
}


def proxyless_blocks(name: str) -> tuple[Block, ...]:
    """Per-block choices of a published ProxylessNAS network (see ``_PROXYLESS``)."""
    try:
        return _PROXYLESS[name][2]
    except KeyError:
        raise ValueError(f"Unknown ProxylessNAS network {name!r}; valid: {', '.join(_PROXYLESS)}") from None


def _register_proxyless(name: str) -> None:
    stem, mix, blocks = _PROXYLESS[name]

    @register_network(name)
    def build(resolution: int = 224, classes: int = 1000) -> Network:
        return mbconv_network(
            _variant(name, resolution), blocks, stem=stem, mix=mix, resolution=resolution, classes=classes
        )

    build.__doc__ = f"Published {name} network (ProxylessNAS, Cai et al. 2019)."


for _name in _PROXYLESS:
    _register_proxyless(_name)
del _name
