"""Drift correction: divide a shared machine's slow and fast spells out of a table.

On a shared machine the speed of the whole CPU changes for seconds to minutes at
a time (other tenants' load, memory bandwidth, frequency): every op measured in
such a spell comes out slower by about the same factor. The adaptive protocol's
rounds spread noise across the ops of a group, but not across a spell longer
than the group. With a *reference op* (``hwlat measure --reference auto``,
``measure(..., reference=item)``) one fixed op is timed in every round beside
the others, and each row records the reference's median over the same rounds
(``extra["ref_ms"]``). Correcting a row then means::

    corrected = median_ms * baseline_ms / ref_ms

with ``baseline_ms`` the median of ``ref_ms`` over all rows of the same device,
protocol and reference (or a value you give): every row is put on the table's
typical speed. Raw rows are never changed in the store; correction is a view
(``LatencyStore.frame(correct_drift=True)``, ``hwlat fit --correct-drift``).
It assumes a spell slows every op alike. That holds only roughly: on the
development machine it cut the median difference between two runs in different
spells from 40 % to 5 % (ONNX Runtime) and from 14 % to 3 % (LiteRT), not to the
quiet machine's 0.6-0.9 % (``benchmarks/measure_repeatability.py``).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "REFERENCE_OP",
    "reference_id",
    "reference_op",
    "correct_frame",
    "correct_frames",
    "drift_summary",
    "SCALED_COLUMNS",
]

#: The default reference (``--reference auto``): a mid-sized MBConv block, ~0.1-1 ms on one CPU core.
REFERENCE_OP = "mbconv:cin=80,cout=80,h=14,w=14,kernel=3,stride=1,expand=6,act=relu6"
#: The statistics a drift factor scales (all in ms).
SCALED_COLUMNS = ("median_ms", "mean_ms", "std_ms", "p5_ms", "p95_ms", "iqr_ms", "ci_low_ms", "ci_high_ms")


def reference_id(op_key: str) -> float:
    """A number naming the reference op in ``Measurement.extra`` (CRC-32 of its key; exact in a float)."""
    return float(zlib.crc32(op_key.encode()))


def reference_op(name: str):
    """The reference for ``--reference NAME``: ``auto`` (:data:`REFERENCE_OP`) or an op key."""
    from hwlat.ops import OpSpec

    key = REFERENCE_OP if name == "auto" else name
    try:
        return OpSpec.from_key(key)
    except (ValueError, KeyError) as exc:
        raise ValueError(
            f"Invalid reference {name!r}: give 'auto' or an op key such as {REFERENCE_OP} ({exc})"
        ) from exc


def _references(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the reference's ms and id (NaN where the row has none), from the ``extra`` dicts."""
    if "extra" not in df.columns:
        return np.full(len(df), np.nan), np.full(len(df), np.nan)
    extras = list(df["extra"])
    ref = np.array([e.get("ref_ms", np.nan) for e in extras], dtype=float)
    return np.where(ref > 0, ref, np.nan), np.array([e.get("ref_id", np.nan) for e in extras], dtype=float)


def correct_frame(df: pd.DataFrame, baseline_ms: float | None = None) -> pd.DataFrame:
    """A copy of a table frame with every row that has a reference put on the baseline speed.

    Adds columns ``ref_ms`` and ``drift`` (= ref_ms / baseline; NaN for rows
    measured without a reference, which are left as they are).
    ``baseline_ms``: the reference's latency to correct to; by default the
    median of ``ref_ms`` per (device, protocol, reference) group.
    """
    import pandas as pd

    out = df.copy()
    ref, rid = _references(out)
    if baseline_ms is None:  # NaN refs are skipped by the median and stay NaN
        groups = [out["device_key"].to_numpy(), out["protocol"].to_numpy(), rid]
        base = pd.Series(ref, index=out.index).groupby(groups, dropna=False).transform("median").to_numpy()
    else:
        base = np.full(len(out), float(baseline_ms))
    drift = ref / base
    factor = np.ones(len(out))
    factor[np.isfinite(drift)] = 1.0 / drift[np.isfinite(drift)]
    for col in SCALED_COLUMNS:
        if col in out.columns:
            out[col] = out[col].to_numpy(dtype=float) * factor
    if "round_medians_ms" in out.columns:
        out["round_medians_ms"] = [
            tuple(v * f for v in r) if f != 1.0 else r for r, f in zip(out["round_medians_ms"], factor)
        ]
    out["ref_ms"] = ref
    out["drift"] = drift
    return out


def correct_frames(*frames: pd.DataFrame | None) -> list[pd.DataFrame | None]:
    """Correct several frames (a table and its repeat, say) to one common baseline."""
    import pandas as pd

    given = [(i, f) for i, f in enumerate(frames) if f is not None]
    both = pd.concat([f.assign(_frame=i) for i, f in given], ignore_index=True)
    fixed = correct_frame(both)
    out: list[pd.DataFrame | None] = [None] * len(frames)
    for i, f in given:
        out[i] = fixed[fixed["_frame"] == i].drop(columns="_frame").set_axis(f.index)
    return out


def drift_summary(df: pd.DataFrame) -> str | None:
    """One line on how far the reference moved in these rows (None: no reference recorded)."""
    ref = _references(df)[0]
    has = np.isfinite(ref)
    if not has.any():
        return None
    lo, med, hi = np.percentile(ref[has], [0, 50, 100])
    raw = int((~has).sum())
    return (
        f"drift reference: {med:.4g} ms median, {lo:.4g}-{hi:.4g} ms over {int(has.sum())} rows "
        f"(x{hi / lo:.2f}); correct with `hwlat fit --correct-drift`"
        + (f"; rows without a reference, left raw: {raw}" if raw else "")
    )
