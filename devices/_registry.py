"""The backend registry: names → Backend classes."""

from __future__ import annotations

import fnmatch
import warnings
from typing import TypeVar

from hwlat.devices._base import Backend, DeviceSpec

_BACKENDS: dict[str, type[Backend]] = {}
B = TypeVar("B", bound=type[Backend])


def register_backend(cls: B) -> B:
    """Class decorator adding a backend under ``cls.name``."""
    if cls.name in _BACKENDS and _BACKENDS[cls.name] is not cls:
        warnings.warn(f"backend {cls.name!r} registered again; the new class replaces the old one", stacklevel=2)
    _BACKENDS[cls.name] = cls
    return cls


def list_backends(pattern: str = "*") -> list[str]:
    return sorted(n for n in _BACKENDS if fnmatch.fnmatch(n, pattern))


def get_backend(name: str) -> type[Backend]:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"Unknown device {name!r}; valid devices: {', '.join(list_backends())}") from None


def create_backend(device: str | DeviceSpec, *, check: bool = True, **options) -> Backend:
    """Backend instance for ``device`` (a name, a key, or a DeviceSpec).

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` naming the
    missing library or hardware (and how to install it) when unavailable.
    """
    spec = device if isinstance(device, DeviceSpec) else DeviceSpec.parse(device, **options)
    cls = get_backend(spec.backend)
    if check:
        reason = cls.check()
        if reason is not None:
            raise RuntimeError(f"device {spec.backend!r} is unavailable here: {reason}")
    return cls(spec)
