"""Network latency as the searches see it: a fitted predictor, optionally calibrated on measured networks.

Op latencies in a table are timed one op per inference call, so each carries
the fixed cost of a call (on ONNX Runtime about 5 µs, as much as a whole small
MBConv block). A network pays that cost once, not once per op: summing ops
over-predicts small networks, by up to 2x on the digits backbone. A search can
therefore calibrate the predictor on a few networks of its own space measured
on the target device: ``measured ≈ scale · Σ predicted(op) + per_op · n_ops + offset``
(least squares in relative error). :class:`CalibratedPredictor` applies that
per op, so :class:`hwlat.cost.LatencyLUT` built from it stays a plain sum.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = ["NetworkCalibration", "CalibratedPredictor", "measure_networks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkCalibration:
    """``network ms ≈ scale · Σ op predictions + per_op_ms · n_ops + offset_ms``.

    Parameters
    ----------
    scale, per_op_ms, offset_ms : float
        The fitted terms (``per_op_ms`` is negative when single-op timings
        include a per-call cost that a network pays once).
    n_networks : int
        How many measured networks the terms were fitted on (0 = not fitted).
    max_rel_error : float
        Largest relative error of the fit on those networks.
    """

    scale: float = 1.0
    per_op_ms: float = 0.0
    offset_ms: float = 0.0
    n_networks: int = 0
    max_rel_error: float = float("nan")

    @classmethod
    def fit(cls, predictor, networks: Sequence[Network], measured_ms: Sequence[float]) -> NetworkCalibration:
        """Least squares in relative error; fewer than 3 networks (or one op count) fit fewer terms."""
        measured = np.asarray(measured_ms, dtype=float)
        if len(networks) != len(measured) or len(measured) == 0:
            raise ValueError(f"calibration needs one measured latency per network, got {len(networks)} networks "
                             f"and {len(measured)} latencies")  # fmt: skip
        if not np.all(np.isfinite(measured)) or np.any(measured <= 0):
            raise ValueError("measured latencies must be finite and > 0 ms")
        sums = np.array([float(predictor.predict(list(n.ops)).sum()) for n in networks])
        counts = np.array([len(n.ops) for n in networks], dtype=float)
        columns = [sums, np.ones_like(sums)]
        with_count = len(measured) >= 3 and np.ptp(counts) > 0
        if with_count:
            columns.insert(1, counts)
        A = np.stack(columns, 1) / measured[:, None]
        if len(measured) == 1:  # one network: a scale only
            coef = np.array([measured[0] / sums[0], 0.0])
        else:
            coef, *_ = np.linalg.lstsq(A, np.ones_like(measured), rcond=None)
        scale = float(coef[0])
        per_op = float(coef[1]) if with_count else 0.0
        offset = float(coef[-1])
        if scale <= 0:
            # A non-positive scale would reward the search for slower ops: keep the plain sum instead.
            log.warning("calibration gave scale %.3f <= 0; using scale 1 and a fitted offset", scale)
            scale, per_op = 1.0, 0.0
            offset = float(np.mean(measured - sums))
        pred = scale * sums + per_op * counts + offset
        err = float(np.max(np.abs(pred / measured - 1)))
        return cls(scale, per_op, offset, len(measured), err)


class CalibratedPredictor:
    """A fitted :class:`~hwlat.predict.LatencyPredictor` seen through a :class:`NetworkCalibration`.

    ``predict(ops)`` gives each op's share of a network's latency
    (``scale · p(op) + per_op_ms``); ``predict_network`` adds ``offset_ms``.
    Without a calibration it predicts exactly what the predictor does.
    Provides what :class:`hwlat.cost.LatencyLUT` reads (``predict``,
    ``overhead_ms_``, ``scale_``).
    """

    def __init__(self, predictor, calibration: NetworkCalibration | None = None) -> None:
        self.predictor = predictor
        self.calibration = calibration
        if calibration is None:
            self._scale = float(getattr(predictor, "scale_", 1.0))
            self._per_op, self.overhead_ms_ = 0.0, float(getattr(predictor, "overhead_ms_", 0.0))
        else:
            self._scale, self._per_op, self.overhead_ms_ = calibration.scale, calibration.per_op_ms, calibration.offset_ms
        self.scale_ = 1.0
        self.device_key_ = getattr(predictor, "device_key_", "")

    def predict(self, ops: Sequence[OpSpec]) -> np.ndarray:
        ops = list(ops)
        if not ops:
            return np.zeros(0)
        return self._scale * np.asarray(self.predictor.predict(ops), dtype=float) + self._per_op

    def predict_network(self, network: Network) -> float:
        return float(self.predict(network.ops).sum() + self.overhead_ms_)

    def describe(self) -> str:
        c = self.calibration
        if c is None:
            return "uncalibrated (sum of op predictions + the predictor's overhead)"
        return (f"calibrated on {c.n_networks} measured networks: {c.scale:.3f} x sum(ops) "
                f"{c.per_op_ms * 1e3:+.2f} us/op {c.offset_ms * 1e3:+.2f} us (max fit error {100 * c.max_rel_error:.1f} %)")  # fmt: skip


def measure_networks(device: str, networks: Sequence[Network], protocol=None) -> dict[str, float]:
    """Median latency (ms) of each network on ``device`` (hwlat.timing.measure), keyed by network key."""
    from hwlat.devices import create_backend
    from hwlat.timing import Protocol, measure

    unique = list({n.key: n for n in networks}.values())
    if not unique:
        return {}
    backend = create_backend(device)
    return {m.op_key: m.median_ms for m in measure(backend, unique, protocol or Protocol())}
