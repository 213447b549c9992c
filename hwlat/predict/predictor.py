"""Latency predictors: one scikit-learn regressor per op kind of one device.

Each kind's model works in log-latency. The default is a structured prior, an
additive roofline (``t = Σ c_i · counter_i`` over dense MACs, depthwise MACs
per kernel size, bytes moved, intermediate activation bytes and layer count,
fitted with non-negative least squares in relative error), times a
tree-ensemble correction fitted to the prior's log-residuals on the full
feature set: the prior extrapolates sensibly, the trees pick up what the
roofline misses (kernel sizes, strides, cache effects). Network latency is the sum over its
ops plus a device overhead fitted by :meth:`LatencyPredictor.calibrate`
(:mod:`hwlat.predict.calibration`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from hwlat.cache import file_sha256
from hwlat.network import Network
from hwlat.ops import ACTIVATIONS, WHOLE_KINDS, OpSpec
from hwlat.predict.calibration import fit_scale_overhead, network_ms

__all__ = ["LatencyPredictor", "MODELS", "op_features", "UnknownKindError"]

MODELS = ("prior", "gbr", "rf", "et", "prior+gbr", "prior+rf", "prior+et")
_LOG_FEATURES = (
    "cin",
    "cout",
    "h",
    "w",
    "out_h",
    "out_w",
    "flops",
    "params",
    "bytes",
    "intensity",
    "mid",
    "dense_flops",
    "dw_flops",
    "act_bytes",
    "group_width",
)
# The activation an op applies, one-hot (all zero: none): on a CPU a GELU or SiLU pass costs several
# times a ReLU, and a runtime fuses some into the conv before it and runs others on their own.
_ACT_FEATURES = tuple(f"act_{a}" for a in ACTIVATIONS if a != "none")
_RAW_FEATURES = ("kernel", "stride", "expand", "layers", *_ACT_FEATURES)
FEATURES = _LOG_FEATURES + _RAW_FEATURES


# latency statistics of a table row a predictor may be fitted to (spreads such as std_ms are no latency)
_TARGETS = ("median_ms", "mean_ms", "p5_ms", "p95_ms", "ci_low_ms", "ci_high_ms")


class UnknownKindError(ValueError):
    """An op kind the predictor has no training data for."""


def _layer_features(op: OpSpec) -> dict[str, float]:
    """Per-layer roofline counters: a block's cost is the sum of its layers' costs,
    and dense (1x1, kxk) and depthwise layers run at very different MACs/s."""
    dense = dw = act = 0
    dw_by_k = {3: 0, 5: 0, 7: 0}
    layers = op._parts()
    for _typ, cin, cout, k, groups, ho, wo in layers:
        macs = ho * wo * cout * (cin // groups) * k * k
        if groups > 1 and groups == cin:
            dw += macs
            dw_by_k[min(dw_by_k, key=lambda kk: abs(kk - k))] += macs
        else:
            dense += macs
        act += 4 * ho * wo * cout
    return {
        "dense_flops": dense,
        "dw_flops": dw,
        "act_bytes": act,
        "layers": len(layers),
        "dw3": dw_by_k[3],
        "dw5": dw_by_k[5],
        "dw7": dw_by_k[7],
    }


def _prior_columns(ops: Sequence[OpSpec]) -> np.ndarray:
    """Additive roofline design matrix: time = Σ c_i · counter_i (all c_i >= 0).

    Columns: constant (dispatch), dense MACs, depthwise MACs per kernel size,
    input/output/weight bytes, intermediate activation bytes, layer count.
    """
    return np.asarray([_prior_row(op) for op in ops], dtype=float).reshape(len(ops), 8)


@functools.lru_cache(maxsize=1 << 16)
def _prior_row(op: OpSpec) -> tuple[float, ...]:
    f = _layer_features(op)
    return (
        1.0,
        f["dense_flops"] * 1e-6,
        f["dw3"] * 1e-6,
        f["dw5"] * 1e-6,
        f["dw7"] * 1e-6,
        op.bytes * 1e-6,
        f["act_bytes"] * 1e-6,
        float(f["layers"]),
    )


@functools.lru_cache(maxsize=1 << 16)
def _feature_row(op: OpSpec) -> tuple[float, ...]:
    # Cached: searches predict the same candidate ops over and over.
    f = {**op.features(), **_layer_features(op)}
    # channels per group of a grouped conv (0 for every other op): RegNet's 24-wide groups run unlike ResNeXt's 4
    f["group_width"] = op.cin // op.groups if op.groups > 1 else 0
    f.update({name: float(name == f"act_{op.act}") for name in _ACT_FEATURES})
    return tuple(float(np.log1p(float(f[k]))) for k in _LOG_FEATURES) + tuple(float(f[k]) for k in _RAW_FEATURES)


def op_features(ops: Sequence[OpSpec], names: Sequence[str] | None = None) -> np.ndarray:
    """Feature matrix: log1p of sizes and cost counters, raw kernel/stride/expand/layers, the activation
    one-hot; ``names``: only those columns, in that order (a predictor fitted on an older feature set)."""
    F = np.asarray([_feature_row(op) for op in ops], dtype=float).reshape(len(ops), len(FEATURES))
    if names is None or list(names) == list(FEATURES):
        return F
    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise ValueError(f"features {', '.join(unknown)} are not computed by this hwlat; re-fit the predictor")
    return F[:, [FEATURES.index(n) for n in names]]


def _as_ops(X: Any) -> list[OpSpec]:
    if isinstance(X, (OpSpec, str)):
        X = [X]
    ops = []
    for x in X:
        if isinstance(x, OpSpec):
            ops.append(x)
        elif isinstance(x, str):
            ops.append(OpSpec.from_key(x))
        else:
            raise TypeError(f"expected OpSpec or op key strings, got {type(x).__name__}")
    return ops


class _KindModel(BaseEstimator, RegressorMixin):
    """Log-latency model of one op kind: optional prior plus optional residual trees."""

    def __init__(self, model: str = "prior+gbr", random_state: int = 0) -> None:
        self.model = model
        self.random_state = random_state

    def _trees(self):
        name = self.model.split("+")[-1]
        rs = self.random_state
        if name == "gbr":
            return GradientBoostingRegressor(
                n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=rs
            )
        if name == "rf":
            return RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=rs, n_jobs=1)
        return ExtraTreesRegressor(n_estimators=200, min_samples_leaf=2, random_state=rs, n_jobs=1)

    def fit(self, F: np.ndarray, P: np.ndarray, logy: np.ndarray) -> _KindModel:
        self.prior_coef_ = None
        resid = logy
        if self.model.startswith("prior"):
            y = np.exp(logy)
            # Non-negative least squares in relative error (rows scaled by 1/y).
            self.prior_coef_, _ = nnls(P / y[:, None], np.ones_like(y), maxiter=50 * P.shape[1])
            resid = logy - np.log(self._prior(P))
        self.trees_ = None
        if self.model != "prior" and len(logy) >= 5:
            self.trees_ = self._trees().fit(F, resid)
        self.const_ = float(np.mean(resid)) if self.trees_ is None else 0.0
        return self

    def _prior(self, P: np.ndarray) -> np.ndarray:
        # Floor: an op with all-zero fitted terms still costs a little, never 0 or less.
        return np.maximum(P @ self.prior_coef_, 1e-6)

    def predict(self, F: np.ndarray, P: np.ndarray) -> np.ndarray:
        out = np.full(len(F), self.const_)
        if self.prior_coef_ is not None:
            out += np.log(self._prior(P))
        if self.trees_ is not None:
            out += self.trees_.predict(F)
        return out


class LatencyPredictor(BaseEstimator, RegressorMixin):
    """Predicts op and network latency (ms) on one device.

    Parameters
    ----------
    model : str
        Per-kind model: one of :data:`MODELS` (``prior`` = log-linear roofline,
        ``gbr``/``rf``/``et`` = tree ensembles on all features, ``prior+X`` =
        prior plus trees fitted to its residuals).
    random_state : int
        Seed of the tree ensembles.

    Attributes
    ----------
    models_ : dict[str, estimator]
        One fitted model per op kind.
    overhead_ms_, scale_ : float
        Network-level calibration: ``scale_ * sum(ops) + overhead_ms_`` (:meth:`calibrate`).
    composition_ : dict or None
        How the device runs kernels together in whole models (:meth:`calibrate_models`, fitted by
        :meth:`fit_table` on the table's models measured whole, such as ``hwlat measure --model
        composed:96``): the chosen term set, its terms and every set's leave-one-out MAPE; None without.
    target_ : str
        Table column the latencies came from (``"median_ms"`` when fitted on raw arrays).
    table_sha256_ : str or None
        :func:`table_checksum` of the training rows (None when fitted on raw arrays).
    drift_corrected_ : bool
        Whether the training rows were put on the table's typical speed first.
    device_key_ : str
        Device the training table came from ("" when fitted on raw arrays).

    Examples
    --------
    >>> from hwlat.ops import OpSpec
    >>> ops = [OpSpec("pwconv", cin=c, cout=c, h=14, w=14) for c in range(8, 200, 8)]
    >>> p = LatencyPredictor(model="prior").fit(ops, [1e-4 * op.flops ** 0.9 for op in ops])
    >>> float(p.predict([OpSpec("pwconv", cin=64, cout=64, h=14, w=14)])[0]) > 0
    True
    """

    def __init__(self, model: str = "prior+gbr", random_state: int = 0) -> None:
        self.model = model
        self.random_state = random_state

    # ------------------------------------------------------------- fitting
    def fit(self, X: Any, y: Any, device_key: str = "") -> LatencyPredictor:
        """Fit on ops (``OpSpec`` or op keys) and their latencies in ms."""
        if self.model not in MODELS:
            raise ValueError(
                f"Invalid parameter model={self.model!r} for estimator LatencyPredictor; valid: {', '.join(MODELS)}"
            )
        ops = _as_ops(X)
        y = np.asarray(y, dtype=float)
        if len(ops) != len(y):
            raise ValueError(f"X has {len(ops)} ops but y has {len(y)} latencies")
        if len(ops) == 0:
            raise ValueError("no training data: X is empty")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("latencies must be finite and > 0 (ms)")
        kinds = np.array([op.kind for op in ops], dtype=object)
        F, P = op_features(ops), _prior_columns(ops)
        self.models_ = {}
        self.n_train_ = {}
        for kind in sorted(set(kinds)):
            mask = kinds == kind
            self.models_[kind] = _KindModel(self.model, self.random_state).fit(F[mask], P[mask], np.log(y[mask]))
            self.n_train_[kind] = int(mask.sum())
        self.device_key_ = device_key
        self.overhead_ms_ = 0.0
        self.scale_ = 1.0
        self.composition_: dict | None = None
        self.feature_names_ = list(FEATURES)
        # Training-data provenance: raw arrays have none; fit_table fills in the table's.
        self.target_ = "median_ms"
        self.table_sha256_: str | None = None
        self.drift_corrected_ = False
        return self

    def fit_table(
        self, table: Any, device: str | None = None, target: str = "median_ms", correct_drift: bool = False
    ) -> LatencyPredictor:
        """Fit on a latency table (a ``LatencyStore``, a path to one, or its ``frame()``).

        Op rows train the per-kind models; network rows (when the table holds
        their definitions) calibrate the network overhead. ``correct_drift``:
        rows measured with a drift reference are first put on the table's
        typical speed (:mod:`hwlat.measure.drift`).
        """
        df, nets, rules = _table_frame(table, correct_drift)
        keys = sorted(df["device_key"].unique())
        if device is None:
            if len(keys) != 1:
                raise ValueError(f"the table holds {len(keys)} devices ({', '.join(keys)}); pick one with device=")
            device = keys[0]
        elif device not in keys:
            raise ValueError(f"no rows for device {device!r} in the table; devices there: {', '.join(keys)}")
        if target not in _TARGETS or target not in df.columns:
            valid = ", ".join(c for c in _TARGETS if c in df.columns)
            raise ValueError(f"unknown target {str(target)!r}; valid targets: {valid}")
        df = df[df["device_key"] == device]
        ops = df[~df["kind"].isin(WHOLE_KINDS)]
        self.fit(list(ops["op_key"]), ops[target].to_numpy(), device_key=device)
        self.target_ = target
        self.table_sha256_ = table_checksum(df)
        self.drift_corrected_ = bool(correct_drift)
        # fusion rules learned on this device (hwlat fusion-rules): kernel detection for its models uses them
        self.fusion_rules_ = rules(device) if rules else None
        net_rows = df[(df["kind"] == "network") & df["op_key"].isin(list(nets))]
        if len(net_rows):
            self.calibrate([nets[k] for k in net_rows["op_key"]], net_rows[target].to_numpy())
        self.composition_ = None
        chains, measured = model_chains(df[df["kind"] == "model"], target, set(self.models_))
        if len(chains) >= MIN_COMPOSITION_MODELS:
            self.calibrate_models(chains, measured)
        return self

    def calibrate_models(self, models: Sequence[Any], measured_ms: Any) -> LatencyPredictor:
        """Fit how this device runs kernels together in a whole model (``composition_``) from models measured
        whole: each term set of :data:`hwlat.predict.calibration.CALIBRATION_TERMS` is fitted on the models'
        kernels (anything with ``ops``: the OpSpecs standing for them) and the one with the lowest
        leave-one-out error is kept (the plain sum when none beats it). :meth:`predict_model` applies it."""
        from hwlat.predict.calibration import choose_calibration

        check_is_fitted(self)
        calib, loo, _ = choose_calibration(self, list(models), measured_ms)
        record = dataclasses.asdict(calib) if calib is not None else {"terms": "none"}
        record["kind_scales"] = dict(record.get("kind_scales", ()))
        record["loo_mape"] = loo
        record["n_models"] = len(measured_ms)
        self.composition_ = record
        return self

    def composition(self):
        """The fitted :class:`~hwlat.predict.calibration.NetworkCalibration` of whole models, or None."""
        from hwlat.predict.calibration import NetworkCalibration

        record = getattr(self, "composition_", None)
        if not record or record.get("terms") == "none":
            return None
        fields = {f.name for f in dataclasses.fields(NetworkCalibration)}
        values = {k: v for k, v in record.items() if k in fields}
        values["kind_scales"] = tuple(sorted(values.get("kind_scales", {}).items()))
        return NetworkCalibration(**values)

    def calibrate(self, networks: Sequence[Network], measured_ms: Any, scale: bool = False) -> LatencyPredictor:
        """Fit the device overhead (and optionally a scale) from whole-network measurements.

        Solves ``measured ≈ scale * Σ ops + overhead`` by least squares in
        relative error (each network weighted by 1/measured), with
        :func:`hwlat.predict.calibration.fit_scale_overhead`.
        """
        check_is_fitted(self)
        measured = np.asarray(measured_ms, dtype=float)
        if len(networks) != len(measured) or len(measured) == 0:
            raise ValueError("calibrate needs one measured latency per network (at least one)")
        sums = np.array([self._sum_ops(n) for n in networks])
        self.scale_, self.overhead_ms_ = fit_scale_overhead(sums, measured, scale=scale)
        return self

    # ---------------------------------------------------------- predicting
    def predict(self, X: Any) -> np.ndarray:
        """Latency in ms of each op (``OpSpec`` or op key), vectorised per kind."""
        check_is_fitted(self)
        ops = _as_ops(X)
        out = np.empty(len(ops))
        kinds = np.array([op.kind for op in ops])
        F, P = op_features(ops, getattr(self, "feature_names_", None)), _prior_columns(ops)
        for kind in set(kinds):
            model = self.models_.get(kind)
            if model is None:
                raise UnknownKindError(self._unknown(str(kind)))  # str: not np.str_('head') in the message
            mask = kinds == kind
            out[mask] = np.exp(model.predict(F[mask], P[mask]))
        return out

    def _unknown(self, kind: str) -> str:
        from hwlat.devices import DeviceSpec

        dev = DeviceSpec.backend_of(self.device_key_) or "DEVICE"
        space = kind if kind not in ("stem", "head", "mbconv") else "mbconv"
        return (
            f"no training data for op kind {kind!r} on {self.device_key_ or 'this device'} "
            f"(trained kinds: {', '.join(sorted(self.models_))}); measure it with "
            f"`hwlat measure --device {dev} --space {space} --n 300 --db TABLE` and re-fit with `hwlat fit`"
        )

    def _sum_ops(self, net: Network) -> float:
        return float(self.predict(list(net.ops)).sum())

    def predict_network(self, network: Network | Sequence[Network]) -> float | np.ndarray:
        """Network latency (ms): calibrated sum over its ops plus the device overhead."""
        check_is_fitted(self)
        out = network_ms(self, [network] if isinstance(network, Network) else network)
        return float(out[0]) if isinstance(network, Network) else out

    def predict_model(self, model: Any, **kwargs: Any):
        """A whole model's latency with its per-kernel breakdown (:func:`hwlat.predict.model.predict_model`)."""
        from hwlat.predict.model import predict_model

        return predict_model(self, model, **kwargs)

    def __setstate__(self, state: dict) -> None:
        # Predictors saved before fit set the training provenance (only fit_table did) load with fit's values,
        # so readers never need a default; pickle and skops both restore through here.
        if "models_" in state:
            state = {
                "target_": "median_ms",
                "table_sha256_": None,
                "drift_corrected_": False,
                "composition_": None,
                **state,
            }
        super().__setstate__(state)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "models_")

    @property
    def kinds_(self) -> list[str]:
        check_is_fitted(self)
        return sorted(self.models_)

    def clone_unfitted(self) -> LatencyPredictor:
        return clone(self)


def _table_frame(table: Any, correct_drift: bool = False):
    """(frame, networks, device key -> stored fusion rules JSON or None) from a LatencyStore, a path, or a
    DataFrame (no networks, no rules)."""
    import pandas as pd

    from hwlat.measure.drift import correct_frame
    from hwlat.store import LatencyStore

    if isinstance(table, pd.DataFrame):
        return (correct_frame(table) if correct_drift else table), {}, None
    if isinstance(table, LatencyStore):
        found = {k: table.fusion_rules(k) for k in table.device_keys()}
        return table.frame(provenance=False, correct_drift=correct_drift), table.networks(), found.get
    with LatencyStore(table, readonly=True) as store:
        found = {k: store.fusion_rules(k) for k in store.device_keys()}
        return store.frame(provenance=False, correct_drift=correct_drift), store.networks(), found.get


#: Models measured whole (rows with their kernels recorded) a table needs before ``fit_table`` calibrates on them.
MIN_COMPOSITION_MODELS = 8


def model_chains(rows: Any, target: str, kinds: set[str]) -> tuple[list[Any], np.ndarray]:
    """The model rows whose kernels were recorded (``extra["kernels"]``, :func:`hwlat.workflows.model_kernels`)
    and all map to a kind in ``kinds``: their kernels as ``ops`` and their latencies."""
    from types import SimpleNamespace

    chains, measured = [], []
    for extra, ms in zip(rows["extra"], rows[target].astype(float)):
        keys = str((extra or {}).get("kernels", "")).split(";")
        if not keys or keys == [""] or any(k.startswith("?") for k in keys):
            continue
        ops = [OpSpec.from_key(k) for k in keys]
        if all(op.kind in kinds for op in ops) and np.isfinite(ms) and ms > 0:
            chains.append(SimpleNamespace(ops=tuple(ops)))
            measured.append(ms)
    return chains, np.asarray(measured, dtype=float)


def table_checksum(df) -> str:
    """SHA-256 over the sorted (device, op, protocol, median) rows: identifies the training data."""
    cols = ["device_key", "op_key", "protocol", "median_ms"]
    rows = sorted(map(tuple, df[cols].astype(str).to_numpy()))
    return hashlib.sha256("\n".join("|".join(r) for r in rows).encode()).hexdigest()


# ------------------------------------------------------------ persistence
FORMAT = "hwlat.predictor/1"
# Types a predictor file may contain beyond skops' defaults; anything else is refused.
ALLOWED_TYPES = frozenset(
    {
        "hwlat.predict.LatencyPredictor",
        "hwlat.predict._KindModel",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.ensemble._gb.DummyRegressor",
        "sklearn.dummy.DummyRegressor",
        "numpy.random._mt19937.MT19937",
        "numpy.random.mtrand.RandomState",
        "builtins.slice",
    }
)


class PredictorFileError(ValueError):
    """A predictor file that cannot be loaded safely (tampered, foreign, or from other versions)."""


def _versions() -> dict[str, str]:
    import platform

    import sklearn

    from hwlat import __version__

    return {
        "hwlat": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _meta_digest(meta: dict) -> str:
    """SHA-256 of the metadata without its own checksum: any edit of the JSON shows."""
    import json

    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_meta(meta_path: Any) -> dict | None:
    import json

    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_predictor_file(path: Any) -> bool:
    """Whether ``path`` is a predictor :func:`save_predictor` wrote (a zip next to its hwlat metadata)."""
    from pathlib import Path

    path = Path(path)
    meta = _read_meta(path.with_name(path.name + ".json"))
    try:
        with open(path, "rb") as fh:
            is_zip = fh.read(2) == b"PK"
    except OSError:
        return False
    return is_zip and meta is not None and meta.get("format") == FORMAT


def check_predictor_output(path: Any, force: bool = False) -> Any:
    """``path`` as a ``Path`` if :func:`save_predictor` may write there (and its ``.json``); else
    :class:`hwlat.outfile.OutputFileError`: a latency table never, another file only with ``force``."""
    from pathlib import Path

    from hwlat.outfile import check_output

    path = check_output(Path(path), "predictor", is_ours=is_predictor_file, force=force)
    check_output(
        path.with_name(path.name + ".json"),
        "predictor's metadata",
        is_ours=lambda m: (_read_meta(m) or {}).get("format") == FORMAT,
        force=force,
        flag="--out (its .json)",
    )
    return path


def save_predictor(
    predictor: LatencyPredictor,
    path: str | Any,
    table: str | None = None,
    device_info: dict | None = None,
    force: bool = False,
) -> tuple[Any, Any]:
    """Write ``PATH`` (skops: no code runs on load) and ``PATH.json`` (metadata).

    An existing ``PATH`` is replaced only when it is a predictor hwlat wrote,
    or with ``force``; a latency table (SQLite) never is
    (:class:`hwlat.outfile.OutputFileError`, nothing written).
    """
    import json

    import skops.io as sio

    check_is_fitted(predictor)
    path = check_predictor_output(path, force)
    meta_path = path.with_name(path.name + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(predictor, path)
    meta = {
        "format": FORMAT,
        "device_key": predictor.device_key_,
        "device_info": device_info or {},
        "model": predictor.model,
        "kinds": {k: predictor.n_train_[k] for k in predictor.kinds_},
        "features": predictor.feature_names_,
        "target": predictor.target_,
        "overhead_ms": predictor.overhead_ms_,
        "scale": predictor.scale_,
        "composition": getattr(predictor, "composition_", None),
        "training_table": str(table) if table else None,
        "training_table_sha256": predictor.table_sha256_,
        "drift_corrected": predictor.drift_corrected_,
        "versions": _versions(),
        "file_sha256": file_sha256(path),
    }
    if getattr(predictor, "adaptation_", None):  # a few-shot predictor (hwlat.adapt): method, sources, N
        meta["adaptation"] = predictor.adaptation_
    meta["meta_sha256"] = _meta_digest(meta)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return path, meta_path


def load_predictor(path: str | Any) -> LatencyPredictor:
    """Load a predictor saved by :func:`save_predictor`, refusing anything unsafe."""
    import json
    from pathlib import Path

    import skops.io as sio

    path = Path(path)
    meta_path = path.with_name(path.name + ".json")
    if not path.exists():
        raise PredictorFileError(f"{path}: no such predictor file")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictorFileError(f"{meta_path}: missing or unreadable predictor metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PredictorFileError(f"{meta_path}: not hwlat predictor metadata (expected format {FORMAT!r})")
    # Nothing in the JSON is used (scale, overhead, target come from the predictor file); its checksum
    # still refuses an edited copy, so that what it says is what the predictor holds.
    if "meta_sha256" in meta and meta["meta_sha256"] != _meta_digest(meta):
        raise PredictorFileError(
            f"{meta_path}: checksum does not match: the metadata was modified; refusing to load "
            f"(re-save it, or {_refit_hint(meta)})"
        )
    digest = file_sha256(path)
    if digest != meta.get("file_sha256"):
        raise PredictorFileError(
            f"{path}: checksum does not match its metadata: the file was modified; refusing to load"
        )
    refit = _refit_hint(meta)
    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises several types on a foreign/corrupt zip
        raise PredictorFileError(f"{path}: not a readable skops file ({exc}); {refit}") from exc
    bad = sorted(untrusted - ALLOWED_TYPES)
    if bad:
        raise PredictorFileError(f"{path}: contains types hwlat does not trust ({', '.join(bad)}); refusing to load")
    try:
        obj = sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        now = _versions()
        then = meta.get("versions", {})
        diff = ", ".join(f"{k} {then.get(k)} -> {v}" for k, v in now.items() if then.get(k) != v) or "none"
        raise PredictorFileError(f"{path}: cannot be loaded here (version changes: {diff}); {refit}") from exc
    if not isinstance(obj, LatencyPredictor):
        raise PredictorFileError(f"{path}: holds a {type(obj).__name__}, not a LatencyPredictor")
    return obj


def _refit_hint(meta: dict) -> str:
    table = meta.get("training_table") or "TABLE"
    return f"re-fit it with `hwlat fit --table {table} --device {meta.get('device_key') or 'DEVICE'} --out NEW.skops`"


# Saved predictors name their classes by module: keep the name files have always carried
# ("hwlat.predict.LatencyPredictor"), so files written before this package was split still load.
LatencyPredictor.__module__ = _KindModel.__module__ = "hwlat.predict"
