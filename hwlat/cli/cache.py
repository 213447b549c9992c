"""``hwlat cache info|clear``: the converted-model cache (``$HWLAT_CACHE``, see :mod:`hwlat.cache`).

hwlat cache info     where it is, its entries, their size and the limit (HWLAT_CACHE_MAX_GB)
hwlat cache clear    remove every converted model (they are converted again when next measured)
"""

from __future__ import annotations

import argparse


def cmd_cache(args: argparse.Namespace) -> int:
    from hwlat import cache

    if args.action == "info":
        for line in cache.info().lines():
            print(line)
        return 0
    n, size = cache.clear()
    print(f"removed {n} entries ({cache.format_size(size)}) from {cache.cache_root()}")
    return 0


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat cache info`` and ``hwlat cache clear``."""
    t = sub.add_parser("cache", help="the converted-model cache: where it is and its size, or clear it")
    csub = t.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = csub.add_parser("info", help="path, entries, total size and size limit (HWLAT_CACHE_MAX_GB, default 5)")
    s.set_defaults(func=cmd_cache)
    s = csub.add_parser("clear", help="remove every cached model (converted again when next needed)")
    s.set_defaults(func=cmd_cache)
