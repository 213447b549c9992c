"""What a latency model offers the code that uses it: :class:`LatencyModel`.

Costs (:mod:`hwlat.cost`) and searches (:mod:`hwlat.search`) only call what
this protocol names, so a fitted :class:`~hwlat.predict.LatencyPredictor`, a
:class:`~hwlat.predict.calibration.CalibratedPredictor` and a search's own
stand-in (parameter counts in DARC's size mode) are interchangeable there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from hwlat.network import Network
from hwlat.ops import OpSpec

__all__ = ["LatencyModel", "device_mismatch"]


@runtime_checkable
class LatencyModel(Protocol):
    """Op and network latency (ms) on one device.

    A network's latency is ``scale_ · Σ predict(network.ops) + overhead_ms_``
    (:func:`hwlat.predict.calibration.network_ms`); a model that applies its
    calibration per op reports ``scale_ = 1``.

    Attributes
    ----------
    device_key_ : str
        Device the model predicts ("" when unknown).
    scale_ : float
        Factor on the sum of op predictions in a network.
    overhead_ms_ : float
        Fixed cost a network pays once (ms).

    Examples
    --------
    >>> from hwlat.predict import LatencyPredictor
    >>> isinstance(LatencyPredictor(), LatencyModel)  # attributes appear once fitted
    False
    """

    device_key_: str
    scale_: float
    overhead_ms_: float

    def predict(self, ops: Sequence[OpSpec]) -> np.ndarray:
        """Latency (ms) of each op."""
        ...

    def predict_network(self, network: Network | Sequence[Network]) -> float | np.ndarray:
        """Latency (ms) of a network, an array for a sequence of networks."""
        ...


def device_mismatch(model: LatencyModel, device: str) -> str | None:
    """A warning when ``model`` was fitted on another backend than ``device`` (None when they agree)."""
    from hwlat.devices import DeviceSpec  # lazily: importing hwlat.devices registers every backend

    fitted = model.device_key_
    if fitted and not DeviceSpec.same_backend(fitted, device):
        return f"the predictor was fitted on {fitted!r} but latency is measured on {device!r}"
    return None
