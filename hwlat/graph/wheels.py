"""Real model files that no one here wrote, taken out of PyPI wheels: the graph importers' fixtures.

``wheel_models("mediapipe", "0.10.21", under="mediapipe/modules/")`` downloads the wheel with pip
(``pip download --no-deps --only-binary=:all:``: nothing is installed, no dependency is resolved),
extracts only its model files with :mod:`zipfile` into ``cache_dir("wheels")/PACKAGE-VERSION/``
and returns their paths. Each file goes through :func:`hwlat.cache.cached_file` (written whole
under a temporary name, then renamed; a size + SHA-256 record next to it), and is checked
against the wheel's own ``RECORD`` hashes. A list of the wheel's members is kept next to them
(``hwlat-wheel.json``), so a second call checks the files against their records and touches
no network. The wheel itself is downloaded to a temporary folder and removed after extraction.

Only the standard library is imported here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from hwlat import cache

__all__ = ["FIXTURES", "DownloadError", "WheelError", "fixture_models", "wheel_models"]

# name -> (PyPI package, version, folder inside the wheel or None for the whole wheel). Both Apache-2.0.
FIXTURES: dict[str, tuple[str, str, str | None]] = {
    "mediapipe": ("mediapipe", "0.10.21", "mediapipe/modules/"),
    "rapidocr": ("rapidocr-onnxruntime", "1.4.4", None),
}

MODEL_SUFFIXES = (".tflite", ".onnx")
MANIFEST = "hwlat-wheel.json"
MANIFEST_FORMAT = "hwlat.wheels/1"
PIP_TIMEOUT_S = 900.0

_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")  # PEP 508 project names
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")


class WheelError(ValueError):
    """A wheel's model files cannot be had: bad name, no such files, a corrupt wheel."""


class DownloadError(WheelError):
    """pip could not download the wheel (no network, no such package or version)."""


def _canonical(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def _check_args(package: str, version: str) -> None:
    if not isinstance(package, str) or not _NAME_RE.match(package):
        raise WheelError(f"invalid package name {package!r}: give a PyPI project name such as 'mediapipe'")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise WheelError(f"invalid version {version!r} for {package}: give an exact version such as '0.10.21'")


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in name and name == p.as_posix()


def _record_hashes(zf: zipfile.ZipFile) -> dict[str, str]:
    """``member -> sha256 hex`` from the wheel's ``*.dist-info/RECORD`` (empty when it has none)."""
    records = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD")]
    if not records:
        return {}
    out = {}
    for line in zf.read(records[0]).decode("utf-8", "replace").splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            digest = parts[1][len("sha256=") :]
            with contextlib.suppress(ValueError):
                out[parts[0]] = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return out


def _pip_download(package: str, version: str, dest: Path) -> Path:
    """Download the one wheel of ``package==version`` into ``dest`` with pip; its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        f"{package}=={version}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DownloadError(
            f"pip download {package}=={version} did not finish in {PIP_TIMEOUT_S:.0f} s: check network access"
        ) from exc
    except OSError as exc:
        raise DownloadError(f"could not run pip ({sys.executable} -m pip): {exc}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DownloadError(
            f"pip could not download {package}=={version}: {last} "
            "(check the name and version on PyPI, and network access or PIP_INDEX_URL)"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        found = ", ".join(p.name for p in dest.iterdir()) or "nothing"
        raise DownloadError(f"pip download {package}=={version} left {found} instead of one wheel in {dest}")
    return wheels[0]


class _Wheel:
    """The wheel of one package version, downloaded on first use into a temporary folder."""

    def __init__(self, package: str, version: str, tmp_root: Path) -> None:
        self.package, self.version, self._tmp_root = package, version, tmp_root
        self._dir: Path | None = None
        self._zip: zipfile.ZipFile | None = None
        self.name = ""

    def open(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._dir = Path(tempfile.mkdtemp(prefix=".download-", dir=self._tmp_root))
            path = _pip_download(self.package, self.version, self._dir)
            self.name = path.name
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise WheelError(f"the downloaded wheel {path.name} is corrupt ({exc}): download it again") from exc
        return self._zip

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def members(self) -> dict[str, dict[str, object]]:
        zf = self.open()
        hashes = _record_hashes(zf)
        out: dict[str, dict[str, object]] = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            out[info.filename] = {"size": info.file_size, "sha256": hashes.get(info.filename)}
        return out

    def extract(self, member: str, expected: dict[str, object], tmp: Path) -> None:
        zf = self.open()
        h = hashlib.sha256()
        try:
            with zf.open(member) as src, open(tmp, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    h.update(chunk)
                    dst.write(chunk)
        except KeyError as exc:
            raise WheelError(f"{self.name} has no member {member}: clear the cache (hwlat cache clear)") from exc
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a bad CRC-32, a truncated member
            raise WheelError(
                f"the downloaded wheel {self.name} is corrupt ({member}: {exc}): download it again"
            ) from exc
        sha = expected.get("sha256")
        if sha and h.hexdigest() != sha:
            raise WheelError(f"{member} in {self.name} does not match the wheel's RECORD SHA-256: download it again")
        if tmp.stat().st_size != expected.get("size"):
            raise WheelError(f"{member} in {self.name} is {tmp.stat().st_size} bytes, expected {expected.get('size')}")


@contextlib.contextmanager
def _wheel(package: str, version: str, root: Path) -> Iterator[_Wheel]:
    w = _Wheel(package, version, root)
    try:
        yield w
    finally:
        w.close()


def _manifest(folder: Path, wheel: _Wheel) -> dict:
    def build(tmp: Path) -> None:
        members = wheel.members()
        bad = [m for m in members if not _safe_member(m)]
        if bad:
            raise WheelError(f"{wheel.name} has members outside its folder ({bad[0]!r}): refusing to extract it")
        record = {
            "format": MANIFEST_FORMAT,
            "package": wheel.package,
            "version": wheel.version,
            "wheel": wheel.name,
            "members": members,
        }
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))

    path = cache.cached_file(folder / MANIFEST, build, what=f"member list of {wheel.package}=={wheel.version}")
    try:
        record = json.loads(path.read_text())
        if record.get("format") != MANIFEST_FORMAT or not isinstance(record.get("members"), dict):
            raise ValueError(f"not a {MANIFEST_FORMAT} record")
    except (OSError, ValueError) as exc:
        raise WheelError(f"{path} is unreadable ({exc}): remove {folder} and retry") from exc
    return record


def wheel_models(
    package: str, version: str, suffixes: tuple[str, ...] = MODEL_SUFFIXES, under: str | None = None
) -> list[Path]:
    """The model files (names ending in one of ``suffixes``, optionally only below the folder
    ``under`` inside the wheel) of the PyPI wheel ``package==version``, extracted into the cache;
    sorted paths. The wheel is never installed. Raises :class:`DownloadError` when pip fails and
    :class:`WheelError` when the wheel is corrupt or holds no such file.
    """
    _check_args(package, version)
    suffixes = (suffixes,) if isinstance(suffixes, str) else tuple(suffixes)
    if not suffixes or not all(isinstance(s, str) and s for s in suffixes):
        raise WheelError(f"invalid suffixes {suffixes!r}: give file endings such as ('.tflite', '.onnx')")
    prefix = "" if not under else under.strip("/") + "/"
    root = cache.cache_dir("wheels")
    folder = root / f"{_canonical(package)}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    cache.touch(folder)  # the folder is one cache entry: most recently used now
    with _wheel(package, version, root) as wheel:
        record = _manifest(folder, wheel)
        members = record["members"]
        names = sorted(m for m in members if m.startswith(prefix) and m.endswith(suffixes) and _safe_member(m))
        if not names:
            where = f" under {prefix}" if prefix else ""
            raise WheelError(
                f"{record.get('wheel') or package + '==' + version} has no {'/'.join(suffixes)} files{where}"
            )
        paths = []
        for name in names:
            expected = members[name]

            def build(tmp: Path, name: str = name, expected: dict = expected) -> None:
                wheel.extract(name, expected, tmp)

            (folder / name).parent.mkdir(parents=True, exist_ok=True)  # cached_file locks inside it first
            paths.append(cache.cached_file(folder / name, build, what=f"{name} from {package}=={version}"))
    return paths


def fixture_models(name: str) -> list[Path]:
    """The model files of one fixture in :data:`FIXTURES` ('mediapipe': 14 .tflite, 'rapidocr': 3 .onnx)."""
    if name not in FIXTURES:
        raise WheelError(f"unknown fixture {name!r}: choose one of {', '.join(sorted(FIXTURES))}")
    package, version, under = FIXTURES[name]
    return wheel_models(package, version, under=under)
