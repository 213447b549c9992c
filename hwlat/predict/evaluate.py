"""Predictor quality the way the field reports it, and the measurement noise floor.

Metrics (``metrics(pred, true)``): RMSE in ms, MAPE, ±5 % / ±10 % accuracy
(share of items whose relative error is within the bound) and Spearman rank
correlation. The noise floor is the same metrics between two repeated
measurements of the same items: no predictor can be expected to beat it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.ops import WHOLE_KINDS

__all__ = ["Metrics", "metrics", "split_ops", "evaluate_table", "write_report", "scatter_png"]


@dataclass(frozen=True)
class Metrics:
    n: int
    rmse_ms: float
    mape: float
    acc5: float
    acc10: float
    spearman: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.n} | {self.rmse_ms:.4f} | {100 * self.mape:.2f} % | {100 * self.acc5:.1f} % | "
            f"{100 * self.acc10:.1f} % | {self.spearman:.4f} |"
        )


HEADER = "| items | n | RMSE (ms) | MAPE | ±5 % acc | ±10 % acc | Spearman |\n|---|---|---|---|---|---|---|"


def metrics(pred: Any, true: Any) -> Metrics:
    """Compare predicted and measured latencies (same order, ms)."""
    from scipy.stats import spearmanr

    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if pred.shape != true.shape or pred.ndim != 1 or len(pred) == 0:
        raise ValueError(f"need two 1-D arrays of the same non-zero length, got {pred.shape} and {true.shape}")
    if np.any(true <= 0):
        raise ValueError("measured latencies must be > 0")
    rel = np.abs(pred - true) / true
    rho = float(spearmanr(pred, true).statistic) if len(pred) > 2 else float("nan")
    return Metrics(
        n=len(pred),
        rmse_ms=float(np.sqrt(np.mean((pred - true) ** 2))),
        mape=float(rel.mean()),
        acc5=float(np.mean(rel <= 0.05)),
        acc10=float(np.mean(rel <= 0.10)),
        spearman=rho,
    )


def split_ops(keys: Any, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test boolean masks over ``keys`` (hash of key + seed)."""
    import hashlib

    h = np.array([int(hashlib.sha1(f"{seed}|{k}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for k in keys])
    test = h < test_fraction
    return ~test, test


def evaluate_table(
    predictor, table, repeat_table=None, target: str = "median_ms", correct_drift: bool = False
) -> dict[str, Any]:
    """Evaluate ``predictor`` on a table's ops (by kind) and networks; noise floor from ``repeat_table``.

    ``correct_drift``: both tables' rows measured with a drift reference are put
    on one common speed first (:func:`hwlat.measure.drift.correct_frames`).
    """
    from hwlat.measure.drift import correct_frames
    from hwlat.network import Network
    from hwlat.predict.predictor import _table_frame

    df, nets, _ = _table_frame(table)
    rdf = _table_frame(repeat_table)[0] if repeat_table is not None else None
    if correct_drift:
        df, rdf = correct_frames(df, rdf)
    df = df[df["device_key"] == predictor.device_key_] if predictor.device_key_ else df
    out: dict[str, Any] = {"ops": {}, "networks": None, "noise_floor": {}, "points": {}}
    ops = df[~df["kind"].isin(WHOLE_KINDS)]
    for kind, g in ops.groupby("kind"):
        if kind not in predictor.models_:
            continue
        pred = predictor.predict(list(g["op_key"]))
        out["ops"][kind] = metrics(pred, g[target].to_numpy())
        out["points"][kind] = (pred, g[target].to_numpy())
    nrows = df[(df["kind"] == "network") & df["op_key"].isin(list(nets))]
    if len(nrows):
        net_list: list[Network] = [nets[k] for k in nrows["op_key"]]
        pred = predictor.predict_network(net_list)
        out["networks"] = metrics(pred, nrows[target].to_numpy())
        out["points"]["networks"] = (pred, nrows[target].to_numpy())
    if rdf is not None:
        merged = df.merge(rdf, on=["device_key", "op_key", "protocol"], suffixes=("", "_rep"))
        for name, g in (
            ("ops", merged[~merged["kind"].isin(WHOLE_KINDS)]),
            ("networks", merged[merged["kind"] == "network"]),
        ):
            if len(g):
                out["noise_floor"][name] = metrics(g[f"{target}_rep"].to_numpy(), g[target].to_numpy())
    return out


def write_report(result: dict[str, Any], path: str | Path, title: str) -> Path:
    """Markdown report of :func:`evaluate_table`'s result."""
    path = Path(path)
    lines = [f"# {title}", "", HEADER]
    for kind, m in sorted(result["ops"].items()):
        lines.append(m.row(f"ops: {kind}"))
    if result["networks"] is not None:
        lines.append(result["networks"].row("networks"))
    for name, m in result["noise_floor"].items():
        lines.append(m.row(f"noise floor ({name}, repeat vs first)"))
    path.write_text("\n".join(lines) + "\n")
    return path


def scatter_png(points: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Predicted vs measured, log-log, one panel per op kind and one for networks, with y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(points)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        pred, true = points[name]
        ax.scatter(true, pred, s=8, alpha=0.6)
        lo, hi = min(true.min(), pred.min()) * 0.9, max(true.max(), pred.max()) * 1.1
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.15, label="±10 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
        ax.set_title(name)
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
