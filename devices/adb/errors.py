"""The adb backend's errors: one a user sees (the cause and the fix), one the transport raises."""

from __future__ import annotations

__all__ = ["AdbDeviceError", "TransportError"]


class AdbDeviceError(RuntimeError):
    """A phone-side failure, with its cause and the fix in one line."""


class TransportError(Exception):
    """The adb connection failed (``kind``: timeout, disconnect, offline)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
