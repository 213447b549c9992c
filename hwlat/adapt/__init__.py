"""Few-shot transfer: a latency predictor for a new device from a few measurements and other devices' data.

``methods`` holds the adaptation (global scale, per-kind and roofline-group weights on the
source predictions, blends; chosen by cross-validation) for op predictors and architecture
tables; ``archtable`` the architectures x devices tables (HELP's data); ``select`` the choice
of what to measure; ``workflow`` what ``hwlat adapt`` runs (sources from files, the target table, saving).
"""

from hwlat.adapt.archtable import ArchTable, help_reference_rows, load_help, read_arch_table
from hwlat.adapt.methods import (
    ARCH_METHODS,
    MIN_N,
    OP_METHODS,
    TRUST_N,
    AdaptError,
    ArchAdapter,
    FewShotWarning,
    adapt_predictor,
    fit_arch,
)
from hwlat.adapt.select import choose_items, choose_rows

__all__ = [
    "ARCH_METHODS",
    "AdaptError",
    "ArchAdapter",
    "ArchTable",
    "FewShotWarning",
    "MIN_N",
    "OP_METHODS",
    "TRUST_N",
    "adapt_predictor",
    "choose_items",
    "choose_rows",
    "fit_arch",
    "help_reference_rows",
    "load_help",
    "read_arch_table",
]
