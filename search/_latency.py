"""Network latency as the searches see it: a fitted predictor, optionally calibrated on measured networks.

Op latencies in a table are timed one op per inference call, so each carries
the fixed cost of a call (on ONNX Runtime about 5 µs, as much as a whole small
MBConv block). A network pays that cost once, not once per op: summing ops
over-predicts small networks, by up to 2x on the digits backbone. A search can
therefore calibrate the predictor on a few networks of its own space measured
on the target device (least squares in relative error), with one of two term
sets (:data:`CALIBRATION_TERMS`):

- ``"count"`` (default): ``measured ≈ scale · Σ p(op) + per_op · n_ops + offset``.
- ``"input-mb"``: ``measured ≈ Σ p(op) + per_mb · Σ input MB(op) + offset``.
  Inside a network a runtime keeps its blocked memory layout between ops, so
  each op saves, besides a fixed dispatch cost, a cost proportional to its
  input activation size. On the digits networks with ONNX Runtime (CPU) the
  ``scale · Σ ops + overhead`` calibration leaves 5 % mean and 15 % worst
  error, this one 3 % and 7 % (benchmarks/results/splitting_width.md).
  ``per_mb`` and ``offset`` come out negative: they are the savings ``b``
  (ms/MB) and ``a`` (ms) of ``Σ (p(op) − b · input MB) − a``.

:class:`CalibratedPredictor` applies the fitted terms per op, so
:class:`hwlat.cost.LatencyLUT` and :class:`hwlat.cost.WidthLatency` built from
it stay plain sums; :func:`calibrate_from_table` fits the ``"input-mb"`` terms
on the networks stored in a latency table.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = [
    "CALIBRATION_TERMS",
    "NetworkCalibration",
    "CalibratedPredictor",
    "calibrate_from_table",
    "input_mb",
    "measure_network_passes",
    "measure_networks",
    "speed_ratios",
]

log = logging.getLogger(__name__)


def input_mb(ops: Sequence[OpSpec]) -> np.ndarray:
    """Input activation size of each op in MB (fp32, batch 1)."""
    return np.array([4e-6 * float(np.prod(op.input_shape)) for op in ops])


# Each fitter maps (Σ p(op), n_ops, Σ input MB, measured ms), one entry per network, and the smallest
# predicted op of all the networks to (scale, per_op_ms, per_mb_ms, offset_ms).
_Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], tuple[float, float, float, float]]


def _fit_count(
    sums: np.ndarray, counts: np.ndarray, mb: np.ndarray, measured: np.ndarray, smallest: float, with_count: bool = True
):
    """scale, per_op (only from >= 3 networks with different op counts) and offset; one network: a scale only.
    Never a per-op term that makes the smallest op's share of a network <= 0 ms (a search would be
    rewarded for adding it)."""
    columns = [sums, np.ones_like(sums)]
    with_count = with_count and len(measured) >= 3 and np.ptp(counts) > 0
    if with_count:
        columns.insert(1, counts)
    A = np.stack(columns, 1) / measured[:, None]
    if len(measured) == 1:
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
    if len(measured) > 1 and np.any(pred < 0.25 * measured):
        # Noisy measurements can fit a per-op or offset term that drives small networks to ~0 ms or below
        # (a search would then chase a negative latency): fall back to a scale alone.
        log.warning(
            "calibration predicts %.4f ms for a network measured at %.4f ms; using a scale alone",
            float(pred[np.argmin(pred / measured)]),
            float(measured[np.argmin(pred / measured)]),
        )
        scale = float(np.sum(sums / measured) / np.sum((sums / measured) ** 2))  # least squares in relative error
        per_op, offset = 0.0, 0.0
    if scale * smallest + per_op <= 0:
        log.warning(
            "calibration gives the smallest op %.2f us (per-op term %.2f us); fitting without it",
            1e3 * (scale * smallest + per_op),
            1e3 * per_op,
        )
        return _fit_count(sums, counts, mb, measured, smallest, with_count=False)
    return scale, per_op, 0.0, offset


def _fit_input_mb(sums: np.ndarray, counts: np.ndarray, mb: np.ndarray, measured: np.ndarray, smallest: float):
    """scale 1, per_mb and offset: least squares of ``(measured − Σ p) / measured``."""
    if len(measured) < 2:
        raise ValueError(f"terms='input-mb' fits 2 terms and needs at least 2 measured networks, got {len(measured)}")
    A = np.stack([np.ones_like(measured), mb], 1) / measured[:, None]
    (offset, per_mb), *_ = np.linalg.lstsq(A, (measured - sums) / measured, rcond=None)
    return 1.0, 0.0, float(per_mb), float(offset)


def _fit_scale_input_mb(sums: np.ndarray, counts: np.ndarray, mb: np.ndarray, measured: np.ndarray, smallest: float):
    """scale, per_mb and offset (at least 3 networks): the input-MB model on a machine whose speed has
    changed since the op table was measured; a non-positive scale falls back to ``input-mb``."""
    if len(measured) < 3:
        raise ValueError(
            f"terms='scale-input-mb' fits 3 terms and needs at least 3 measured networks, got {len(measured)}"
        )
    A = np.stack([sums, mb, np.ones_like(measured)], 1) / measured[:, None]
    (scale, per_mb, offset), *_ = np.linalg.lstsq(A, np.ones_like(measured), rcond=None)
    if scale <= 0:
        log.warning("calibration gave scale %.3f <= 0; fitting per_mb and offset with scale 1", scale)
        return _fit_input_mb(sums, counts, mb, measured, smallest)
    return float(scale), 0.0, float(per_mb), float(offset)


_FITTERS: dict[str, _Fitter] = {"count": _fit_count, "input-mb": _fit_input_mb, "scale-input-mb": _fit_scale_input_mb}
CALIBRATION_TERMS: tuple[str, ...] = tuple(_FITTERS)


@dataclass(frozen=True)
class NetworkCalibration:
    """``network ms ≈ scale · Σ op predictions + per_op_ms · n_ops + per_mb_ms · Σ input MB + offset_ms``.

    Parameters
    ----------
    scale, per_op_ms, per_mb_ms, offset_ms : float
        The fitted terms (``per_op_ms`` is negative when single-op timings
        include a per-call cost that a network pays once; ``per_mb_ms`` is
        negative when a network saves activation traffic between its ops).
    n_networks : int
        How many measured networks the terms were fitted on (0 = not fitted).
    drift : float
        The machine's speed change the fit absorbed: the median ratio of the networks'
        latency measured again now to their latency in the table (1 = not re-measured).
    max_rel_error : float
        Largest relative error of the fit on those networks.
    terms : str
        The term set :meth:`fit` used, one of :data:`CALIBRATION_TERMS`.
    """

    scale: float = 1.0
    per_op_ms: float = 0.0
    per_mb_ms: float = 0.0
    offset_ms: float = 0.0
    n_networks: int = 0
    max_rel_error: float = float("nan")
    terms: str = "count"
    drift: float = 1.0

    @classmethod
    def fit(
        cls, predictor, networks: Sequence[Network], measured_ms: Sequence[float], terms: str = "count"
    ) -> NetworkCalibration:
        """Fit the ``terms`` set by least squares in relative error.

        ``terms="count"`` fits scale, per_op and offset (fewer than 3 networks or a single
        op count: scale and offset; one network: a scale only); ``terms="input-mb"`` fits
        per_mb and offset with the scale fixed at 1 (at least 2 networks);
        ``terms="scale-input-mb"`` fits scale, per_mb and offset (at least 3 networks).

        Raises
        ------
        ValueError
            For an unknown ``terms``, a latency count that does not match the networks, too
            few networks, or latencies that are not finite and positive.

        Examples
        --------
        >>> # calib = NetworkCalibration.fit(predictor, networks, measured_ms, terms="input-mb")
        >>> # CalibratedPredictor(predictor, calib).predict_network(networks[0])
        """
        if terms not in _FITTERS:
            raise ValueError(f"unknown calibration terms {terms!r}; choose one of {', '.join(CALIBRATION_TERMS)}")
        measured = np.asarray(measured_ms, dtype=float)
        if len(networks) != len(measured) or len(measured) == 0:
            raise ValueError(
                f"calibration needs one measured latency per network, got {len(networks)} networks "
                f"and {len(measured)} latencies"
            )
        if not np.all(np.isfinite(measured)) or np.any(measured <= 0):
            raise ValueError("measured latencies must be finite and > 0 ms")
        per_op_ms = [np.asarray(predictor.predict(list(n.ops)), dtype=float) for n in networks]
        sums = np.array([float(p.sum()) for p in per_op_ms])
        counts = np.array([len(n.ops) for n in networks], dtype=float)
        mb = np.array([input_mb(n.ops).sum() for n in networks])
        smallest = min(float(p.min()) for p in per_op_ms)
        scale, per_op, per_mb, offset = _FITTERS[terms](sums, counts, mb, measured, smallest)
        pred = scale * sums + per_op * counts + per_mb * mb + offset
        err = float(np.max(np.abs(pred / measured - 1)))
        return cls(
            scale=scale,
            per_op_ms=per_op,
            per_mb_ms=per_mb,
            offset_ms=offset,
            n_networks=len(measured),
            max_rel_error=err,
            terms=terms,
        )


class CalibratedPredictor:
    """A fitted :class:`~hwlat.predict.LatencyPredictor` seen through a :class:`NetworkCalibration`.

    ``predict(ops)`` gives each op's share of a network's latency
    (``scale · p(op) + per_op_ms + per_mb_ms · input MB(op)``); ``predict_network``
    adds ``offset_ms``. Without a calibration it predicts exactly what the predictor
    does. Provides what :class:`hwlat.cost.LatencyLUT` and
    :class:`hwlat.cost.WidthLatency` read (``predict``, ``overhead_ms_``, ``scale_``).
    """

    def __init__(
        self, predictor, calibration: NetworkCalibration | None = None, reference: Sequence[tuple[Network, float]] = ()
    ) -> None:
        self.predictor = predictor
        self.calibration = calibration
        if calibration is None:
            self._scale, self._per_op, self._per_mb = float(getattr(predictor, "scale_", 1.0)), 0.0, 0.0
            self.overhead_ms_ = float(getattr(predictor, "overhead_ms_", 0.0))
        else:
            c = calibration
            self._scale, self._per_op, self._per_mb, self.overhead_ms_ = c.scale, c.per_op_ms, c.per_mb_ms, c.offset_ms
        self.scale_ = 1.0  # already applied per op by predict()
        self.device_key_ = getattr(predictor, "device_key_", "")
        # (network, ms) measured when calibrating, for re-measuring later in the same session as a speed check.
        self.reference: list[tuple[Network, float]] = list(reference)

    def predict(self, ops: Sequence[OpSpec]) -> np.ndarray:
        ops = list(ops)
        if not ops:
            return np.zeros(0)
        out = self._scale * np.asarray(self.predictor.predict(ops), dtype=float) + self._per_op
        if self._per_mb:
            out = out + self._per_mb * input_mb(ops)
        return out

    def predict_network(self, network: Network | Sequence[Network]) -> float | np.ndarray:
        """Network latency (ms): Σ predict(ops) + offset; an array for a sequence of networks."""
        if isinstance(network, Network):
            return float(self.predict(network.ops).sum() + self.overhead_ms_)
        return np.array([self.predict_network(n) for n in network])

    def describe(self) -> str:
        c = self.calibration
        if c is None:
            return "uncalibrated (sum of op predictions + the predictor's overhead)"
        mb = f" {c.per_mb_ms * 1e3:+.2f} us/MB of op input" if c.per_mb_ms else ""
        drift = f"; networks take {c.drift:.3f}x their table latency today" if c.drift != 1.0 else ""
        return (
            f"calibrated on {c.n_networks} measured networks: {c.scale:.3f} x sum(ops) "
            f"{c.per_op_ms * 1e3:+.2f} us/op{mb} {c.offset_ms * 1e3:+.2f} us "
            f"(max fit error {100 * c.max_rel_error:.1f} %{drift})"
        )

    def to_dict(self) -> dict:
        """The terms in use (JSON-ready; ``max_rel_error`` is None when not fitted)."""
        c = self.calibration or NetworkCalibration(scale=self._scale, offset_ms=self.overhead_ms_, terms="")
        d = dataclasses.asdict(c)
        if not math.isfinite(d["max_rel_error"]):
            d["max_rel_error"] = None
        return {"format": "hwlat.network-calibration/1", **d, "device_key": self.device_key_}


def calibrate_from_table(
    predictor, table: str, device_key: str | None = None, remeasure: str | None = None
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


def measure_network_passes(
    device: str, networks: Sequence[Network], protocol=None, passes: int = MEASURE_PASSES
) -> list[dict[str, float]]:
    """Median latency (ms) of each network on ``device``, keyed by network key, once per pass.

    Each pass is a full :func:`hwlat.measure.timing.measure` session over all the networks (interleaved, in a
    new shuffled order).
    """
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol, measure

    if passes < 1:
        raise ValueError(f"Invalid passes={passes}: must be >= 1")
    unique = list({n.key: n for n in networks}.values())
    if not unique:
        return [{} for _ in range(passes)]
    backend = create_backend(device)
    protocol = protocol or Protocol()
    runs = (measure(backend, unique, dataclasses.replace(protocol, seed=protocol.seed + k)) for k in range(passes))
    return [{m.op_key: m.median_ms for m in run} for run in runs]


def measure_networks(
    device: str, networks: Sequence[Network], protocol=None, passes: int = MEASURE_PASSES
) -> dict[str, float]:
    """Latency (ms) of each network on ``device``, keyed by network key: the fastest of ``passes`` medians.

    On a shared machine other tenants slow everything down for seconds at a time and only ever add
    time; one pass caught in such a phase made a search's calibration fit a negative scale. Keeping
    each network's fastest pass costs ``passes`` times the measuring time (a few seconds for the
    networks a search measures).
    """
    runs = measure_network_passes(device, networks, protocol, passes)
    return {key: min(run[key] for run in runs) for key in runs[0]}


def speed_ratios(now: dict[str, float], reference: Sequence[tuple[Network, float]]) -> np.ndarray:
    """``now`` latency / reference latency of each reference network found in ``now``: how much slower
    (> 1) or faster the machine runs than when the reference was measured."""
    return np.array([now[n.key] / ms for n, ms in reference if n.key in now], dtype=float)
