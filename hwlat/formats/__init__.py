"""File formats hwlat reads and writes besides its own tables: published lookup tables and configs."""
