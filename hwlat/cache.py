"""The converted-model cache: ``$HWLAT_CACHE`` (default ``~/.cache/hwlat``), one folder per format.

Backends convert an op once (ONNX export, LiteRT conversion, ...) and keep the file here. Every
file is written whole or not at all (a temporary name in the same folder, then ``os.replace``),
with a small record next to it, ``NAME.meta.json``, holding its size and SHA-256. A file is
checked against its record before it is used; one that does not match (truncated, flipped bytes,
no record) is rebuilt, with a warning when it had a record. The cache is kept under
``$HWLAT_CACHE_MAX_GB`` (default 5 GB): past it, the least recently used entries are removed.
``hwlat cache info`` / ``hwlat cache clear`` show and empty it.

Only the standard library is imported here: ``hwlat --help`` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "CacheInfo",
    "Entry",
    "cache_dir",
    "cache_root",
    "cached_file",
    "clear",
    "entries",
    "evict",
    "file_sha256",
    "format_size",
    "info",
    "max_bytes",
    "touch",
    "verify",
]

DEFAULT_MAX_GB = 5.0
META_SUFFIX = ".meta.json"
META_FORMAT = "hwlat.cache/1"
# The folders hwlat writes (cache_dir adds any other it is asked for); `clear` empties only these.
SUBDIRS = ("onnx", "tflite", "ort-trt", "tensorrt", "wheels")
_LOCKS = ".locks"
_N_LOCKS = 64
_STALE_TMP_S = 3600.0  # temporary files older than this are leftovers of a killed conversion

_used_subdirs: set[str] = set()
_verified: dict[str, tuple[int, int, int]] = {}  # path -> (inode, size, mtime_ns) checked in this process
_tally: dict[str, float] = {}  # root -> bytes estimated since the last full scan


# ------------------------------------------------------------------ where and how big
def cache_root() -> Path:
    """The cache folder: ``$HWLAT_CACHE`` or ``~/.cache/hwlat`` (not created)."""
    return Path(os.environ.get("HWLAT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hwlat"))


def cache_dir(sub: str) -> Path:
    """The cache folder of one format (created)."""
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise ValueError(f"HWLAT_CACHE={str(root)!r} is not a folder: point HWLAT_CACHE at a folder (or unset it)")
    path = root / sub
    path.mkdir(parents=True, exist_ok=True)
    _used_subdirs.add(sub)
    return path


def max_bytes() -> float:
    """The size limit in bytes: ``$HWLAT_CACHE_MAX_GB`` (default 5; ``inf`` for none)."""
    raw = os.environ.get("HWLAT_CACHE_MAX_GB", "").strip()
    if not raw:
        return DEFAULT_MAX_GB * 1e9
    try:
        gb = float(raw)
    except ValueError:
        gb = math.nan
    if not gb > 0:  # also NaN
        raise ValueError(f"Invalid HWLAT_CACHE_MAX_GB={raw!r}: must be a number of GB > 0, or inf for no limit")
    return gb * 1e9


# ------------------------------------------------------------------ records
def _meta(path: Path) -> Path:
    return path.with_name(path.name + META_SUFFIX)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _check(path: Path) -> tuple[str | None, bool]:
    """``(None, _)`` when ``path`` matches its record, else ``(reason, had_record)``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing", False
    try:
        record = json.loads(_meta(path).read_text())
        size, sha = int(record["size"]), str(record["sha256"])
    except FileNotFoundError:
        return "it has no size/SHA-256 record (written by an older hwlat, or its writer was killed)", False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its record {_meta(path).name} is unreadable ({exc})", True
    if st.st_size != size:
        return f"it is {st.st_size} bytes, its record says {size}", True
    if file_sha256(path) != sha:
        return "its SHA-256 differs from its record's", True
    return None, True


def verify(path: str | Path) -> str | None:
    """Why the cached file ``path`` cannot be used (None: it matches its recorded size and SHA-256)."""
    return _check(Path(path))[0]


def touch(path: str | Path) -> None:
    """Mark an entry as just used (its record, or itself: the least recently used go first)."""
    path = Path(path)
    target = _meta(path) if _meta(path).exists() else path
    with contextlib.suppress(OSError):
        os.utime(target)


@contextlib.contextmanager
def _locked(path: Path, shared: bool) -> Iterator[None]:
    """An advisory lock on ``path``'s entry (one of a few lock files per folder), where fcntl exists."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the rename is still atomic
        yield
        return
    folder = path.parent / _LOCKS
    folder.mkdir(exist_ok=True)
    n = zlib.crc32(path.name.encode()) % _N_LOCKS
    fd = os.open(folder / f"{n:02d}", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remember(path: Path) -> None:
    with contextlib.suppress(OSError):
        st = path.stat()
        _verified[str(path)] = (st.st_ino, st.st_size, st.st_mtime_ns)


def _known_good(path: Path) -> bool:
    """Checked in this process already, and unchanged since (same inode, size and mtime)."""
    seen = _verified.get(str(path))
    if seen is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return seen == (st.st_ino, st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------ the one way in
def cached_file(path: str | Path, build: Callable[[Path], object], *, what: str = "") -> Path:
    """``path``, built first by ``build(tmp)`` when it is missing or does not match its record.

    ``build`` writes the file to the temporary path it is given (same folder and suffix); the file
    is then recorded (size, SHA-256) and renamed into place, so a killed conversion never leaves
    half a file under the entry's name. A bad entry is rebuilt with a warning naming it and why.
    """
    path = Path(path)
    if _known_good(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)  # the lock file lives beside the entry
    with _locked(path, shared=True):
        reason, had_record = _check(path)
    if reason is None:
        _remember(path)
        touch(path)
        return path
    if reason != "missing":
        label = f" ({what})" if what else ""
        (log.warning if had_record else log.info)("cache entry %s%s is bad: %s; rebuilding it", path, label, reason)
    limit = max_bytes()  # a bad HWLAT_CACHE_MAX_GB is said before converting anything
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        build(tmp)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"converting {what or path.name} wrote no file (expected {tmp})")
        size, sha = tmp.stat().st_size, file_sha256(tmp)
        record = {"format": META_FORMAT, "size": size, "sha256": sha, "what": what, "created": time.time()}
        with _locked(path, shared=False):
            if _check(path)[0] is None:  # another process finished the same entry meanwhile: keep its file
                tmp.unlink()
            else:
                _write_atomic(_meta(path), json.dumps(record).encode())
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _remember(path)
    _grown(path, size, limit)
    return path


def _grown(path: Path, size: int, limit: float) -> None:
    """Count a new entry and evict when the cache may be over its limit (a full scan only then)."""
    root = str(cache_root())
    if root not in _tally:
        _tally[root] = float(sum(e.size for e in entries()))
    else:
        _tally[root] += size
    if _tally[root] > limit:
        evict(limit, keep=(path,))
        _tally[root] = float(sum(e.size for e in entries()))


# ------------------------------------------------------------------ listing, eviction, clearing
@dataclass(frozen=True)
class Entry:
    """One cached model (a file with its record, or a folder such as a TensorRT engine cache)."""

    path: Path
    size: int  # bytes, its record included
    last_used: float  # seconds since the epoch
    verified: bool  # has a size/SHA-256 record


def _subdirs(root: Path) -> list[Path]:
    names = set(SUBDIRS) | _used_subdirs
    return [root / n for n in sorted(names) if (root / n).is_dir()]


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _leftovers(folder: Path, older_than: float) -> list[Path]:
    """Temporary files of conversions that were killed (older than ``older_than`` seconds)."""
    now = time.time()
    out = []
    for p in folder.iterdir():
        if p.name.startswith(".") and ".tmp" in p.name and p.is_file():
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > older_than:
                    out.append(p)
    return out


def entries(root: str | Path | None = None) -> list[Entry]:
    """Every entry in the cache, least recently used first."""
    root = Path(root) if root is not None else cache_root()
    found = []
    for folder in _subdirs(root):
        for p in folder.iterdir():
            name = p.name
            if name.startswith(".") or name.endswith(META_SUFFIX):
                continue
            meta = _meta(p)
            try:
                if p.is_dir():
                    size, used, ok = _tree_size(p), p.stat().st_mtime, False
                else:
                    size, used, ok = p.stat().st_size, p.stat().st_mtime, False
                    if meta.exists():
                        size, used, ok = size + meta.stat().st_size, meta.stat().st_mtime, True
            except OSError:  # removed meanwhile
                continue
            found.append(Entry(p, size, used, ok))
        for tmp in _leftovers(folder, 0.0):  # counted, as they take room, but never "used"
            with contextlib.suppress(OSError):
                found.append(Entry(tmp, tmp.stat().st_size, tmp.stat().st_mtime, False))
    return sorted(found, key=lambda e: (e.last_used, str(e.path)))


def _remove(entry: Entry) -> None:
    p = entry.path
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):  # gone already, or open elsewhere (Windows)
            p.unlink()
    with contextlib.suppress(OSError):
        _meta(p).unlink()
    _verified.pop(str(p), None)


def evict(limit: float | None = None, keep: tuple[Path, ...] = ()) -> list[Entry]:
    """Remove the least recently used entries until the cache is within ``limit`` bytes
    (default :func:`max_bytes`); leftovers of killed conversions go first. Returns what was removed."""
    limit = max_bytes() if limit is None else limit
    root = cache_root()
    removed = []
    for folder in _subdirs(root):
        for tmp in _leftovers(folder, _STALE_TMP_S):
            with contextlib.suppress(OSError):
                tmp.unlink()
    current = [e for e in entries(root) if not (e.path.name.startswith(".") and ".tmp" in e.path.name)]
    total = sum(e.size for e in current)
    kept = {str(Path(k)) for k in keep}
    for e in current:
        if total <= limit:
            break
        if str(e.path) in kept:
            continue
        _remove(e)
        removed.append(e)
        total -= e.size
    if removed:
        log.info("cache %s over %.1f GB: removed %d least recently used entries", root, limit / 1e9, len(removed))
    return removed


@dataclass(frozen=True)
class CacheInfo:
    path: Path
    entries: int
    verified: int  # entries with a size/SHA-256 record
    total_bytes: int
    limit_bytes: float

    def lines(self) -> list[str]:
        limit = "none" if math.isinf(self.limit_bytes) else format_size(self.limit_bytes)
        return [
            f"path:     {self.path}",
            f"entries:  {self.entries} ({self.verified} with a size/SHA-256 record)",
            f"size:     {format_size(self.total_bytes)}",
            f"limit:    {limit} (HWLAT_CACHE_MAX_GB; least recently used entries are removed past it)",
        ]


def format_size(n: float) -> str:
    """Bytes as B/KB/MB/GB (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def info() -> CacheInfo:
    """Where the cache is, how many entries it holds, their size and the limit."""
    found = entries()
    limit = max_bytes()
    return CacheInfo(cache_root(), len(found), sum(e.verified for e in found), sum(e.size for e in found), limit)


def clear() -> tuple[int, int]:
    """Remove every entry (only inside hwlat's own folders of the cache); returns (entries, bytes)."""
    found = entries()
    for e in found:
        _remove(e)
    _verified.clear()
    _tally.pop(str(cache_root()), None)
    return len(found), sum(e.size for e in found)
