"""hwlat: hardware-aware latency benchmarking and prediction of neural networks."""

from hwlat.network import Network
from hwlat.ops import OP_KINDS, OpSpec

__version__ = "0.1.0"
__all__ = ["Network", "OpSpec", "OP_KINDS", "__version__"]
