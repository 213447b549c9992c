"""Latency tables: one SQLite file (WAL) of measurements with their provenance.

Rows are keyed by (device key, op key, protocol). Each row is committed as
soon as its op is final, so a killed run loses at most the ops in flight, and
re-running the same command skips what is already there.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwlat.measure import Measurement

if TYPE_CHECKING:
    import pandas as pd

    from hwlat.devices import DeviceInfo
    from hwlat.network import Network

__all__ = ["LatencyStore", "StoreError", "SCHEMA_VERSION"]

APPLICATION_ID = 0x48574C54  # "HWLT": marks a file as an hwlat table
SCHEMA_VERSION = 1
_MEAS_FIELDS = (
    "n",
    "median_ms",
    "mean_ms",
    "std_ms",
    "p5_ms",
    "p95_ms",
    "iqr_ms",
    "ci_low_ms",
    "ci_high_ms",
    "rounds",
    "stable",
    "loadavg",
    "wall_s",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS devices (
    device_key TEXT NOT NULL,
    info_json TEXT NOT NULL,
    info_id TEXT NOT NULL PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS networks (
    net_key TEXT NOT NULL PRIMARY KEY,
    definition_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    device_key TEXT NOT NULL,
    op_key TEXT NOT NULL,
    protocol TEXT NOT NULL,
    kind TEXT NOT NULL,
    {", ".join(f"{f} REAL" + ("" if f == "loadavg" else " NOT NULL") for f in _MEAS_FIELDS)},
    round_medians_ms TEXT NOT NULL,
    extra_json TEXT NOT NULL,
    info_id TEXT NOT NULL REFERENCES devices(info_id),
    hwlat_version TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (device_key, op_key, protocol)
);
"""


class StoreError(ValueError):
    """The file is not a usable hwlat table (foreign, corrupt, newer, unwritable)."""


class LatencyStore:
    """A latency table on disk.

    Parameters
    ----------
    path : str or Path
        SQLite file; created (with its folder) unless ``readonly``.
    readonly : bool
        Open without ever writing (``frame``/``export`` of a shipped table).

    Examples
    --------
    >>> store = LatencyStore(":memory:")
    >>> len(store)
    0
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = str(path)
        self.readonly = readonly
        self._conn = self._open()

    # ----------------------------------------------------------- opening
    def _open(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        p = Path(self.path)
        exists = not memory and p.exists()
        if not memory and not exists:
            if self.readonly:
                raise StoreError(f"{self.path}: no such latency table")
            check_writable(p)
        if exists:
            if p.is_dir():
                raise StoreError(f"{p}: is a folder; give a file path")
            self._check_foreign(p)
        uri = f"file:{p.resolve()}?mode=ro" if (exists and self.readonly) else None
        try:
            conn = sqlite3.connect(uri or self.path, uri=uri is not None, timeout=30, isolation_level=None)
            if not self.readonly:
                if not memory:
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if not exists:
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.executescript(_SCHEMA)
                if not exists and not memory:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # header (application_id) on disk now
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path}: not a readable hwlat latency table ({exc}); the file was left untouched"
            ) from exc
        return conn

    def _check_foreign(self, p: Path) -> None:
        """Read the header without writing: refuse foreign, corrupt or newer files."""
        try:
            with open(p, "rb") as fh:
                header = fh.read(100)
        except OSError as exc:
            raise StoreError(f"{p}: cannot read ({exc.strerror})") from exc
        if len(header) == 0:
            return  # an empty file (e.g. from mktemp) becomes a new table
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise StoreError(f"{p}: not an SQLite file, so not an hwlat latency table; the file was left untouched")
        # Ask SQLite read-only: with WAL the header on disk can lag the log.
        try:
            ro = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
            try:
                app_id = ro.execute("PRAGMA application_id").fetchone()[0]
                version = ro.execute("PRAGMA user_version").fetchone()[0]
            finally:
                ro.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{p}: not a readable hwlat latency table ({exc}); the file was left untouched") from exc
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{p}: an SQLite file that is not an hwlat latency table (application_id={app_id:#x}); "
                "the file was left untouched — pass a new path with --db"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{p}: written by a newer hwlat (schema {version} > {SCHEMA_VERSION}); upgrade hwlat to read it"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LatencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- writing
    def add_device(self, info: DeviceInfo) -> str:
        """Record provenance; returns its id (content hash) for rows to point at."""
        text = json.dumps(info.to_dict(), sort_keys=True)
        info_id = hashlib.sha1(text.encode()).hexdigest()[:16]
        self._conn.execute(
            "INSERT OR IGNORE INTO devices (device_key, info_json, info_id) VALUES (?, ?, ?)",
            (info.device_key, text, info_id),
        )
        return info_id

    def add_network(self, net: Network) -> None:
        """Keep a measured network's definition, so predictors can be checked against it."""
        self._conn.execute(
            "INSERT OR IGNORE INTO networks (net_key, definition_json) VALUES (?, ?)",
            (net.key, json.dumps(net.to_dict())),
        )

    def networks(self) -> dict[str, Network]:
        """Definitions of the networks measured in this table, by key."""
        from hwlat.network import Network

        rows = self._conn.execute("SELECT net_key, definition_json FROM networks")
        return {k: Network.from_dict(json.loads(d)) for k, d in rows}

    def add(self, m: Measurement, info_id: str, replace: bool = False) -> bool:
        """Insert one row (committed at once). Returns False if it was already there."""
        from hwlat import __version__

        # ON CONFLICT only skips duplicates; OR IGNORE would also hide NOT NULL violations.
        conflict = "" if replace else " ON CONFLICT (device_key, op_key, protocol) DO NOTHING"
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        cols = (
            "device_key",
            "op_key",
            "protocol",
            "kind",
            *_MEAS_FIELDS,
            "round_medians_ms",
            "extra_json",
            "info_id",
            "hwlat_version",
            "created_at",
        )
        values = (
            m.device_key,
            m.op_key,
            m.protocol,
            m.kind,
            *(_real(getattr(m, f)) for f in _MEAS_FIELDS),
            json.dumps(list(m.round_medians_ms)),
            json.dumps(dict(m.extra)),
            info_id,
            __version__,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        cur = self._conn.execute(
            f"{verb} INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}){conflict}", values
        )
        return cur.rowcount > 0

    # ----------------------------------------------------------- reading
    def has(self, device_key: str, op_key: str, protocol: str) -> bool:
        cur = self._conn.execute(
            "SELECT 1 FROM measurements WHERE device_key=? AND op_key=? AND protocol=?", (device_key, op_key, protocol)
        )
        return cur.fetchone() is not None

    def done_keys(self, device_key: str, protocol: str) -> set[str]:
        cur = self._conn.execute(
            "SELECT op_key FROM measurements WHERE device_key=? AND protocol=?", (device_key, protocol)
        )
        return {r[0] for r in cur}

    def __len__(self) -> int:
        return self.count()

    def count(self, device_key: str | None = None) -> int:
        """Rows in the table, or ``device_key``'s rows."""
        sql = "SELECT COUNT(*) FROM measurements" + (" WHERE device_key=?" if device_key else "")
        return self._conn.execute(sql, (device_key,) if device_key else ()).fetchone()[0]

    def measurements(self, device_key: str | None = None) -> Iterator[Measurement]:
        sql = "SELECT * FROM measurements" + (" WHERE device_key=?" if device_key else "") + " ORDER BY rowid"
        cur = self._conn.execute(sql, (device_key,) if device_key else ())
        names = [d[0] for d in cur.description]
        for row in cur:
            yield _row_to_measurement(dict(zip(names, row)))

    def devices(self) -> dict[str, dict[str, Any]]:
        """Provenance records by id."""
        return {r[0]: json.loads(r[1]) for r in self._conn.execute("SELECT info_id, info_json FROM devices")}

    def device_keys(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT device_key FROM measurements ORDER BY device_key")]

    def frame(
        self, device_key: str | None = None, provenance: bool = True, correct_drift: bool = False
    ) -> pd.DataFrame:
        """All rows as a DataFrame (one column per statistic, plus provenance).

        Values, not JSON text: ``round_medians_ms`` holds tuples of floats and
        ``extra`` dicts (e.g. ``ref_ms``, ``temp_c``); the stored ``extra_json``
        column is parsed once here and not repeated.

        ``correct_drift``: put rows measured with a drift reference on the
        table's typical speed (:func:`hwlat.measure.drift.correct_frame`).
        """
        import pandas as pd

        sql = "SELECT * FROM measurements" + (" WHERE device_key=?" if device_key else "") + " ORDER BY rowid"
        df = pd.read_sql_query(sql, self._conn, params=(device_key,) if device_key else None)
        df["stable"] = df["stable"].astype(bool)
        for col in ("n", "rounds"):
            df[col] = df[col].astype(int)
        df["round_medians_ms"] = [tuple(json.loads(r)) for r in df["round_medians_ms"]]
        df.insert(df.columns.get_loc("extra_json"), "extra", [json.loads(e or "{}") for e in df.pop("extra_json")])
        if provenance and len(df):
            info = {k: v for k, v in self.devices().items()}
            prov = pd.DataFrame(
                [
                    {
                        "info_id": k,
                        "hardware": v.get("hardware"),
                        "runtime": v.get("runtime"),
                        "runtime_version": v.get("runtime_version"),
                        "threads": v.get("threads"),
                        "hostname": v.get("hostname"),
                    }
                    for k, v in info.items()
                ]
            )
            df = df.merge(prov, on="info_id", how="left")
        if correct_drift:
            from hwlat.measure.drift import correct_frame

            df = correct_frame(df)
        return df

    # ------------------------------------------------------ export/import
    def device_info(self, device_key: str) -> dict[str, Any] | None:
        """Provenance of ``device_key``'s most recent row (None: no rows for it)."""
        row = self._conn.execute(
            "SELECT d.info_json FROM measurements m JOIN devices d ON d.info_id = m.info_id"
            " WHERE m.device_key=? ORDER BY m.rowid DESC LIMIT 1",
            (device_key,),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def export(self, path: str | os.PathLike[str], device_key: str | None = None) -> Path:
        """Write every row (or only ``device_key``'s) with its provenance to ``.parquet`` or ``.csv``."""
        path = Path(path)
        if device_key is not None and device_key not in self.device_keys():
            raise StoreError(
                f"{self.path}: no rows for device {device_key!r}; devices there: "
                f"{', '.join(self.device_keys()) or 'none'}"
            )
        df = self.frame(device_key, provenance=False)
        # The file keeps the table's text columns, so import_file and other tools read them as stored.
        df["round_medians_ms"] = [json.dumps(list(r)) for r in df["round_medians_ms"]]
        df.insert(df.columns.get_loc("extra"), "extra_json", [json.dumps(e) for e in df.pop("extra")])
        info = self.devices()
        df["device_info_json"] = [json.dumps(info.get(i, {}), sort_keys=True) for i in df["info_id"]]
        nets = {k: json.dumps(n.to_dict()) for k, n in self.networks().items()}
        df["network_json"] = [nets.get(k, "") for k in df["op_key"]]
        check_writable(path)
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        elif path.suffix == ".csv":
            df.to_csv(path, index=False)
        else:
            raise ValueError(f"Invalid export path {str(path)!r}: the suffix must be .parquet or .csv")
        return path

    def import_file(self, path: str | os.PathLike[str]) -> int:
        """Add rows from a file written by :meth:`export`; returns how many were new."""
        import pandas as pd

        path = Path(path)
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix == ".csv":
            df = pd.read_csv(path, keep_default_na=False)
        else:
            raise ValueError(f"Invalid import path {str(path)!r}: the suffix must be .parquet or .csv")
        need = {"device_key", "op_key", "protocol", "kind", *_MEAS_FIELDS, "round_medians_ms", "device_info_json"}
        missing = sorted(need - set(df.columns))
        if missing:
            raise StoreError(f"{path}: not an hwlat table export (missing columns: {', '.join(missing)})")
        added = 0
        self._conn.execute("BEGIN")
        try:
            for rec in df.to_dict("records"):
                text = rec["device_info_json"]
                info_id = rec.get("info_id") or hashlib.sha1(text.encode()).hexdigest()[:16]
                self._conn.execute(
                    "INSERT OR IGNORE INTO devices (device_key, info_json, info_id) VALUES (?, ?, ?)",
                    (rec["device_key"], text, info_id),
                )
                rec["info_id"] = info_id
                if rec.get("network_json"):
                    from hwlat.network import Network

                    self.add_network(Network.from_dict(json.loads(rec["network_json"])))
                added += self.add(_row_to_measurement(rec), info_id)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return added

    def add_many(self, rows: Iterable[tuple[Measurement, str]]) -> int:
        return sum(self.add(m, i) for m, i in rows)


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


def check_writable(path: Path) -> None:
    """Fail early, before any measuring, when ``path`` cannot be created or written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists():
        if path.is_dir():
            raise StoreError(f"{path}: is a folder; give a file path")
        if not os.access(path, os.W_OK):
            raise StoreError(f"{path}: not writable")
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create folder {parent} ({exc.strerror})") from exc
    if not os.access(parent, os.W_OK):
        raise StoreError(f"{path}: folder {parent} is not writable")
