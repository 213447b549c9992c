"""What ``hwlat adapt`` runs: sources from files, the target's N rows from a table, the adapted predictor saved.

Sources are predictor files (``.skops`` written by ``hwlat fit``) or latency tables
(SQLite, or ``.csv``/``.parquet`` written by ``hwlat table export``), which are fitted
first (``prior+gbr``). The target's rows are every op row and every network row with
its definition in the table for one device. The output is checked before anything is
fitted (:func:`hwlat.predict.predictor.check_predictor_output`): a latency table is
never replaced, another file only with ``force``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.adapt.methods import AdaptError, adapt_predictor, check_latencies

__all__ = ["adapt_table", "load_source", "load_sources", "target_rows"]

_TABLE_SUFFIXES = (".csv", ".parquet")


def _check_versions(path: Path) -> None:
    """A source saved by another hwlat or scikit-learn is refused: its trees may not mean the same here."""
    from hwlat.predict.predictor import _versions

    try:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError):
        return  # load_predictor reports a missing or unreadable metadata file itself
    then, now = meta.get("versions", {}), _versions()
    diff = [f"{k} {then.get(k)} -> {now[k]}" for k in ("hwlat", "scikit-learn") if then.get(k) != now[k]]
    if diff:
        table = meta.get("training_table") or "ITS_TABLE"
        raise AdaptError(
            f"source {path}: saved with other library versions ({', '.join(diff)}); re-fit it here: "
            f"`hwlat fit --table {table} --out NEW.skops`"
        )


def load_source(path: str | Path) -> Any:
    """A fitted source predictor from a predictor file or a single-device latency table."""
    from hwlat.outfile import is_sqlite
    from hwlat.predict import LatencyPredictor, load_predictor

    path = Path(path)
    if not path.exists():
        raise AdaptError(f"--from {path}: no such file (give predictor .skops files or latency tables)")
    if is_sqlite(path):
        return LatencyPredictor().fit_table(path)
    if path.suffix in _TABLE_SUFFIXES:
        from hwlat.store import LatencyStore

        with LatencyStore(":memory:") as store:
            store.import_file(path)
            return LatencyPredictor().fit_table(store)
    _check_versions(path)
    return load_predictor(path)


def load_sources(spec: str | Sequence[str | Path]) -> tuple[list[Any], list[str]]:
    """``(predictors, names)`` from a comma-separated ``--from`` value or a list of paths."""
    paths = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else [str(p) for p in spec]
    paths = [p for p in paths if p]
    if not paths:
        raise AdaptError("--from: give at least one source predictor (.skops) or latency table")
    return [load_source(p) for p in paths], [Path(p).name for p in paths]


def target_rows(table: str | Path, device: str | None = None) -> tuple[list[Any], np.ndarray, str, Any]:
    """``(items, median_ms, device_key, frame)``: the table's op rows and defined network rows of one device."""
    from hwlat.ops import WHOLE_KINDS, OpSpec
    from hwlat.store import LatencyStore
    from hwlat.workflows import resolve_device_key

    if not Path(table).exists():
        raise AdaptError(f"--table {table}: no such latency table; measure one with `hwlat measure --few-shot 10 ...`")
    with LatencyStore(table, readonly=True) as store:
        key = resolve_device_key(store, device)
        df = store.frame(key, provenance=False)
        nets = store.networks()
    items: list[Any] = []
    keep = []
    for i, (kind, op_key) in enumerate(zip(df["kind"], df["op_key"])):
        if kind == "network":
            if op_key in nets:
                items.append(nets[op_key])
                keep.append(i)
        elif kind not in WHOLE_KINDS:  # a user's whole model has no op list to adapt through: left out
            items.append(OpSpec.from_key(op_key))
            keep.append(i)
    df = df.iloc[keep]
    return items, check_latencies(df["median_ms"].to_numpy(), f"{table} (median_ms)"), key, df


def adapt_table(
    sources: str | Sequence[str | Path],
    table: str | Path,
    out: str | Path,
    *,
    device: str | None = None,
    force: bool = False,
) -> tuple[Any, Path, Path]:
    """Adapt the ``sources`` to the device of ``table`` and save the predictor to ``out`` (and ``out.json``).

    The metadata file gains an ``adaptation`` record (method, sources, N, cross-validated MAPE).
    Returns ``(predictor, path, metadata path)``.
    """
    from hwlat.predict import save_predictor, table_checksum
    from hwlat.predict.predictor import check_predictor_output

    check_predictor_output(out, force)  # before any fitting: never a table, another file only with --force
    predictors, names = load_sources(sources)
    items, y, key, df = target_rows(table, device)
    predictor = adapt_predictor(predictors, items, y, device_key=key, source_names=names)
    predictor.table_sha256_ = table_checksum(df)
    path, meta_path = save_predictor(predictor, out, table=str(table), force=force)  # writes the adaptation record
    return predictor, Path(path), Path(meta_path)
