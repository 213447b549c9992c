"""Predicting: per-device latency predictors, their evaluation and their safe files.

``predictor`` holds :class:`LatencyPredictor` and its save/load; ``calibration``
the one place a network calibration is fitted and applied; ``protocol`` the
:class:`LatencyModel` that costs and searches call; ``evaluate`` the metrics the
field reports (RMSE, MAPE, ±5 %/±10 % accuracy).
"""

from hwlat.predict.calibration import CALIBRATION_TERMS, CalibratedPredictor, NetworkCalibration
from hwlat.predict.predictor import (
    MODELS,
    LatencyPredictor,
    PredictorFileError,
    UnknownKindError,
    _KindModel,  # noqa: F401  (saved predictors name it as hwlat.predict._KindModel)
    load_predictor,
    op_features,
    save_predictor,
    table_checksum,
)
from hwlat.predict.protocol import LatencyModel

__all__ = [
    "CALIBRATION_TERMS",
    "CalibratedPredictor",
    "LatencyModel",
    "NetworkCalibration",
    "MODELS",
    "LatencyPredictor",
    "PredictorFileError",
    "UnknownKindError",
    "load_predictor",
    "op_features",
    "save_predictor",
    "table_checksum",
]
