"""LatencyStore: the table on disk, read and written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwlat.measure import Measurement
from hwlat.store.rows import BadRow, _read_export, _real, _row_to_measurement, check_measurement
from hwlat.store.schema import (
    _EXPECTED_TABLES,
    _MEAS_COLUMNS,
    _MEAS_FIELDS,
    _SCHEMA,
    _TMP_MARK,
    APPLICATION_ID,
    SCHEMA_VERSION,
    StoreError,
    _clean_leftovers,
    _fsync,
    _link,
    _write_schema,
    busy_timeout_s,
    check_writable,
)

if TYPE_CHECKING:
    import pandas as pd

    from hwlat.devices import DeviceInfo
    from hwlat.network import Network


class LatencyStore:
    """A latency table on disk.

    Parameters
    ----------
    path : str or Path
        SQLite file; created (with its folder) unless ``readonly``. A new file
        appears only with its first row, complete (built under a temporary
        name in the same folder, then renamed), so a killed run never leaves
        a half-made table behind.
    readonly : bool
        Open without ever writing (``frame``/``export`` of a shipped table).
    timeout_s : float, optional
        How long a write waits for another process holding the table
        (default ``HWLAT_BUSY_TIMEOUT_S`` or 30 s).

    Examples
    --------
    >>> store = LatencyStore(":memory:")
    >>> len(store)
    0
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False, timeout_s: float | None = None) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.timeout_s = busy_timeout_s() if timeout_s is None else float(timeout_s)
        self._pending = False  # a new file: created on the first write
        self._depth = 0  # nesting of transaction()
        self._conn = self._open()

    # ----------------------------------------------------------- opening
    def _open(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            conn = sqlite3.connect(":memory:", isolation_level=None)
            _write_schema(conn)
            return conn
        p = Path(self.path)
        if p.is_dir():
            raise StoreError(f"{p}: is a folder; give a file path")
        size = p.stat().st_size if p.exists() else None
        if size is None or size == 0:
            if self.readonly:
                what = "no such latency table" if size is None else "an empty file, not a latency table yet"
                raise StoreError(f"{self.path}: {what}")
            check_writable(p)
            self._pending = True
            conn = sqlite3.connect(":memory:", isolation_level=None)  # reads see an empty table until then
            _write_schema(conn)
            return conn
        return self._open_existing(p)

    def _open_existing(self, p: Path) -> sqlite3.Connection:
        missing = self._check_foreign(p)
        uri = f"file:{p.resolve()}?mode=ro" if self.readonly else None
        try:
            conn = sqlite3.connect(uri or self.path, uri=uri is not None, timeout=self.timeout_s, isolation_level=None)
            if not self.readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if missing:  # a table from before the networks table: add it
                    conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "opening") from exc
        return conn

    def _check_foreign(self, p: Path) -> bool:
        """Read without writing: refuse foreign, corrupt or newer files; True if only the networks table is missing."""
        try:
            with open(p, "rb") as fh:
                header = fh.read(100)
        except OSError as exc:
            raise StoreError(f"{p}: cannot read ({exc.strerror})") from exc
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise StoreError(f"{p}: not an SQLite file, so not an hwlat latency table; the file was left untouched")
        # Ask SQLite read-only: with WAL the header on disk can lag the log.
        try:
            ro = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True, timeout=self.timeout_s)
            try:
                app_id = ro.execute("PRAGMA application_id").fetchone()[0]
                version = ro.execute("PRAGMA user_version").fetchone()[0]
                names = [r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")]
                if app_id == APPLICATION_ID and version <= SCHEMA_VERSION:
                    columns = {
                        t: {r[1] for r in ro.execute(f"PRAGMA table_info({t})")} for t in _EXPECTED_TABLES if t in names
                    }
                    check = ro.execute("PRAGMA quick_check(1)").fetchone()[0]
            finally:
                ro.close()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "reading") from exc
        if app_id != APPLICATION_ID:
            hint = (
                " (it holds no tables: if an older hwlat was killed while creating it, delete it)" if not names else ""
            )
            raise StoreError(
                f"{p}: an SQLite file that is not an hwlat latency table (application_id={app_id:#x}){hint}; "
                "the file was left untouched — pass a new path with --db"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{p}: written by a newer hwlat (schema {version} > {SCHEMA_VERSION}); upgrade hwlat to read it"
            )
        if check != "ok":
            raise StoreError(
                f"{p}: corrupt (integrity check: {' '.join(str(check).split())}); the file was left untouched — "
                "restore it from a backup or a `table export`"
            )
        for table in ("devices", "measurements"):
            if table not in columns:
                raise StoreError(
                    f"{p}: has hwlat's application id but not its schema (no {table!r} table); "
                    "the file was left untouched — pass a new path with --db"
                )
        for table, cols in columns.items():
            if cols != _EXPECTED_TABLES[table]:
                diff = sorted(cols ^ _EXPECTED_TABLES[table])
                raise StoreError(
                    f"{p}: has hwlat's application id but not its schema (table {table!r} differs in "
                    f"{', '.join(diff)}); the file was left untouched — pass a new path with --db"
                )
        return "networks" not in columns

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """One line for an SQLite failure: what happened to which file, and what to do."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return StoreError(
                f"{self.path}: locked by another process for more than {self.timeout_s:g} s ({text}); "
                "close the other process or wait for it, then retry (HWLAT_BUSY_TIMEOUT_S sets the wait)"
            )
        if name.startswith("SQLITE_FULL") or "disk is full" in text:
            return StoreError(
                f"{self.path}: disk full while {doing} ({text}); nothing of this write was kept — "
                "free some space and retry"
            )
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
            return StoreError(
                f"{self.path}: corrupt ({text}); the file was left untouched — "
                "restore it from a backup or a `table export`"
            )
        if name.startswith("SQLITE_READONLY"):
            return StoreError(f"{self.path}: cannot write ({text}); check the file's permissions")
        return StoreError(f"{self.path}: not a readable hwlat latency table ({text}); the file was left untouched")

    @contextlib.contextmanager
    def _sql(self, doing: str = "reading") -> Iterator[None]:
        """Turn SQLite failures inside into one-line StoreErrors."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from exc
        except Exception as exc:  # pandas wraps read errors in its own DatabaseError
            cause = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else exc.__context__
            if type(exc).__name__ == "DatabaseError" and isinstance(cause, sqlite3.Error):
                raise self._error(cause, doing) from exc
            raise

    def _materialize(self) -> None:
        """Before the first write to a new file: create it complete, under a temporary name, then rename."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        if not self._pending:
            return
        p = Path(self.path)
        _clean_leftovers(p)
        tmp = p.with_name(f".{p.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA synchronous=FULL")
                _write_schema(conn, header=True)
            finally:
                conn.close()
            _fsync(tmp)
            try:
                if p.exists() and p.stat().st_size == 0:
                    os.replace(tmp, p)  # an empty placeholder (e.g. from mktemp) becomes the table
                else:
                    _link(tmp, p)  # never replaces a table another process just created
            except FileExistsError:
                pass  # another process created it first: use theirs
            _fsync(p.parent)
        except sqlite3.Error as exc:
            raise self._error(exc, "creating the table") from exc
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create ({exc.strerror or exc}); nothing was written") from exc
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                leftover.unlink(missing_ok=True)
        self._conn.close()
        self._pending = False
        self._conn = self._open_existing(p)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LatencyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LatencyStore]:
        """All writes inside are committed together, or not at all (nested uses join the outer one)."""
        self._materialize()
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        with self._sql("writing"):
            self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now (waits up to timeout_s)
        self._depth = 1
        try:
            yield self
            with self._sql("writing"):
                self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    # ----------------------------------------------------------- writing
    def add_device(self, info: DeviceInfo) -> str:
        """Record provenance; returns its id (content hash) for rows to point at."""
        text = json.dumps(info.to_dict(), sort_keys=True)
        info_id = hashlib.sha1(text.encode()).hexdigest()[:16]
        self._materialize()
        with self._sql("writing"):
            self._conn.execute(
                "INSERT OR IGNORE INTO devices (device_key, info_json, info_id) VALUES (?, ?, ?)",
                (info.device_key, text, info_id),
            )
        return info_id

    def add_network(self, net: Network) -> None:
        """Keep a measured network's definition, so predictors can be checked against it."""
        self._materialize()
        with self._sql("writing"):
            self._conn.execute(
                "INSERT OR IGNORE INTO networks (net_key, definition_json) VALUES (?, ?)",
                (net.key, json.dumps(net.to_dict())),
            )

    def set_fusion_rules(self, device_key: str, rules_json: str) -> None:
        """Store the fusion rules learned on ``device_key`` (``hwlat fusion-rules``), replacing older ones."""
        self._materialize()
        with self._sql("writing"):
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS fusion_rules "
                "(device_key TEXT NOT NULL PRIMARY KEY, rules_json TEXT NOT NULL)"
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO fusion_rules (device_key, rules_json) VALUES (?, ?)", (device_key, rules_json)
            )

    def fusion_rules(self, device_key: str | None = None) -> Any:
        """The fusion rules stored for ``device_key`` (JSON, or None); without a key, {device key: JSON}."""
        found: dict[str, str] = {}
        if self._conn is not None:
            with self._sql():
                names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "fusion_rules" in names:
                    found = dict(self._conn.execute("SELECT device_key, rules_json FROM fusion_rules").fetchall())
        return found if device_key is None else found.get(device_key)

    def networks(self) -> dict[str, Network]:
        """Definitions of the networks measured in this table, by key."""
        from hwlat.network import Network

        with self._sql():
            rows = self._conn.execute("SELECT net_key, definition_json FROM networks").fetchall()
        return {k: Network.from_dict(json.loads(d)) for k, d in rows}

    def add(self, m: Measurement, info_id: str, replace: bool = False) -> bool:
        """Insert one row (committed at once). Returns False if it was already there.

        The row is checked first (:func:`check_measurement`): a ValueError names a bad field.
        """
        from hwlat import __version__

        try:
            check_measurement(m)
        except BadRow as exc:
            raise ValueError(f"Invalid measurement of {m.op_key!r} on {m.device_key!r}: {exc}") from None
        self._materialize()
        # ON CONFLICT only skips duplicates; OR IGNORE would also hide NOT NULL violations.
        conflict = "" if replace else " ON CONFLICT (device_key, op_key, protocol) DO NOTHING"
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        cols = _MEAS_COLUMNS
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
        with self._sql("writing"):
            cur = self._conn.execute(
                f"{verb} INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}){conflict}", values
            )
        return cur.rowcount > 0

    # ----------------------------------------------------------- reading
    def has(self, device_key: str, op_key: str, protocol: str) -> bool:
        with self._sql():
            cur = self._conn.execute(
                "SELECT 1 FROM measurements WHERE device_key=? AND op_key=? AND protocol=?",
                (device_key, op_key, protocol),
            )
            return cur.fetchone() is not None

    def done_keys(self, device_key: str, protocol: str) -> set[str]:
        with self._sql():
            cur = self._conn.execute(
                "SELECT op_key FROM measurements WHERE device_key=? AND protocol=?", (device_key, protocol)
            )
            return {r[0] for r in cur}

    def __len__(self) -> int:
        return self.count()

    def count(self, device_key: str | None = None) -> int:
        """Rows in the table, or ``device_key``'s rows."""
        sql = "SELECT COUNT(*) FROM measurements" + (" WHERE device_key=?" if device_key else "")
        with self._sql():
            return self._conn.execute(sql, (device_key,) if device_key else ()).fetchone()[0]

    def measurements(self, device_key: str | None = None) -> Iterator[Measurement]:
        sql = "SELECT * FROM measurements" + (" WHERE device_key=?" if device_key else "") + " ORDER BY rowid"
        with self._sql():
            cur = self._conn.execute(sql, (device_key,) if device_key else ())
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        for row in rows:
            yield _row_to_measurement(dict(zip(names, row)))

    def devices(self) -> dict[str, dict[str, Any]]:
        """Provenance records by id."""
        with self._sql():
            rows = self._conn.execute("SELECT info_id, info_json FROM devices").fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def device_keys(self) -> list[str]:
        with self._sql():
            rows = self._conn.execute("SELECT DISTINCT device_key FROM measurements ORDER BY device_key").fetchall()
        return [r[0] for r in rows]

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
        with self._sql():
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
        with self._sql():
            row = self._conn.execute(
                "SELECT d.info_json FROM measurements m JOIN devices d ON d.info_id = m.info_id"
                " WHERE m.device_key=? ORDER BY m.rowid DESC LIMIT 1",
                (device_key,),
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def export(self, path: str | os.PathLike[str], device_key: str | None = None) -> Path:
        """Write every row (or only ``device_key``'s) with its provenance to ``.parquet`` or ``.csv``.

        The file is written under a temporary name and renamed when complete: a
        failure (disk full, ...) leaves no partial file and an older file as it was.
        """
        path = Path(path)
        if path.suffix not in (".parquet", ".csv"):
            raise ValueError(f"Invalid export path {str(path)!r}: the suffix must be .parquet or .csv")
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
        tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            if path.suffix == ".parquet":
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
            _fsync(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise StoreError(
                f"{path}: could not be written ({exc.strerror or exc}); nothing was written"
                + (", the old file is unchanged" if path.exists() else "")
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def import_file(self, path: str | os.PathLike[str], max_mb: float | None = None) -> int:
        """Add rows from a file written by :meth:`export`; returns how many were new.

        Every row is checked first, with the rules of a measurement (the op key
        parses to a valid op of the row's kind, statistics are finite numbers
        >= 0, counts whole numbers, ``stable`` 0/1/true/false, the JSON columns
        parse); one bad row and nothing is imported: the ValueError names the
        row and the column. All rows go in one transaction.
        """
        return self.import_files([path], max_mb=max_mb)

    def import_files(self, paths: Iterable[str | os.PathLike[str]], max_mb: float | None = None) -> int:
        """:meth:`import_file` for several files: all of them are checked, then written in one transaction."""
        from hwlat.network import Network

        checked = [_read_export(Path(p), max_mb) for p in paths]
        added = 0
        with self.transaction():
            for rows in checked:
                for m, info_id, text, net in rows:
                    with self._sql("writing"):
                        self._conn.execute(
                            "INSERT OR IGNORE INTO devices (device_key, info_json, info_id) VALUES (?, ?, ?)",
                            (m.device_key, text, info_id),
                        )
                    if net is not None:
                        self.add_network(Network.from_dict(net))
                    added += self.add(m, info_id)
        return added

    def add_many(self, rows: Iterable[tuple[Measurement, str]]) -> int:
        with self.transaction():
            return sum(self.add(m, i) for m, i in rows)
