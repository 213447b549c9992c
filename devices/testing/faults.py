"""Failures the emulated phone can inject, and the exception that cuts a connection."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Drop", "Faults"]


@dataclass
class Faults:
    """Failures to inject; counters go down as they fire."""

    after_runs: int = 0  # the faults below fire only once this many benchmark_model runs have started
    disconnect_runs: int = 0  # benchmark_model runs that drop the connection after the warm-up
    offline_s: float = 0.5  # how long the phone then stays offline (not listed by host:devices)
    hang_runs: int = 0  # runs that print nothing and never end (until killed or hang_s passes)
    hang_s: float = 30.0
    malformed_runs: int = 0  # runs that print garbage and exit 0
    hot_c: float = 0.0  # start temperature of a hot phone (0: not hot) ...
    cool_s: float = 0.0  # ... cooling linearly to ambient over this many seconds
    hot_since: float = 0.0


class Drop(Exception):
    """Raised inside a service to cut the connection abruptly (cable pulled)."""
