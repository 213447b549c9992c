"""Network latency as the searches see it: a fitted predictor, optionally calibrated on measured networks.

The calibration itself (term sets, fitting, applying) lives in
:mod:`hwlat.predict.calibration`; its names are re-exported here. This module
adds what needs a device or a table: :func:`calibrate_from_table` fits the
``"input-mb"`` terms on the networks stored in a latency table, and
:func:`measure_networks` times found networks through a
:class:`hwlat.store.LatencyStore`, so each measurement is a stored row with its
device and provenance.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from hwlat.network import Network
from hwlat.predict.calibration import CALIBRATION_TERMS, CalibratedPredictor, NetworkCalibration, input_mb
from hwlat.predict.protocol import LatencyModel

__all__ = [
    "CALIBRATION_TERMS",
    "NetworkCalibration",
    "CalibratedPredictor",
    "calibrate_from_table",
    "input_mb",
    "Interleaved",
    "measure_interleaved",
    "measure_network_passes",
    "measure_networks",
    "speed_ratios",
]

log = logging.getLogger(__name__)


def calibrate_from_table(
    predictor: LatencyModel, table: str, device_key: str | None = None, remeasure: str | None = None
) -> CalibratedPredictor:
    """``predictor`` calibrated on the whole networks measured in a latency table (SQLite).

    By default the table's own latencies are used with ``terms="input-mb"``. With
    ``remeasure=DEVICE`` the table's networks are measured again on DEVICE now
    (:func:`measure_networks`); the median ratio of now to the table is the machine's
    drift (a shared VM can run 1.3x slower on another day), and ``terms="scale-input-mb"``
    is fitted on the table's latencies times that drift. Budgets are then in today's
    milliseconds, while the noise of today's measurement enters through one median only
    (fitting all terms on today's noisy values left 45 % errors on this project's VM).

    Raises
    ------
    ValueError
        When the table holds fewer than 2 networks for the device (3 with ``remeasure``).
    """
    from hwlat.devices import DeviceSpec
    from hwlat.store import LatencyStore

    device_key = device_key or predictor.device_key_
    if device_key:
        try:  # "fake" and "fake/t1/b1/fp32" name the same device
            device_key = DeviceSpec.parse(device_key).key
        except ValueError:
            pass
    with LatencyStore(table, readonly=True) as store:
        df = store.frame(device_key or None, provenance=False)
        nets = store.networks()
    rows = df[(df["kind"] == "network") & df["op_key"].isin(list(nets))]
    if len(rows) < 2:
        raise ValueError(
            f"{table}: {len(rows)} measured networks for {device_key or 'the device'}; need >= 2 "
            "(measure some with `hwlat measure --networks ... --db TABLE`)"
        )
    networks = [nets[k] for k in rows["op_key"]]
    if remeasure:
        then = rows["median_ms"].to_numpy(dtype=float)
        drift = float(np.median(speed_ratios(measure_networks(remeasure, networks), list(zip(networks, then)))))
        calibration = NetworkCalibration.fit(predictor, networks, drift * then, terms="scale-input-mb")
        return CalibratedPredictor(predictor, dataclasses.replace(calibration, drift=drift))
    calibration = NetworkCalibration.fit(predictor, networks, rows["median_ms"].to_numpy(), terms="input-mb")
    return CalibratedPredictor(predictor, calibration)


MEASURE_PASSES = 3


def _measure_passes(backend, networks: Sequence[Network], protocol, passes: int) -> list[list]:
    """The :class:`hwlat.measure.Measurement` of each network, once per pass (each pass a new shuffled order)."""
    from hwlat.measure import Protocol, measure

    protocol = protocol or Protocol()
    return [
        list(measure(backend, networks, dataclasses.replace(protocol, seed=protocol.seed + k))) for k in range(passes)
    ]


def _unique(networks: Sequence[Network], passes: int) -> list[Network]:
    if passes < 1:
        raise ValueError(f"Invalid passes={passes}: must be >= 1")
    return list({n.key: n for n in networks}.values())


def measure_network_passes(
    device: str, networks: Sequence[Network], protocol=None, passes: int = MEASURE_PASSES
) -> list[dict[str, float]]:
    """Median latency (ms) of each network on ``device``, keyed by network key, once per pass.

    Each pass is a full :func:`hwlat.measure.timing.measure` session over all the networks (interleaved, in a
    new shuffled order).
    """
    from hwlat.devices import create_backend

    unique = _unique(networks, passes)
    if not unique:
        return [{} for _ in range(passes)]
    runs = _measure_passes(create_backend(device), unique, protocol, passes)
    return [{m.op_key: m.median_ms for m in run} for run in runs]


def measure_networks(
    device: str, networks: Sequence[Network], protocol=None, passes: int = MEASURE_PASSES, store=None
) -> dict[str, float]:
    """Latency (ms) of each network on ``device``, keyed by network key: the fastest of ``passes`` medians.

    On a shared machine other tenants slow everything down for seconds at a time and only ever add
    time; one pass caught in such a phase made a search's calibration fit a negative scale. Keeping
    each network's fastest pass costs ``passes`` times the measuring time (a few seconds for the
    networks a search measures).

    Parameters
    ----------
    device : str
        Device spec (``hwlat devices``).
    networks : sequence of Network
        Networks to measure (duplicates are measured once).
    protocol : Protocol, optional
        Measurement protocol (default ``Protocol()``).
    passes : int
        Measuring sessions; each network keeps its fastest.
    store : LatencyStore, optional
        Where each network's kept measurement is written, as ``hwlat measure --networks`` writes it
        (the network's definition, the device's provenance record and the row, replacing an older row
        of the same network, device and protocol). Default: a temporary in-memory store. The returned
        latencies are read back from it.
    """
    from hwlat.devices import create_backend
    from hwlat.store import LatencyStore

    unique = _unique(networks, passes)
    if not unique:
        return {}
    backend = create_backend(device)
    runs = _measure_passes(backend, unique, protocol, passes)
    fastest = {}
    for run in runs:
        for m in run:
            if m.op_key not in fastest or m.median_ms < fastest[m.op_key].median_ms:
                fastest[m.op_key] = m
    target = store if store is not None else LatencyStore(":memory:")
    try:
        info_id = target.add_device(backend.describe())
        by_key = {n.key: n for n in unique}
        for m in fastest.values():
            target.add_network(by_key[m.op_key])
            target.add(m, info_id, replace=True)
        return _stored_medians(target, [fastest[n.key] for n in unique if n.key in fastest])
    finally:
        if store is None:
            target.close()


@dataclasses.dataclass(frozen=True)
class Interleaved:
    """A network measured in the same sessions (same shuffled rounds) as the calibration networks.

    Attributes
    ----------
    measured_ms : float
        The network's fastest pass, as :func:`measure_networks` reports it: today's machine speed.
    corrected_ms : float or None
        The network's latency at the speed the calibration networks were measured at: per pass, its
        median divided by that pass's ``speed`` (the median over the calibration networks of
        now / calibration-time latency), then the median over passes. This is the number to compare
        with a calibrated prediction: the machine's change of speed is divided out, the predictor's
        error stays. None without a reference.
    speed_ratio : float or None
        The machine's speed during the measurement relative to calibration time (> 1: slower),
        median over passes; None without a reference.
    pass_ratios : tuple of float
        ``speed`` of each pass.
    """

    measured_ms: float
    corrected_ms: float | None = None
    speed_ratio: float | None = None
    pass_ratios: tuple[float, ...] = ()


def measure_interleaved(
    device: str,
    network: Network,
    reference: Sequence[tuple[Network, float]],
    protocol=None,
    passes: int = MEASURE_PASSES,
) -> Interleaved:
    """Measure ``network`` interleaved with the ``reference`` networks (network, calibration-time ms).

    All of them are timed in each pass's one :func:`hwlat.measure.measure` session (shuffled rounds),
    so a pass caught in a slow spell of a shared machine slows the network and the reference alike,
    and dividing by the pass's speed ratio removes it (:class:`Interleaved`).
    """
    from hwlat.devices import create_backend

    ref = [(n, float(ms)) for n, ms in reference if n.key != network.key and ms > 0]
    unique = _unique([network, *(n for n, _ in ref)], passes)
    runs = _measure_passes(create_backend(device), unique, protocol, passes)
    found, ratios = [], []
    for run in runs:
        now = {m.op_key: m.median_ms for m in run}
        found.append(now[network.key])
        r = speed_ratios(now, ref)
        if r.size:
            ratios.append(float(np.median(r)))
    if not ratios:
        return Interleaved(min(found))
    corrected = float(np.median([f / r for f, r in zip(found, ratios)]))
    return Interleaved(min(found), corrected, float(np.median(ratios)), tuple(ratios))


def _stored_medians(store, measurements) -> dict[str, float]:
    """``{op_key: median_ms}`` of ``measurements`` (in their order) as ``store`` holds them.

    Rows are keyed by device, op and protocol, so this reads exactly the rows just written."""
    measurements = list(measurements)
    rows = {}
    for device_key in {m.device_key for m in measurements}:
        rows.update({(r.device_key, r.op_key, r.protocol): r.median_ms for r in store.measurements(device_key)})
    return {m.op_key: float(rows[(m.device_key, m.op_key, m.protocol)]) for m in measurements}


def speed_ratios(now: dict[str, float], reference: Sequence[tuple[Network, float]]) -> np.ndarray:
    """``now`` latency / reference latency of each reference network found in ``now``: how much slower
    (> 1) or faster the machine runs than when the reference was measured."""
    return np.array([now[n.key] / ms for n, ms in reference if n.key in now], dtype=float)
