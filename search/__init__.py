"""Search frontends that consume hwlat's latency predictions as a cost."""
