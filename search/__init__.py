"""Search frontends that consume hwlat's latency predictions as a cost.

:data:`SEARCHES` lists them by the names ``hwlat search NAME`` uses; importing
this package stays light (each search imports torch only when loaded).
"""

from hwlat.search._registry import SEARCHES, SearchInfo

__all__ = ["SEARCHES", "SearchInfo"]
