"""Latency tables: one SQLite file (WAL) of measurements with their provenance.

Rows are keyed by (device key, op key, protocol). Each row is committed as
soon as its op is final, so a killed run loses at most the ops in flight, and
re-running the same command skips what is already there.

A new file appears only complete (application id, schema version and tables
written under a temporary name, then linked into place) with its first
write; an existing file is checked before use (header, application id,
schema, ``PRAGMA quick_check``) and refused, untouched, when foreign, corrupt
or newer. Every row, measured or imported, keeps the rules of
:func:`check_measurement`; imports are checked in full, then written in one
transaction. SQLite failures (locked, disk full, corrupt) are one-line
:class:`StoreError` s naming the file and what to do.
"""

from hwlat.store.rows import BadRow, check_input_size, check_measurement
from hwlat.store.schema import APPLICATION_ID, SCHEMA_VERSION, StoreError, busy_timeout_s, check_writable
from hwlat.store.table import LatencyStore

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "BadRow",
    "LatencyStore",
    "StoreError",
    "busy_timeout_s",
    "check_input_size",
    "check_measurement",
    "check_writable",
]
