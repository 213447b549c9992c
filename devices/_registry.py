"""The backend registry: names → Backend classes, kept in one :class:`~hwlat.registry.Registry`."""

from __future__ import annotations

from typing import TypeVar

from hwlat.devices._base import Backend, DeviceSpec
from hwlat.registry import Registry

__all__ = ["BACKENDS", "create_backend", "get_backend", "list_backends", "register_backend"]

# Messages say "device": that is what the user typed (``--device cuda``).
BACKENDS: Registry[type[Backend]] = Registry("device")
B = TypeVar("B", bound=type[Backend])


def register_backend(cls: B) -> B:
    """Class decorator adding a backend under ``cls.name`` (registering a name again warns)."""
    BACKENDS.register(cls.name, cls)
    return cls


def list_backends(pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
    """Registered backend names matching the wildcard ``pattern`` (or any of several), sorted."""
    return BACKENDS.names(pattern)


def get_backend(name: str) -> type[Backend]:
    """The Backend class named ``name``; ``ValueError`` listing the valid devices otherwise."""
    return BACKENDS.get(name)


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
