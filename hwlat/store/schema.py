"""The file: schema, application id, creating a table atomically, where it may be written."""

from __future__ import annotations

import errno
import math
import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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
    """The file is not a usable hwlat table (foreign, corrupt, newer, unwritable, locked, full)."""


DEFAULT_BUSY_TIMEOUT_S = 30.0
_TMP_MARK = ".hwlat-new-"  # .NAME.hwlat-new-PID-RANDOM: a table being created, renamed onto NAME when complete
# The measurements table's columns, in the order rows are written.
_MEAS_COLUMNS = (
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
_EXPECTED_TABLES = {
    "devices": {"device_key", "info_json", "info_id"},
    "networks": {"net_key", "definition_json"},
    "measurements": set(_MEAS_COLUMNS),
}


def busy_timeout_s() -> float:
    """How long a write waits for another process's lock: ``HWLAT_BUSY_TIMEOUT_S`` or 30 s."""
    text = os.environ.get("HWLAT_BUSY_TIMEOUT_S", "")
    if not text:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid HWLAT_BUSY_TIMEOUT_S={text!r}: must be a number of seconds >= 0")
    return value


# ------------------------------------------------------------- creating a file
def _write_schema(conn: sqlite3.Connection, header: bool = False) -> None:
    """The tables (and, for a new file, application_id and schema version), in one transaction."""
    conn.execute("BEGIN")
    if header:
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)
    conn.execute("COMMIT")


def _link(src: Path, dst: Path) -> None:
    """``src`` appears as ``dst`` unless ``dst`` exists (FileExistsError); renamed where links are unsupported."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
            raise
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
        os.replace(src, dst)


def _fsync(path: Path) -> None:
    """Flush a file (or folder entry) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _clean_leftovers(path: Path) -> None:
    """Remove temporary files of tables being created next to ``path`` by processes that no longer run."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}{re.escape(_TMP_MARK)}(\d+)-[0-9a-f]+(-journal)?$")
    try:
        names = os.listdir(path.parent if str(path.parent) else ".")
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m and not _alive(int(m[1])):
            (path.parent / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


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
