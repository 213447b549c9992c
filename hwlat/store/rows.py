"""The rules every row keeps, measured or imported, and reading exported files back."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwlat.measure import Measurement
from hwlat.store.schema import _MEAS_FIELDS, StoreError

if TYPE_CHECKING:
    pass


class BadRow(ValueError):
    """A row (of an import, or a measurement to add) breaks a rule; ``column`` names the field."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


# --------------------------------------------------------------- checking rows
DEFAULT_MAX_INPUT_MB = {"table": 200.0, "lut": 20.0}


def check_input_size(path: Path, what: str, max_mb: float | None = None) -> None:
    """Refuse an input file over ``max_mb`` (default: HWLAT_MAX_INPUT_MB, else 200 MB tables / 20 MB LUTs)."""
    if max_mb is None:
        text = os.environ.get("HWLAT_MAX_INPUT_MB", "")
        try:
            max_mb = float(text) if text else DEFAULT_MAX_INPUT_MB[what]
        except ValueError:
            max_mb = float("nan")
        if not max_mb > 0:
            raise ValueError(f"Invalid HWLAT_MAX_INPUT_MB={text!r}: must be a number of megabytes > 0")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from exc
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file")
    if size > max_mb * 1e6:
        raise ValueError(
            f"{path}: {size / 1e6:.1f} MB is over the {max_mb:g} MB limit for a {what} file; "
            f"set HWLAT_MAX_INPUT_MB to a larger number of MB to import it"
        )


_NONNEG = ("median_ms", "mean_ms", "std_ms", "p5_ms", "p95_ms", "iqr_ms", "wall_s")


def check_measurement(m: Measurement) -> None:
    """The rules every stored row keeps; raises :class:`BadRow` naming the field.

    The op key parses to a valid op (:meth:`hwlat.ops.OpSpec.from_key`, its
    size limits included) of the row's kind, or is a network key; the device
    key is one; statistics are finite (times >= 0); ``n`` and ``rounds`` are
    whole numbers >= 0; ``stable`` a bool; round medians finite numbers >= 0.
    """
    from hwlat.devices import DeviceSpec
    from hwlat.ops import OpSpec

    for name in ("device_key", "op_key", "protocol", "kind"):
        value = getattr(m, name)
        if not isinstance(value, str) or not value:
            raise BadRow(name, f"{name}={value!r}: must be a non-empty text")
    try:
        spec = DeviceSpec.parse(m.device_key)
    except (ValueError, TypeError) as exc:
        raise BadRow("device_key", f"device_key={m.device_key!r} is not a device key ({exc})") from None
    if spec.key != m.device_key:
        raise BadRow("device_key", f"device_key={m.device_key!r} is not a device key (expected e.g. {spec.key!r})")
    if m.kind == "network":
        if not re.fullmatch(r"net:.+:[0-9a-f]{12}", m.op_key):
            raise BadRow("op_key", f"op_key={m.op_key!r} is not a network key (net:NAME:DIGEST)")
    elif m.kind == "model":
        if not re.fullmatch(r"model:.+:[0-9a-f]{12}:[0-9]+(x[0-9]+)*", m.op_key):
            raise BadRow("op_key", f"op_key={m.op_key!r} is not a model key (model:NAME:SHA256[:12]:SHAPE)")
    else:
        try:
            op = OpSpec.from_key(m.op_key)
        except (ValueError, TypeError) as exc:
            raise BadRow("op_key", str(exc)) from None
        if op.kind != m.kind:
            raise BadRow("kind", f"kind={m.kind!r} but op_key {m.op_key!r} is a {op.kind!r} op")
    for name in ("n", "rounds"):
        value = getattr(m, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise BadRow(name, f"{name}={value!r}: must be a whole number >= 0")
    for name in _MEAS_FIELDS:
        if name in ("n", "rounds", "stable"):
            continue
        value = getattr(m, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise BadRow(name, f"{name}={value!r}: must be a number")
        if name == "loadavg" and value != value:
            continue  # no load average known
        if not math.isfinite(value):
            raise BadRow(name, f"{name}={value!r}: must be finite")
        if (name in _NONNEG or name == "loadavg") and value < 0:
            raise BadRow(name, f"{name}={value!r}: must be >= 0")
    if type(m.stable).__name__ not in ("bool", "bool_"):
        raise BadRow("stable", f"stable={m.stable!r}: must be true or false")
    for v in m.round_medians_ms:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise BadRow("round_medians_ms", f"round_medians_ms has {v!r}: each must be a finite number >= 0")
    for k, v in m.extra:
        if not isinstance(k, str) or not (v is None or isinstance(v, (numbers.Real, str))):
            raise BadRow("extra_json", f"extra_json entry {k!r}: {v!r} must be a number or text")


def _cell_int(col: str, v: Any) -> int:
    f = _cell_float(col, v)
    if not math.isfinite(f) or f != int(f):
        raise BadRow(col, f"{col}={v!r}: must be a whole number")
    return int(f)


def _cell_float(col: str, v: Any, empty_nan: bool = False) -> float:
    if isinstance(v, str):
        text = v.strip()
        if not text and empty_nan:
            return float("nan")
        try:
            return float(text)
        except ValueError:
            raise BadRow(col, f"{col}={v!r}: must be a number") from None
    if v is None and empty_nan:
        return float("nan")
    if isinstance(v, bool) or not hasattr(v, "__float__") or type(v).__name__.startswith("bool"):
        raise BadRow(col, f"{col}={v!r}: must be a number")
    return float(v)


def _cell_bool(col: str, v: Any) -> bool:
    text = str(v).strip().lower()
    if text in ("1", "true", "1.0"):
        return True
    if text in ("0", "false", "0.0"):
        return False
    raise BadRow(col, f"{col}={v!r}: must be 0, 1, true or false")


def _cell_text(col: str, v: Any, required: bool = True) -> str:
    if v is None or (isinstance(v, float) and v != v):
        v = ""
    if not isinstance(v, str):
        raise BadRow(col, f"{col}={v!r}: must be text")
    if required and not v:
        raise BadRow(col, f"{col} is empty")
    return v


def _cell_json(col: str, v: Any, kind: type) -> Any:
    text = _cell_text(col, v)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRow(col, f"{col} is not JSON ({exc}): {text[:40]!r}") from None
    if not isinstance(value, kind):
        raise BadRow(col, f"{col} must be a JSON {'object' if kind is dict else 'list'}, got {text[:40]!r}")
    return value


def _parse_row(rec: dict[str, Any]) -> tuple[Measurement, str, str, dict | None]:
    """One exported row: (measurement, info_id, device info text, network definition or None)."""
    from hwlat.network import Network

    text = {c: _cell_text(c, rec[c]) for c in ("device_key", "op_key", "protocol", "kind")}
    medians = _cell_json("round_medians_ms", rec["round_medians_ms"], list)
    extra_text = _cell_text("extra_json", rec.get("extra_json"), required=False) or "{}"
    extra = _cell_json("extra_json", extra_text, dict)
    info_text = rec["device_info_json"]
    _cell_json("device_info_json", info_text, dict)
    info_id = (
        _cell_text("info_id", rec.get("info_id"), required=False) or hashlib.sha1(info_text.encode()).hexdigest()[:16]
    )
    net = None
    net_text = _cell_text("network_json", rec.get("network_json"), required=False)
    if net_text:
        net = _cell_json("network_json", net_text, dict)
        try:
            network = Network.from_dict(net)
        except (ValueError, TypeError) as exc:
            raise BadRow("network_json", f"network_json is not a network ({exc})") from None
        if network.key != text["op_key"]:
            raise BadRow("network_json", f"network_json describes {network.key!r}, not the row's {text['op_key']!r}")
    stats = {}
    for name in _MEAS_FIELDS:
        if name in ("n", "rounds"):
            stats[name] = _cell_int(name, rec[name])
        elif name == "stable":
            stats[name] = _cell_bool(name, rec[name])
        else:
            stats[name] = _cell_float(name, rec[name], empty_nan=name == "loadavg")
    for v in medians:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadRow("round_medians_ms", f"round_medians_ms has {v!r}: each must be a number")
    m = Measurement(
        **text,
        **stats,
        round_medians_ms=tuple(float(v) for v in medians),
        extra=tuple(sorted(extra.items())),
    )
    check_measurement(m)
    return m, info_id, info_text, net


def _read_export(path: Path, max_mb: float | None) -> list[tuple[Measurement, str, str, dict | None]]:
    """Read and check every row of an exported table file (nothing is written)."""
    import pandas as pd

    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"Invalid import path {str(path)!r}: the suffix must be .parquet or .csv")
    check_input_size(path, "table", max_mb)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:  # every cell as text, parsed (and checked) here
            df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read it as {path.suffix[1:]} ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # parser errors of pandas/pyarrow
        raise StoreError(f"{path}: cannot read it as {path.suffix[1:]} ({type(exc).__name__}: {exc})") from None
    need = {"device_key", "op_key", "protocol", "kind", *_MEAS_FIELDS, "round_medians_ms", "device_info_json"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise StoreError(f"{path}: not an hwlat table export (missing columns: {', '.join(missing)})")
    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        try:
            rows.append(_parse_row(rec))
        except BadRow as exc:
            where = f"row {i}" + (f" (line {i + 1})" if path.suffix == ".csv" else "")
            raise BadRow(
                exc.column, f"{path}: {where}, column {exc.column!r}: {exc}; nothing was imported — fix or drop the row"
            ) from None
    return rows


def _real(value: Any) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN (e.g. no load average) is stored as NULL


def _row_to_measurement(r: dict[str, Any]) -> Measurement:
    extra = r.get("extra_json") or "{}"
    return Measurement(
        op_key=r["op_key"],
        device_key=r["device_key"],
        protocol=r["protocol"],
        kind=r["kind"],
        n=int(r["n"]),
        median_ms=float(r["median_ms"]),
        mean_ms=float(r["mean_ms"]),
        std_ms=float(r["std_ms"]),
        p5_ms=float(r["p5_ms"]),
        p95_ms=float(r["p95_ms"]),
        iqr_ms=float(r["iqr_ms"]),
        ci_low_ms=float(r["ci_low_ms"]),
        ci_high_ms=float(r["ci_high_ms"]),
        rounds=int(r["rounds"]),
        round_medians_ms=tuple(json.loads(r["round_medians_ms"])),
        stable=bool(r["stable"]),
        loadavg=float("nan") if r["loadavg"] is None or r["loadavg"] == "" else float(r["loadavg"]),
        wall_s=float(r["wall_s"]),
        extra=tuple(sorted(json.loads(extra).items())),
    )
