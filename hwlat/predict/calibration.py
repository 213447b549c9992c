"""Network calibration: how a sum of op predictions becomes a network latency, fitted in one place.

Op latencies in a table are timed one op per inference call, so each carries
the fixed cost of a call (on ONNX Runtime about 5 µs, as much as a whole small
MBConv block). A network pays that cost once, not once per op: summing ops
over-predicts small networks, by up to 2x on the digits backbone. A network
calibration fits a few terms on networks measured on the target device (least
squares in relative error). Two users share the code here:

- :meth:`hwlat.predict.LatencyPredictor.calibrate` fits the predictor's own
  ``scale_ · Σ ops + overhead_ms_`` (:func:`fit_scale_overhead`);
- searches fit a :class:`NetworkCalibration` with one of the term sets of
  :data:`CALIBRATION_TERMS` and look at the predictor through a
  :class:`CalibratedPredictor`:

  - ``"count"`` (default): ``measured ≈ scale · Σ p(op) + per_op · n_ops + offset``.
  - ``"input-mb"``: ``measured ≈ Σ p(op) + per_mb · Σ input MB(op) + offset``.
    Inside a network a runtime keeps its blocked memory layout between ops, so
    each op saves, besides a fixed dispatch cost, a cost proportional to its
    input activation size. On the digits networks with ONNX Runtime (CPU) the
    ``scale · Σ ops + overhead`` calibration leaves 5 % mean and 15 % worst
    error, this one 3 % and 7 % (benchmarks/results/splitting_width.md).
    ``per_mb`` and ``offset`` come out negative: they are the savings ``b``
    (ms/MB) and ``a`` (ms) of ``Σ (p(op) − b · input MB) − a``.
  - ``"scale-input-mb"``: both, for a machine whose speed changed since the table.
  - ``"count-io"``: ``measured ≈ scale · Σ p(op) + per_op · n_ops + per_io_mb · Σ io MB(op) + offset``.
  - ``"kinds"``: ``measured ≈ Σ s_kind(op) · p(op) + per_op · n_ops + per_io_mb · Σ io MB(op) + offset``,
    one scale per op kind (ridge-regularised towards 1, the ridge chosen by leave-one-out), for whole
    models made of many kinds (:mod:`hwlat.models.composed` networks, measured whole). Each kind runs
    differently inside a model than alone: ONNX Runtime times a convolution alone with the layout
    reorders (NCHW to its blocked NCHWc and back) a model pays only at layout boundaries, up to 60 %
    of a memory-bound depthwise conv's time alone; SiLU runs as a kernel of its own; grouped
    convolutions fall back to another layout. ``io MB`` counts every input and output activation of
    the op (what a reorder or a copy moves).

Every model of :class:`hwlat.predict.protocol.LatencyModel` gives a network
``scale_ · Σ predict(ops) + overhead_ms_`` (:func:`network_ms`);
:class:`CalibratedPredictor` applies its fitted terms per op (so its ``scale_``
is 1), which keeps :class:`hwlat.cost.LatencyLUT` and
:class:`hwlat.cost.WidthLatency` built from it plain sums.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwlat.network import Network
from hwlat.ops import OpSpec
from hwlat.predict.protocol import LatencyModel

__all__ = [
    "CALIBRATION_TERMS",
    "NetworkCalibration",
    "CalibratedPredictor",
    "choose_calibration",
    "fit_scale_overhead",
    "input_mb",
    "io_mb",
    "network_ms",
]

log = logging.getLogger(__name__)


def fit_scale_overhead(sums: np.ndarray, measured: np.ndarray, scale: bool = False) -> tuple[float, float]:
    """``(scale, overhead_ms)`` of ``measured ≈ scale · sums + overhead`` by least squares in relative error.

    Parameters
    ----------
    sums : ndarray
        Σ op predictions of each network (ms).
    measured : ndarray
        Measured latency of each network (ms).
    scale : bool
        Fit a scale too (needs >= 2 networks; with fewer the scale stays 1).

    Raises
    ------
    ValueError
        When there is not exactly one measured latency per network, or none.
    """
    sums = np.asarray(sums, dtype=float)
    measured = np.asarray(measured, dtype=float)
    if len(sums) != len(measured) or len(measured) == 0:
        raise ValueError("calibrate needs one measured latency per network (at least one)")
    w = 1.0 / measured
    if scale and len(measured) >= 2:
        A = np.stack([sums, np.ones_like(sums)], 1) * w[:, None]
        (s, overhead), *_ = np.linalg.lstsq(A, measured * w, rcond=None)
    else:
        s = 1.0
        overhead = np.sum(w * w * (measured - sums)) / np.sum(w * w)
    return float(s), float(overhead)


def network_ms(model: LatencyModel, networks: Sequence[Network]) -> np.ndarray:
    """``model.scale_ · Σ model.predict(ops) + model.overhead_ms_`` of each network (one predict call).

    ``model`` is any :class:`hwlat.predict.protocol.LatencyModel`.
    """
    nets = list(networks)
    all_ops = [op for n in nets for op in n.ops]
    per_op = np.asarray(model.predict(all_ops), dtype=float) if all_ops else np.zeros(0)
    bounds = np.cumsum([0] + [len(n.ops) for n in nets])
    sums = np.array([per_op[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
    return model.scale_ * sums + model.overhead_ms_


def input_mb(ops: Sequence[OpSpec]) -> np.ndarray:
    """Input activation size of each op in MB (fp32, batch 1)."""
    return np.array([4e-6 * float(np.prod(op.input_shape)) for op in ops])


def io_mb(ops: Sequence[OpSpec]) -> np.ndarray:
    """Activation MB each op reads and writes (fp32, batch 1): every input and the output, no weights."""
    return np.array([1e-6 * (op.bytes - 4 * op.params) for op in ops])


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
CALIBRATION_TERMS: tuple[str, ...] = (*_FITTERS, "count-io", "kinds")
#: The fewest measured networks each term set is fitted from.
MIN_NETWORKS = {"count": 1, "input-mb": 2, "scale-input-mb": 3, "count-io": 5, "kinds": 5}
#: ``count-io`` and ``kinds`` keep each op's share of a network at least this part of its time alone.
MIN_SHARE = 0.1
#: Ridge strengths the ``kinds`` fit chooses from by leave-one-out (relative-error units: a kind scale 0.5
#: away from 1 costs as much as a network predicted ``0.5 * sqrt(ridge)`` off).
KIND_RIDGES: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
KIND_SCALE_BOUNDS = (0.2, 5.0)


#: What an op brings to a network besides its own time, per op: 1 (a call of its own when timed alone), the MB of
#: image activations (NCHW: a layout a runtime may keep blocked between kernels) and of other activations
#: (tokens, views) it reads and writes, and the MB of its weights (in cache when the op runs alone, not in a model).
OP_TERMS = ("per_op_ms", "per_io_mb_ms", "per_token_mb_ms", "per_weight_mb_ms")
_VIEW_KINDS = ("slice", "transpose")


@functools.lru_cache(maxsize=1 << 16)
def _op_term_row(op: OpSpec) -> tuple[float, float, float, float]:
    # cached: a leave-one-out fit asks for the same networks' ops once per network
    (io,) = io_mb([op])
    image = len(op.input_shape) == 4 and op.kind not in _VIEW_KINDS
    return (1.0, io if image else 0.0, 0.0 if image else io, 4e-6 * op.params)


def op_terms(ops: Sequence[OpSpec]) -> np.ndarray:
    """(ops, 4): each op's :data:`OP_TERMS` columns: 1, image activation MB, other activation MB, weight MB."""
    return np.array([_op_term_row(op) for op in ops], dtype=float).reshape(len(ops), len(OP_TERMS))


@dataclass(frozen=True)
class _KindsDesign:
    """The per-network columns of the ``kinds`` and ``count-io`` fits: Σ p(op) of each kind, Σ :func:`op_terms`."""

    kinds: tuple[str, ...]
    sums: np.ndarray  # (networks, kinds)
    terms: np.ndarray  # (networks, len(OP_TERMS))

    @classmethod
    def of(cls, ops_per_net: Sequence[Sequence[OpSpec]], preds: Sequence[np.ndarray], pooled: bool = False):
        """The columns of these networks; ``pooled``: one scale for every kind (``count-io``)."""
        kinds = ("*",) if pooled else tuple(sorted({op.kind for ops in ops_per_net for op in ops}))
        col = {k: i for i, k in enumerate(kinds)}
        sums = np.zeros((len(preds), len(kinds)))
        for n, (ops, p) in enumerate(zip(ops_per_net, preds)):
            for op, ms in zip(ops, p):
                sums[n, col["*" if pooled else op.kind]] += ms
        terms = np.array([op_terms(list(ops)).sum(axis=0) for ops in ops_per_net]).reshape(-1, len(OP_TERMS))
        return cls(kinds, sums, terms)

    def matrix(self) -> np.ndarray:
        return np.column_stack([self.sums, self.terms, np.ones(len(self.sums))])

    def take(self, rows: Sequence[int]) -> _KindsDesign:
        return _KindsDesign(self.kinds, self.sums[rows], self.terms[rows])


def _checked(networks: Sequence[Any], measured_ms: Sequence[float], terms: str) -> np.ndarray:
    """``measured_ms`` as an array, once it is known to fit ``networks`` and ``terms`` (ValueError if not)."""
    if terms not in CALIBRATION_TERMS:
        raise ValueError(f"unknown calibration terms {terms!r}; choose one of {', '.join(CALIBRATION_TERMS)}")
    measured = np.asarray(measured_ms, dtype=float)
    if len(networks) != len(measured) or len(measured) == 0:
        raise ValueError(
            f"calibration needs one measured latency per network, got {len(networks)} networks "
            f"and {len(measured)} latencies"
        )
    if not np.all(np.isfinite(measured)) or np.any(measured <= 0):
        raise ValueError("measured latencies must be finite and > 0 ms")
    return measured


@dataclass(frozen=True)
class _Columns:
    """What every term set fits on, per network, computed once (leave-one-out takes rows of it)."""

    per_op_ms: list[np.ndarray]
    counts: np.ndarray
    mb: np.ndarray
    kinds: _KindsDesign
    pooled: _KindsDesign

    @classmethod
    def of(cls, predictor: LatencyModel, networks: Sequence[Any]) -> _Columns:
        ops = [list(n.ops) for n in networks]
        flat = [op for o in ops for op in o]
        preds = np.asarray(predictor.predict(flat), dtype=float) if flat else np.zeros(0)
        bounds = np.cumsum([0] + [len(o) for o in ops])
        per_op_ms = [preds[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return cls(
            per_op_ms,
            np.array([len(o) for o in ops], dtype=float),
            np.array([input_mb(o).sum() for o in ops]),
            _KindsDesign.of(ops, per_op_ms),
            _KindsDesign.of(ops, per_op_ms, pooled=True),
        )

    def take(self, rows: Sequence[int]) -> _Columns:
        rows = list(rows)
        return _Columns(
            [self.per_op_ms[i] for i in rows],
            self.counts[rows],
            self.mb[rows],
            self.kinds.take(rows),
            self.pooled.take(rows),
        )


def _solve_kinds(A: np.ndarray, measured: np.ndarray, n_kinds: int, ridge: float) -> np.ndarray:
    """Least squares in relative error, kind scales bounded and pulled towards 1 by ``ridge``; a term no
    network varies in (no token ops at all, one op count) is left at 0."""
    from scipy.optimize import lsq_linear

    cols = A.shape[1]
    keep = np.ones(cols, dtype=bool)
    keep[n_kinds:-1] = np.ptp(A[:, n_kinds:-1], axis=0) > 0
    rows = A[:, keep] / measured[:, None]
    target = np.ones(len(measured))
    if ridge > 0:
        penalty = np.zeros((n_kinds, keep.sum()))
        penalty[np.arange(n_kinds), np.arange(n_kinds)] = math.sqrt(ridge)
        rows = np.vstack([rows, penalty])
        target = np.concatenate([target, np.full(n_kinds, math.sqrt(ridge))])
    low = np.full(keep.sum(), -np.inf)
    high = np.full(keep.sum(), np.inf)
    low[:n_kinds], high[:n_kinds] = KIND_SCALE_BOUNDS
    coef = np.zeros(cols)
    coef[keep] = lsq_linear(rows, target, bounds=(low, high), method="bvls").x
    return coef


def _fit_kinds(design: _KindsDesign, measured: np.ndarray, ridge: float | None, terms: str = "kinds"):
    """(kind scales, {OP_TERMS name: value}, offset, ridge); ``ridge=None``: chosen by leave-one-out.

    Unlike the other sets, no per-op term is refused for making the smallest op's share <= 0: a
    single kernel alone pays a whole inference call, and the smallest kernels of a model cost less
    than that inside it. :class:`CalibratedPredictor` keeps every share at least :data:`MIN_SHARE`
    of the op's time alone instead."""
    if len(measured) < MIN_NETWORKS[terms]:
        raise ValueError(f"terms={terms!r} needs at least {MIN_NETWORKS[terms]} measured networks, got {len(measured)}")
    A, k = design.matrix(), len(design.kinds)
    if ridge is None:
        errors = {}
        for r in KIND_RIDGES:
            err = []
            for j in range(len(measured)):
                rest = np.arange(len(measured)) != j
                coef = _solve_kinds(A[rest], measured[rest], k, r)
                err.append(abs(A[j] @ coef / measured[j] - 1))
            errors[r] = float(np.mean(err))
        ridge = min(errors, key=errors.get)
    coef = _solve_kinds(A, measured, k, ridge)
    scales = tuple((kind, float(v)) for kind, v in zip(design.kinds, coef[:k]))
    per_op = {name: float(v) for name, v in zip(OP_TERMS, coef[k:-1])}
    return scales, per_op, float(coef[-1]), float(ridge)


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
    kind_scales: tuple[tuple[str, float], ...] = ()
    per_io_mb_ms: float = 0.0
    per_token_mb_ms: float = 0.0
    per_weight_mb_ms: float = 0.0
    ridge: float = 0.0

    def kind_scale(self, kind: str) -> float:
        """The scale of ``kind``'s op predictions (``scale`` for a kind the fit did not see)."""
        return dict(self.kind_scales).get(kind, self.scale)

    @classmethod
    def fit(
        cls,
        predictor: LatencyModel,
        networks: Sequence[Network],
        measured_ms: Sequence[float],
        terms: str = "count",
        ridge: float | None = None,
    ) -> NetworkCalibration:
        """Fit the ``terms`` set by least squares in relative error.

        ``terms="count"`` fits scale, per_op and offset (fewer than 3 networks or a single
        op count: scale and offset; one network: a scale only); ``terms="input-mb"`` fits
        per_mb and offset with the scale fixed at 1 (at least 2 networks);
        ``terms="scale-input-mb"`` fits scale, per_mb and offset (at least 3 networks);
        ``terms="kinds"`` fits one scale per op kind, per_op, per_io_mb and offset (at least 4
        networks; ``ridge`` pulls the kind scales towards 1, None: chosen by leave-one-out from
        :data:`KIND_RIDGES`). ``networks`` are anything with ``ops`` (a model's kernels as OpSpecs).

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
        measured = _checked(networks, measured_ms, terms)
        return cls._fit_columns(_Columns.of(predictor, networks), measured, terms, ridge)

    @classmethod
    def _fit_columns(cls, cols: _Columns, measured: np.ndarray, terms: str, ridge: float | None) -> NetworkCalibration:
        sums = np.array([float(p.sum()) for p in cols.per_op_ms])
        counts, mb = cols.counts, cols.mb
        smallest = min(float(p.min()) for p in cols.per_op_ms if len(p))
        if terms in ("kinds", "count-io"):
            pooled = terms == "count-io"
            design = cols.pooled if pooled else cols.kinds
            scales, per_op, offset, ridge = _fit_kinds(design, measured, 0.0 if pooled else ridge, terms)
            pred = design.matrix() @ np.array([v for _, v in scales] + [per_op[t] for t in OP_TERMS] + [offset])
            return cls(
                scale=scales[0][1] if pooled else 1.0,
                offset_ms=offset,
                n_networks=len(measured),
                max_rel_error=float(np.max(np.abs(pred / measured - 1))),
                terms=terms,
                kind_scales=() if pooled else scales,
                ridge=ridge,
                **per_op,
            )
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
    does. It is a :class:`~hwlat.predict.protocol.LatencyModel` whose ``scale_`` is 1:
    the scale is applied per op by :meth:`predict`, so costs built from it stay plain sums.
    """

    def __init__(
        self,
        predictor: LatencyModel,
        calibration: NetworkCalibration | None = None,
        reference: Sequence[tuple[Network, float]] = (),
    ) -> None:
        self.predictor = predictor
        self.calibration = calibration
        if calibration is None:
            self._scale, self._per_op, self._per_mb = float(predictor.scale_), 0.0, 0.0
            self.overhead_ms_ = float(predictor.overhead_ms_)
        else:
            c = calibration
            self._scale, self._per_op, self._per_mb, self.overhead_ms_ = c.scale, c.per_op_ms, c.per_mb_ms, c.offset_ms
        self._kind_scales = dict(calibration.kind_scales) if calibration is not None else {}
        self.scale_ = 1.0  # LatencyModel's network factor: the calibration's scale is applied per op by predict()
        self.device_key_: str = predictor.device_key_
        # (network, ms) measured when calibrating, for re-measuring later in the same session as a speed check.
        self.reference: list[tuple[Network, float]] = list(reference)

    def predict(self, ops: Sequence[OpSpec]) -> np.ndarray:
        ops = list(ops)
        if not ops:
            return np.zeros(0)
        return self._shares(ops, np.asarray(self.predictor.predict(ops), dtype=float))

    def _shares(self, ops: list[OpSpec], raw: np.ndarray) -> np.ndarray:
        """Each op's share of a network from its prediction alone (``raw``)."""
        c = self.calibration
        kinds = self._kind_scales
        scale = np.array([kinds.get(op.kind, self._scale) for op in ops]) if kinds else self._scale
        out = scale * raw + self._per_op
        if self._per_mb:
            out = out + self._per_mb * input_mb(ops)
        if c is not None and c.terms in ("count-io", "kinds"):
            coef = np.array([0.0, c.per_io_mb_ms, c.per_token_mb_ms, c.per_weight_mb_ms])
            out = np.maximum(out + op_terms(ops) @ coef, MIN_SHARE * raw)
        return out

    def predict_network(self, network: Network | Sequence[Network]) -> float | np.ndarray:
        """Network latency (ms): Σ predict(ops) + offset; an array for a sequence of networks."""
        if isinstance(network, Network):
            return float(self.predict(network.ops).sum() + self.overhead_ms_)
        return np.array([self.predict_network(n) for n in network])

    def predict_model(self, model: Any, **kwargs: Any):
        """A whole model's latency with its per-kernel breakdown (:func:`hwlat.predict.model.predict_model`)."""
        from hwlat.predict.model import predict_model

        return predict_model(self, model, **kwargs)

    def describe(self) -> str:
        c = self.calibration
        if c is None:
            return "uncalibrated (sum of op predictions + the predictor's overhead)"
        mb = f" {c.per_mb_ms * 1e3:+.2f} us/MB of op input" if c.per_mb_ms else ""
        if c.terms in ("count-io", "kinds"):
            mb += (
                f" {c.per_io_mb_ms * 1e3:+.2f} us/MB of image activations {c.per_token_mb_ms * 1e3:+.2f} us/MB of "
                f"other activations {c.per_weight_mb_ms * 1e3:+.2f} us/MB of weights"
            )
        if c.kind_scales:
            scales = ", ".join(f"{k} {v:.2f}" for k, v in c.kind_scales)
            return (
                f"calibrated on {c.n_networks} measured networks: per-kind scales ({scales}) x ops "
                f"{c.per_op_ms * 1e3:+.2f} us/op{mb} {c.offset_ms * 1e3:+.2f} us "
                f"(ridge {c.ridge:g}; max fit error {100 * c.max_rel_error:.1f} %)"
            )
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


def choose_calibration(
    predictor: LatencyModel,
    networks: Sequence[Any],
    measured_ms: Sequence[float],
    terms: Sequence[str] = CALIBRATION_TERMS,
) -> tuple[NetworkCalibration | None, dict[str, float], dict[str, NetworkCalibration | None]]:
    """Fit every term set of ``terms`` on ``networks`` (anything with ``ops``) and keep the one with the lowest
    leave-one-out MAPE, the plain sum (``"none"``, None) included.

    Returns the chosen calibration (None: the plain sum), each set's leave-one-out MAPE and each set's fit.
    A set that needs more networks than leave-one-out leaves (:data:`MIN_NETWORKS`) is left out.
    ``kinds`` is cross-validated with the ridge its fit on all networks chose."""
    nets = list(networks)
    measured = _checked(nets, measured_ms, "count")
    cols = _Columns.of(predictor, nets)  # every fit below takes rows of these: one prediction per kernel

    def total(calib: NetworkCalibration | None, j: int) -> float:
        cp = CalibratedPredictor(predictor, calib)
        return float(cp._shares(list(nets[j].ops), cols.per_op_ms[j]).sum() + cp.overhead_ms_)

    fits: dict[str, NetworkCalibration | None] = {"none": None}
    loo = {"none": float(np.mean([abs(total(None, j) / m - 1) for j, m in enumerate(measured)]))}
    for t in terms:
        _checked(nets, measured, t)
        if len(nets) - 1 < MIN_NETWORKS[t]:  # leave-one-out needs one network more than the fit
            continue
        fits[t] = NetworkCalibration._fit_columns(cols, measured, t, None)
        ridge = fits[t].ridge if t == "kinds" else None
        errs = []
        for j in range(len(nets)):
            rest = [i for i in range(len(nets)) if i != j]
            c = NetworkCalibration._fit_columns(cols.take(rest), measured[rest], t, ridge)
            errs.append(abs(total(c, j) / measured[j] - 1))
        loo[t] = float(np.mean(errs))
    best = min(loo, key=loo.get)
    return fits[best], loo, fits
