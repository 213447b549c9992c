"""The ``hwlat`` command line: argument parsing and printing only; the work is in the library."""

from hwlat.cli.main import main

__all__ = ["main"]
