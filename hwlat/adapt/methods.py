"""Few-shot transfer: a latency predictor for a new device from N measurements and the sources' predictions.

Two levels share the ideas (and the cross-validated choice between them):

- **Op predictors** (:func:`adapt_predictor`): the target is one of the sources'
  :class:`~hwlat.predict.LatencyPredictor` with its per-kind models rewritten, so
  the result *is* a ``LatencyPredictor`` (``hwlat predict``, ``compare``, the searches
  and ``save_predictor`` work unchanged). Each source prediction of an op is split
  into the shares of its roofline counters (the prior's fitted terms: dispatch
  constant, dense MACs, depthwise MACs per kernel size, bytes moved, activation
  bytes, layers), and the target is ``y ≈ Σ_c w_c · A_c(item)``: the source
  predictions as features of a small non-negative model, fitted in relative error
  and shrunk towards one global scale (items may be ops or whole networks). Methods
  differ in which columns ``c`` there are: ``scale`` (one), ``kind-scale`` (one per
  op kind), ``roofline`` (one per roofline counter: compute- vs memory-bound shifts,
  and per depthwise kernel size), ``roofline-kind`` (per kind and counter). Each is
  exact in the predictor: a weight multiplies the prior's term of its counter (or,
  for a kind without a prior, its constant in log space).
- **Architecture tables** (:func:`fit_arch`, used by :mod:`hwlat.adapt.archtable`):
  architectures x devices, in log latency: ``scale`` and ``affine`` on the best single
  source, ``blend`` (ridge regression on all sources' log latencies), ``blend+kinds``
  (plus the architecture's op counts) and ``kinds`` (op counts alone: a from-scratch
  model, kept as a candidate so that cross-validation can say the sources do not help).

The method, source and regularisation are chosen by leave-one-out cross-validation
on the N points. Fewer than :data:`MIN_N` points is an :class:`AdaptError`; fewer than
:data:`TRUST_N` gives a :class:`FewShotWarning`: the choice itself is then noisy.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AdaptError",
    "ArchAdapter",
    "FewShotWarning",
    "MIN_N",
    "OP_METHODS",
    "ARCH_METHODS",
    "TRUST_N",
    "adapt_predictor",
    "check_latencies",
    "fit_arch",
]

MIN_N = 2  # leave-one-out needs two points; a scale is then fitted on one and checked on the other
TRUST_N = 8  # below this the cross-validated choice is itself noise: warn
OP_METHODS = ("scale", "kind-scale", "roofline", "roofline-kind")
ARCH_METHODS = ("scale", "affine", "blend", "blend+kinds", "kinds")
_LAMBDAS = (
    1e-5,
    1e-4,
    1e-3,
    0.01,
    0.1,
    1.0,
)  # shrinkage of the per-column weights towards the global scale (relative units)
_TIE = 0.03  # cross-validated errors within 3 % (relative) of the best count as a tie
_RIDGE = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# Roofline groups: one per column of the prior (hwlat.predict.predictor._prior_columns), in its order. A runtime
# can be slow on one of them only (LiteRT's XNNPACK on 7x7 depthwise convolutions: 2.5x ONNX Runtime's time
# where the rest is 1.3x), so each gets its own weight.
_GROUPS = ("dispatch", "dense", "dw3", "dw5", "dw7", "bytes", "activations", "layers")
_GROUP_OF_COLUMN = tuple(range(len(_GROUPS)))
_TREE_GROUP = 1  # a kind without a prior (tree-only models): its whole prediction counts as dense compute


class AdaptError(ValueError):
    """Inputs the adaptation cannot use (no overlap, too few points, bad latencies, foreign predictors)."""


class FewShotWarning(UserWarning):
    """The adapted predictor was fitted on too few points for its cross-validated choice to be trusted."""


def check_latencies(y: Any, what: str = "target latencies") -> np.ndarray:
    """``y`` as a float array if every value is finite and > 0 (ms); :class:`AdaptError` naming the first bad one."""
    y = np.asarray(y, dtype=float).ravel()
    bad = np.flatnonzero(~np.isfinite(y) | (y <= 0))
    if len(bad):
        raise AdaptError(
            f"{what}: {len(bad)} value(s) are NaN, infinite or <= 0 (first: {y[bad[0]]!r} at position {bad[0]}); "
            "drop those rows or measure them again"
        )
    return y


def _check_n(n: int, minimum: int = MIN_N) -> None:
    if n < minimum:
        raise AdaptError(
            f"{n} target measurement(s): adaptation needs at least {minimum} to fit and cross-validate; "
            "measure more (10 is a good start: `hwlat measure --few-shot 10 --from SRC ...`)"
        )
    if n < TRUST_N:
        warnings.warn(
            f"only {n} target measurements: too few to trust the cross-validated choice of method; "
            f"measure at least {TRUST_N} (10 recommended)",
            FewShotWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------- cross-validation
def _folds(n: int, k_max: int = 20) -> list[np.ndarray]:
    """Leave-one-out up to ``k_max`` points, then ``k_max`` interleaved folds (deterministic)."""
    idx = np.arange(n)
    k = min(n, k_max)
    return [idx[i::k] for i in range(k)]


# ---------------------------------------------------------------- op predictors
def _split_shares(predictor: Any, ops: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per op: the source prediction (ms), its share in each roofline group (n x 3), and its kind."""
    from hwlat.predict.predictor import _prior_columns

    ops = list(ops)
    pred = np.asarray(predictor.predict(ops), dtype=float)
    kinds = [op.kind for op in ops]
    shares = np.zeros((len(ops), len(_GROUPS)))
    if not ops:
        return pred, shares, kinds
    P = _prior_columns(ops)
    for i, op in enumerate(ops):
        coef = getattr(predictor.models_[op.kind], "prior_coef_", None)
        terms = P[i] * coef if coef is not None else None
        total = float(terms.sum()) if terms is not None else 0.0
        if terms is None or total <= 0:
            shares[i, _TREE_GROUP] = 1.0
            continue
        for col, g in enumerate(_GROUP_OF_COLUMN):
            shares[i, g] += terms[col] / total
    return pred, shares, kinds


_OWN_MIN = 2  # standalone op items of a kind before it gets weights of its own (else it shares the common ones)


@dataclass
class _Design:
    """One source's view of the N target items: the per-(kind, counter) sums of its predictions per item."""

    kinds: list[str]  # every kind the source knows (column order)
    parts: np.ndarray  # n_items x n_kinds x n_counters: Σ over the item's ops of prediction x share (x source scale)
    overhead: np.ndarray  # n_items: the source's network overhead (0 for op items)
    own: list[bool]  # per kind: measured as >= _OWN_MIN ops of its own (inside networks alone it is confounded)

    def layout(self, method: str) -> tuple[np.ndarray, list[str]]:
        """``(column of each (kind, counter), column labels)`` for ``method``."""
        nk, ng = len(self.kinds), len(_GROUPS)
        col = np.zeros((nk, ng), dtype=int)
        labels: list[str] = []
        if method == "scale":
            return col, ["all"]
        if method == "roofline":
            return col + np.arange(ng), list(_GROUPS)
        per_kind = method == "roofline-kind"
        width = ng if per_kind else 1
        names = list(_GROUPS) if per_kind else [""]
        shared = None
        for k, kind in enumerate(self.kinds):
            if self.own[k]:
                start, tag = len(labels), kind
            elif shared is not None:
                col[k] = col[shared]
                continue
            else:
                shared, start, tag = k, len(labels), "other kinds"
            col[k] = start + (np.arange(ng) if per_kind else 0)
            labels.extend(f"{tag}/{g}" if g else tag for g in names[:width])
        return col, labels

    def matrix(self, method: str) -> np.ndarray:
        col, labels = self.layout(method)
        A = np.zeros((len(self.parts), len(labels)))
        for k in range(len(self.kinds)):
            for g in range(len(_GROUPS)):
                A[:, col[k, g]] += self.parts[:, k, g]
        return A


def _design(predictor: Any, items: Sequence[Any]) -> _Design:
    from hwlat.network import Network

    kinds = list(predictor.kinds_)
    where = {k: i for i, k in enumerate(kinds)}
    parts = np.zeros((len(items), len(kinds), len(_GROUPS)))
    overhead = np.zeros(len(items))
    flat, owner, factor = [], [], []
    for i, item in enumerate(items):
        ops = list(item.ops) if isinstance(item, Network) else [item]
        flat.extend(ops)
        owner.extend([i] * len(ops))
        factor.extend([predictor.scale_ if isinstance(item, Network) else 1.0] * len(ops))
        if isinstance(item, Network):
            overhead[i] = predictor.overhead_ms_
    pred, shares, op_kinds = _split_shares(predictor, flat)
    for j in range(len(flat)):
        parts[owner[j], where[op_kinds[j]], :] += factor[j] * pred[j] * shares[j]
    alone = [it.kind for it in items if not isinstance(it, Network)]
    return _Design(kinds, parts, overhead, [alone.count(k) >= _OWN_MIN for k in kinds])


def _fit_weights(A: np.ndarray, y: np.ndarray, offset: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Non-negative ``w`` of ``y ≈ A w + offset·w0`` in relative error, shrunk (``lam``) towards a global ``w0``."""
    from scipy.optimize import lsq_linear

    s = A.sum(1)
    # the global scale: least squares in relative error of y ≈ w0 · (Σ A + offset)
    t = (s + offset) / y
    w0 = float(np.sum(t) / np.sum(t * t))
    if A.shape[1] == 1:
        return np.array([w0]), w0
    r = 1.0 / y
    # the regulariser only on columns that have any signal, so unidentified ones stay at w0 exactly
    M = np.vstack([A * r[:, None], np.sqrt(lam) * np.eye(A.shape[1])])
    b = np.concatenate([(y - w0 * offset) * r, np.sqrt(lam) * np.full(A.shape[1], w0)])
    res = lsq_linear(M, b, bounds=(1e-6 * w0, np.inf), method="bvls")
    return res.x, w0


@dataclass(frozen=True)
class _Candidate:
    source: int
    method: str
    lam: float
    cv_mape: float


def _cv_error(A: np.ndarray, y: np.ndarray, offset: np.ndarray, lam: float) -> float:
    errs = np.empty(len(y))
    for test in _folds(len(y)):
        train = np.setdiff1d(np.arange(len(y)), test)
        w, w0 = _fit_weights(A[train], y[train], offset[train], lam)
        errs[test] = np.abs((A[test] @ w + w0 * offset[test]) / y[test] - 1)
    return float(np.mean(errs))


def _check_source(predictor: Any, name: str) -> None:
    from hwlat.predict import LatencyPredictor
    from hwlat.predict.predictor import FEATURES

    if not isinstance(predictor, LatencyPredictor) or not hasattr(predictor, "models_"):
        raise AdaptError(f"source {name}: not a fitted LatencyPredictor; fit one with `hwlat fit --table T --out P`")
    if not set(getattr(predictor, "feature_names_", [])) <= set(FEATURES):
        raise AdaptError(
            f"source {name}: fitted on features this hwlat does not compute ({len(predictor.feature_names_)} "
            f"features); re-fit it with this version: `hwlat fit --table ITS_TABLE --out NEW.skops`"
        )


def adapt_predictor(
    sources: Sequence[Any],
    items: Sequence[Any],
    measured_ms: Any,
    *,
    device_key: str = "",
    methods: Sequence[str] = OP_METHODS,
    source_names: Sequence[str] | None = None,
) -> Any:
    """A :class:`~hwlat.predict.LatencyPredictor` for the target device from ``sources`` and N measurements.

    Parameters
    ----------
    sources
        Fitted ``LatencyPredictor`` objects of other devices (or the same device on other machines).
    items
        The N measured ``OpSpec`` or ``Network`` objects (mixed is fine).
    measured_ms
        Their latency on the target device (ms, finite and > 0).
    device_key
        The target's device key (recorded as the predictor's ``device_key_``).
    methods
        Candidates among :data:`OP_METHODS`; the one with the smallest cross-validated
        relative error (over sources and shrinkage) is fitted on all N points.
    source_names
        Labels of the sources for the report (default ``source0``, ...).

    Returns
    -------
    LatencyPredictor
        With an ``adaptation_`` dict: method, source, N, cross-validated MAPE of every
        candidate, the fitted weights.

    Raises
    ------
    AdaptError
        No source, an unknown method, fewer than :data:`MIN_N` points, bad latencies, no item
        whose op kinds a source knows, or a source fitted on another feature set.

    Examples
    --------
    >>> # p = adapt_predictor([load_predictor("ort.skops")], ops, measured_ms, device_key="litert-cpu/t1/b1/fp32")
    >>> # p.predict_network(get_network("mobilenetv2"))
    """
    from hwlat.network import Network

    if not sources:
        raise AdaptError("no source predictor: give at least one (--from SRC.skops)")
    names = list(source_names or [f"source{i}" for i in range(len(sources))])
    bad = [m for m in methods if m not in OP_METHODS]
    if bad or not methods:
        raise AdaptError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(OP_METHODS)}")
    for p, name in zip(sources, names):
        _check_source(p, name)
    items = list(items)
    y = check_latencies(measured_ms)
    if len(items) != len(y):
        raise AdaptError(f"{len(items)} items but {len(y)} latencies: give one latency per measured item")

    def kinds_of(item) -> set[str]:
        return {op.kind for op in (item.ops if isinstance(item, Network) else [item])}

    # Per source: the items all of whose op kinds it knows.
    usable = [np.array([kinds_of(it) <= set(p.kinds_) for it in items]) for p in sources]
    if not any(u.any() for u in usable):
        target_kinds = sorted(set().union(*map(kinds_of, items))) if items else []
        known = sorted(set().union(*(p.kinds_ for p in sources)))
        raise AdaptError(
            f"no overlap: the target's items have op kinds {', '.join(target_kinds) or '(none)'}, the sources know "
            f"{', '.join(known)}; measure items of those kinds on the target (or use a source that has them)"
        )
    best_n = max(int(u.sum()) for u in usable)
    _check_n(best_n)
    candidates: list[_Candidate] = []
    designs = []
    for si, p in enumerate(sources):
        mask = usable[si]
        design = _design(p, [it for it, m in zip(items, mask) if m]) if mask.sum() >= MIN_N else None
        designs.append(design)
        if design is None or mask.sum() < best_n:  # sources are compared on the same points only
            continue
        for method in methods:
            A = design.matrix(method)
            for lam in _LAMBDAS if A.shape[1] > 1 else (0.0,):
                err = _cv_error(A, y[mask], design.overhead, lam)
                candidates.append(_Candidate(si, method, lam, err))
    # Parsimony: the simplest method (then the strongest shrinkage) whose error is within a few per cent of the
    # best; with 10 points, differences smaller than that are noise, and the simpler model extrapolates better.
    lowest = min(c.cv_mape for c in candidates)
    close = [c for c in candidates if c.cv_mape <= lowest * (1 + _TIE) + 1e-4]
    best = min(close, key=lambda c: (OP_METHODS.index(c.method), -c.lam, c.cv_mape, c.source))
    src, design, mask = sources[best.source], designs[best.source], usable[best.source]
    A = design.matrix(best.method)
    w, w0 = _fit_weights(A, y[mask], design.overhead, best.lam)
    fitted = np.abs((A @ w + w0 * design.overhead) / y[mask] - 1)
    out = _rewrite(src, design, best.method, w, w0, device_key)
    out.adaptation_ = {
        "method": best.method,
        "source": names[best.source],
        "sources": names,
        "n": int(mask.sum()),
        "n_ops": int(sum(not isinstance(it, Network) for it, m in zip(items, mask) if m)),
        "n_networks": int(sum(isinstance(it, Network) for it, m in zip(items, mask) if m)),
        "shrinkage": float(best.lam),
        "global_scale": float(w0),
        "weights": {label: float(v) for label, v in zip(design.layout(best.method)[1], np.atleast_1d(w))},
        "cv_mape": float(best.cv_mape),
        "fit_mape": float(np.mean(fitted)),
        "candidates": [
            {"source": names[c.source], "method": c.method, "shrinkage": c.lam, "cv_mape": round(c.cv_mape, 5)}
            for c in candidates
        ],
        "trusted": bool(mask.sum() >= TRUST_N),
    }
    return out


def _rewrite(src: Any, design: _Design, method: str, w: np.ndarray, w0: float, device_key: str) -> Any:
    """A copy of ``src`` whose kind models predict ``Σ_g w_(kind,g) · share_g · src`` (exactly)."""
    out = copy.deepcopy(src)
    col, _ = design.layout(method)
    w = np.atleast_1d(w)
    for ki, kind in enumerate(design.kinds):
        model = out.models_[kind]
        gw = w[col[ki]]
        if model.prior_coef_ is not None:
            model.prior_coef_ = model.prior_coef_ * gw[list(_GROUP_OF_COLUMN)]
        else:
            model.const_ = float(model.const_ + np.log(gw[_TREE_GROUP]))
    out.overhead_ms_ = float(src.overhead_ms_ * w0)
    out.device_key_ = device_key
    out.table_sha256_ = None
    return out


# ---------------------------------------------------------------- architecture tables
def _ridge_loo(X: np.ndarray, y: np.ndarray, lam: float) -> tuple[float, np.ndarray, np.ndarray, float]:
    """Ridge with an unpenalised intercept: (LOO mean squared error, w, column means, y mean), closed form."""
    n = len(y)
    mu, ym = X.mean(0), float(y.mean())
    Xc, yc = X - mu, y - ym
    K = Xc @ Xc.T
    inv = np.linalg.inv(K + lam * np.eye(n))
    H = K @ inv
    r = yc - H @ yc
    h = np.clip(np.diag(H) + 1.0 / n, 0, 1 - 1e-9)
    return float(np.mean((r / (1 - h)) ** 2)), Xc.T @ (inv @ yc), mu, ym


def _affine_loo(x: np.ndarray, y: np.ndarray, slope: bool) -> tuple[float, float, float]:
    """``y ≈ a + b x`` (``slope``) or ``y ≈ a + x``: (LOO mean squared error, a, b), closed form."""
    n = len(y)
    if not slope or n < 3 or np.ptp(x) == 0:
        d = y - x
        a = float(d.mean())
        return float(np.mean(((d - a) * n / (n - 1)) ** 2)), a, 1.0
    X = np.stack([np.ones(n), x], 1)
    inv = np.linalg.inv(X.T @ X)
    coef = inv @ X.T @ y
    h = np.einsum("ij,jk,ik->i", X, inv, X)
    r = y - X @ coef
    return float(np.mean((r / np.clip(1 - h, 1e-9, None)) ** 2)), float(coef[0]), float(coef[1])


@dataclass
class ArchAdapter:
    """A fitted log-latency model of the target over architectures: what :func:`fit_arch` returns.

    ``predict_ms(S_log, K)`` takes the sources' log latencies (n x k, the same source
    columns as in fit) and the architectures' kind features (n x m, or None).
    """

    method: str
    source: str | None
    n: int
    cv_rmse_log: float
    coef: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    intercept: float = 0.0
    columns: tuple[int, ...] = ()
    candidates: dict[str, float] = field(default_factory=dict)
    from_scratch: bool = False

    def predict_log(self, S_log: np.ndarray, K: np.ndarray | None = None) -> np.ndarray:
        X = _arch_features(self.method, np.asarray(S_log, dtype=float), K)
        if self.columns:
            X = X[:, list(self.columns)]
        return (X - self.mean) @ self.coef + self.intercept

    def predict_ms(self, S_log: np.ndarray, K: np.ndarray | None = None) -> np.ndarray:
        return np.exp(self.predict_log(S_log, K))

    def metadata(self) -> dict:
        return {
            "method": self.method,
            "source": self.source,
            "n": self.n,
            "cv_rmse_log": self.cv_rmse_log,
            "from_scratch": self.from_scratch,
            "candidates": self.candidates,
        }


def _arch_features(method: str, S_log: np.ndarray, K: np.ndarray | None) -> np.ndarray:
    if method in ("scale", "affine", "blend"):
        return S_log
    if K is None:
        raise AdaptError(f"method {method!r} needs the architectures' kind features (op counts); none were given")
    K = np.asarray(K, dtype=float)  # standardised op counts (ArchTable.kind_features)
    return K if method == "kinds" else np.hstack([S_log, K])


def fit_arch(
    S_log: np.ndarray,
    y_ms: Any,
    K: np.ndarray | None = None,
    *,
    source_names: Sequence[str] | None = None,
    methods: Sequence[str] = ARCH_METHODS,
) -> ArchAdapter:
    """Fit the target's log latency on N architectures from the sources' log latencies and kind features.

    Parameters
    ----------
    S_log : ndarray, N x k
        Log latency (ms) of the N measured architectures on each of the k sources.
    y_ms : array, N
        Their latency on the target (ms).
    K : ndarray, N x m, optional
        Kind features of the architectures (standardised op counts); the ``blend+kinds``
        and ``kinds`` methods need them and are skipped without them.
    methods
        Candidates among :data:`ARCH_METHODS`, chosen by leave-one-out RMSE in log latency.
    """
    S_log = np.asarray(S_log, dtype=float)
    y = np.log(check_latencies(y_ms))
    if S_log.ndim != 2 or len(S_log) != len(y):
        raise AdaptError(f"S_log must be N x k with N = {len(y)} rows (one per measured architecture)")
    if not np.all(np.isfinite(S_log)):
        raise AdaptError("source latencies of the measured architectures must be finite and > 0 ms")
    bad = [m for m in methods if m not in ARCH_METHODS]
    if bad or not methods:
        raise AdaptError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(ARCH_METHODS)}")
    n, k = S_log.shape
    if k == 0 and K is None:
        raise AdaptError("no source devices and no kind features: nothing to transfer from")
    _check_n(n)
    names = list(source_names or [f"source{i}" for i in range(k)])
    results: list[tuple[float, ArchAdapter]] = []
    for method in methods:
        if method in ("scale", "affine"):
            for j in range(k):
                err, a, b = _affine_loo(S_log[:, j], y, slope=method == "affine")
                results.append((err, ArchAdapter(method, names[j], n, 0.0, np.array([b]), np.zeros(1), a, (j,))))
            continue
        if method in ("blend+kinds", "kinds") and K is None:
            continue
        if method == "blend" and k < 2:
            continue
        X = _arch_features(method, S_log, K)
        for lam in _RIDGE:
            err, w, mu, ym = _ridge_loo(X, y, lam)
            results.append((err, ArchAdapter(method, None, n, 0.0, w, mu, ym, (), from_scratch=method == "kinds")))
    if not results:
        raise AdaptError("no method applies: give at least one source (or kind features for 'kinds')")
    per_method: dict[str, float] = {}
    for err, ad in results:
        per_method[ad.method] = min(per_method.get(ad.method, np.inf), float(np.sqrt(err)))
    err, best = min(results, key=lambda r: r[0])
    best.cv_rmse_log = float(np.sqrt(err))
    best.candidates = {m: round(v, 5) for m, v in per_method.items()}
    return best
