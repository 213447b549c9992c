"""Backends: one module per way of running ops, and the registry that names them.

Backend modules import their heavy libraries lazily, so importing this package
is cheap and ``hwlat devices`` can say why a backend is unavailable.
"""

from __future__ import annotations

from hwlat.devices import adb, cuda, fake, litert, onnxruntime, tensorrt, torch_cpu  # noqa: F401  (imported to fill the registry)
from hwlat.devices._base import Backend, DeviceInfo, DeviceSpec, Item, Runnable
from hwlat.devices._registry import (
    BACKENDS,
    create_backend,
    get_backend,
    list_backends,
    register_backend,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "DeviceInfo",
    "DeviceSpec",
    "Item",
    "Runnable",
    "create_backend",
    "get_backend",
    "list_backends",
    "register_backend",
]
