"""Network-context calibration: a predictor whose network sums account for in-network activation traffic.

A latency table times each op alone; inside a network a runtime keeps its
blocked memory layout between ops, so each op saves a fixed dispatch cost and
a cost proportional to its input activation size. On the digits networks with
ONNX Runtime (CPU) the plain calibration ``scale · Σ ops + overhead`` leaves
5 % mean and 15 % worst error; ``Σ (op − b · input MB) − a`` leaves 3 % and 7 %
(benchmarks/results/splitting_width.md). :class:`ContextCalibrated` wraps a
fitted :class:`~hwlat.predict.LatencyPredictor` and is used in its place by
the splitting and width searches (it has ``predict``, ``predict_network``,
``scale_``, ``overhead_ms_``, ``device_key_``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = ["ContextCalibrated", "input_mb"]


def input_mb(ops: Sequence[OpSpec]) -> np.ndarray:
    """Input activation size of each op in MB (fp32, batch 1)."""
    return np.array([4e-6 * float(np.prod(op.input_shape)) for op in ops])


class ContextCalibrated:
    """``predictor`` with network latency = Σ_ops (predicted − b · input MB) − a.

    Parameters
    ----------
    predictor : LatencyPredictor
        Fitted op-level predictor.
    a_ms, b_ms_per_mb : float
        Fixed saving per network and saving per MB of op input, fitted by :meth:`fit`.
    """

    def __init__(self, predictor, a_ms: float = 0.0, b_ms_per_mb: float = 0.0) -> None:
        self.predictor = predictor
        self.a_ms, self.b_ms_per_mb = float(a_ms), float(b_ms_per_mb)

    @classmethod
    def fit(cls, predictor, networks: Sequence[Network], measured_ms: Sequence[float]) -> ContextCalibrated:
        """Least squares in relative error of ``measured − Σ predicted ops = −a − b · Σ input MB``."""
        y = np.asarray(measured_ms, dtype=float)
        if len(networks) != len(y) or len(y) < 2:
            raise ValueError("need one measured latency per network, at least 2 networks")
        sums = np.array([predictor.predict(list(n.ops)).sum() for n in networks])
        mb = np.array([input_mb(n.ops).sum() for n in networks])
        A = -np.stack([np.ones_like(y), mb], 1) / y[:, None]
        (a, b), *_ = np.linalg.lstsq(A, (y - sums) / y, rcond=None)
        return cls(predictor, a, b)

    @property
    def device_key_(self) -> str:
        return getattr(self.predictor, "device_key_", "")

    @property
    def scale_(self) -> float:
        return 1.0

    @property
    def overhead_ms_(self) -> float:
        return -self.a_ms

    def predict(self, ops) -> np.ndarray:
        """Each op's in-network latency (ms): its predicted latency alone minus its share of the saving."""
        ops = list(ops)
        return self.predictor.predict(ops) - self.b_ms_per_mb * input_mb(ops)

    def predict_network(self, network: Network | Sequence[Network]):
        if isinstance(network, Network):
            return float(self.predict(network.ops).sum() - self.a_ms)
        return np.array([self.predict_network(n) for n in network])

    def to_dict(self) -> dict:
        return {"format": "hwlat.context-calibration/1", "a_ms": self.a_ms, "b_ms_per_mb": self.b_ms_per_mb,
                "device_key": self.device_key_}  # fmt: skip


def calibrate_from_table(predictor, table: str, device_key: str | None = None) -> ContextCalibrated:
    """Fit :class:`ContextCalibrated` on the whole networks measured in a latency table (SQLite).

    Raises
    ------
    ValueError
        When the table holds fewer than 2 networks for the device.
    """
    from hwlat.store import LatencyStore

    device_key = device_key or predictor.device_key_
    with LatencyStore(table, readonly=True) as store:
        df = store.frame(device_key or None, provenance=False)
        nets = store.networks()
    rows = df[(df["kind"] == "network") & df["op_key"].isin(list(nets))]
    if len(rows) < 2:
        raise ValueError(f"{table}: {len(rows)} measured networks for {device_key or 'the device'}; need >= 2 "
                         "(measure some with `hwlat measure --networks ... --db TABLE`)")  # fmt: skip
    return ContextCalibrated.fit(predictor, [nets[k] for k in rows["op_key"]], rows["median_ms"].to_numpy())
