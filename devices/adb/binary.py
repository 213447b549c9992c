"""``benchmark_model`` binaries: which ABI an ELF file is built for, where to get one, its digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from hwlat.devices.adb.errors import AdbDeviceError

__all__ = ["BINARY_URL", "ELF_MACHINE", "abi_fix", "elf_abi", "file_abi", "resolve_binary", "sha256"]

BINARY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
)
_BINARY_NAME = {"arm64-v8a": "android_aarch64_benchmark_model", "armeabi-v7a": "android_arm_benchmark_model"}

ELF_MACHINE = {"arm64-v8a": (2, 183), "armeabi-v7a": (1, 40), "x86_64": (2, 62), "x86": (1, 3), "riscv64": (2, 243)}


def elf_abi(data: bytes) -> str | None:
    """The Android ABI an ELF header is built for (None: not an ELF file)."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return None
    cls, machine = data[4], int.from_bytes(data[18:20], "little")
    for abi, (c, m) in ELF_MACHINE.items():
        if (c, m) == (cls, machine):
            return abi
    return f"ELF class {cls} machine {machine}"


def file_abi(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return elf_abi(fh.read(64))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def abi_fix(abi: str) -> str:
    name = _BINARY_NAME.get(abi)
    return f"download {BINARY_URL}{name} " if name else f"build benchmark_model for {abi} "


def resolve_binary(
    given: str | None, *, remote_dir: str, serial: str, props: dict[str, str], on_phone: Callable[[str], bool]
) -> tuple[Path | None, str]:
    """Which benchmark_model to run: (local file to push or None, path on the phone).

    ``given`` (``--bench-binary``) is a file here, checked against the phone's ABIs
    (getprop ``props``), or a path on the phone; without it the usual places are
    tried with ``on_phone(path)``. The error names where to get a binary.
    """
    abi = props.get("ro.product.cpu.abi", "?")
    abilist = (props.get("ro.product.cpu.abilist") or abi).split(",")
    if given and Path(given).is_file():
        local = Path(given)
        found = file_abi(local)
        if found is None:
            raise AdbDeviceError(f"--bench-binary {given} is not an ELF executable; {abi_fix(abi)}and pass its path")
        if found not in abilist:
            raise AdbDeviceError(
                f"--bench-binary {given} is built for {found}, but {serial} runs "
                f"{', '.join(abilist)}; {abi_fix(abi)}and pass that instead"
            )
        return local, f"{remote_dir}/benchmark_model"
    candidates = [given] if given else [f"{remote_dir}/benchmark_model", "/data/local/tmp/benchmark_model"]
    for remote in candidates:
        if remote.startswith("/") and on_phone(remote):
            return None, remote
    where = (
        f"{given!r} is neither a file here nor on {serial}"
        if given
        else (f"no benchmark_model on {serial} (looked in {', '.join(candidates)})")
    )
    raise AdbDeviceError(f"{where}; {abi_fix(abi)}and pass it with --bench-binary FILE")
