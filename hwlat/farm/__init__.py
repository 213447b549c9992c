"""The device farm: measure on many hosts, phones and GPUs at once, on a Ray cluster.

Optional (``pip install 'hwlat[farm]'``): Ray is imported only when a farm is used.

- :mod:`hwlat.farm.devices`: how a host advertises its devices (Ray custom resources
  ``adb:SERIAL``, ``NAME@HOST``) and how a named device is found in the cluster;
- :mod:`hwlat.farm.actor`: a device's measuring actor (the one measurement loop, one op at a
  time, in the backend's session) and the conversion tasks;
- :mod:`hwlat.farm.run`: the driver, :func:`run_measure_farm`, the table's only writer;
- :mod:`hwlat.farm.status`: devices, hosts, busy/idle and queue lengths;
- :mod:`hwlat.farm.worker`: the ``ray start`` command a host runs (``hwlat farm worker``).

See docs/farm.md for a two-host farm set up step by step.
"""

from __future__ import annotations

import argparse

from hwlat.farm._ray import FarmError, connect, import_ray
from hwlat.farm.devices import FarmDevice, advertise, parse_device
from hwlat.farm.run import FarmIncomplete, run_measure_farm, split_devices

__all__ = [
    "FarmDevice",
    "FarmError",
    "FarmIncomplete",
    "add_farm_argument",
    "advertise",
    "connect",
    "import_ray",
    "parse_device",
    "run_measure_farm",
    "split_devices",
]


def add_farm_argument(parser: argparse.ArgumentParser) -> argparse.Action:
    """Add ``--farm ADDRESS|local`` to ``parser`` (``args.farm``: None when not given)."""
    return parser.add_argument(
        "--farm",
        metavar="ADDRESS|local",
        default=None,
        help="measure on a Ray device farm: the head's HOST:PORT, 'auto', or 'local' (a Ray started here); "
        "devices are then a comma list of DEVICE[@HOST] (see docs/farm.md; needs pip install 'hwlat[farm]')",
    )
