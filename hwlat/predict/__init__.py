"""Predicting: per-device latency predictors, their evaluation and their safe files.

``predictor`` holds :class:`LatencyPredictor` and its save/load; ``evaluate``
the metrics the field reports (RMSE, MAPE, ±5 %/±10 % accuracy).
"""

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

__all__ = [
    "MODELS",
    "LatencyPredictor",
    "PredictorFileError",
    "UnknownKindError",
    "load_predictor",
    "op_features",
    "save_predictor",
    "table_checksum",
]
