"""Guarding the files hwlat writes: never replace a latency table, nor a file of another kind without ``force``.

Every command that writes an output file (``fit --out``, ``lut export --out``,
``evaluate --out``'s report) checks it here first. A latency table (any SQLite
database) is refused even with ``force``: a typo such as ``--out table.db``
must not destroy measurements. A file hwlat wrote before, of the same kind,
is replaced; anything else needs ``force`` (``--force``).

>>> check_output("never-written.skops", "predictor", is_ours=lambda p: False)
PosixPath('never-written.skops')
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["OutputFileError", "check_output", "is_sqlite"]

SQLITE_MAGIC = b"SQLite format 3\x00"


class OutputFileError(ValueError):
    """An output path that would replace a latency table, or another file without ``force``."""


def is_sqlite(path: str | Path) -> bool:
    """Whether ``path`` is an SQLite database (every hwlat latency table is one)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def check_output(
    path: str | Path, what: str, *, is_ours: Callable[[Path], bool], force: bool = False, flag: str = "--out"
) -> Path:
    """``path`` if hwlat may write its ``what`` there; :class:`OutputFileError` (one line) otherwise.

    Parameters
    ----------
    path
        The file to be written.
    what
        What is written, for the message (``"predictor"``).
    is_ours
        ``path -> bool``: the existing file is a ``what`` hwlat wrote (it may be replaced).
    force
        Replace an existing file that is not ours (never a latency table).
    flag
        The option that named the path, for the message.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputFileError(f"{flag} {path}: is a folder; give a file name for the {what}")
    if not path.exists():
        return path
    if is_sqlite(path):
        raise OutputFileError(
            f"{flag} {path}: is a latency table (SQLite); refusing to overwrite it, even with --force; "
            f"choose another file for the {what}"
        )
    if not force and not is_ours(path):
        raise OutputFileError(
            f"{flag} {path}: exists and is not a {what} written by hwlat; refusing to overwrite it "
            "(choose another file, or pass --force to replace it)"
        )
    return path
