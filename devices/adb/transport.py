"""One phone behind one adb server: a client that never starts a server, shell with exit code, push, stat.

Every failure of the connection becomes :class:`~hwlat.devices.adb.errors.TransportError`
(retried by the backend); discovery (:func:`list_phones`) never raises.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwlat.devices.adb.errors import TransportError
from hwlat.devices.adb.settings import AdbSettings

__all__ = ["Phone", "client", "list_phones", "props", "server_up", "soc"]

_EXIT_MARK = "HWLAT_EXIT:"


def client(host: str, port: int, timeout: float):
    """An ``adbutils.AdbClient`` that never starts an adb server and always has a timeout.

    (adbutils runs ``adb start-server`` when it cannot connect; hwlat must not
    spawn servers, so a refused connection is an error here.)
    """
    import adbutils
    from adbutils._adb import AdbConnection

    class _Connection(AdbConnection):
        def _safe_connect(self):
            return self._create_socket()

    class _Client(adbutils.AdbClient):
        _version: int | None = None

        def make_connection(self, timeout: float | None = None) -> AdbConnection:
            conn = _Connection(self.host, self.port)
            conn.conn.settimeout(timeout or default_timeout)
            return conn

        def server_version(self) -> int:
            # adbutils asks before every transport; one server keeps one version.
            if self._version is None:
                self._version = super().server_version()
            return self._version

    default_timeout = timeout
    return _Client(host=host, port=port, socket_timeout=timeout)


def server_up(host: str, port: int, timeout: float = 0.5) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Phone:
    """One phone behind one adb server: shell with exit code, push, stat. Raises TransportError."""

    def __init__(self, serial: str, settings: AdbSettings) -> None:
        import adbutils

        self.serial, self.settings = serial, settings
        self.client = client(settings.adb_host, settings.adb_port, settings.timeout)
        self.device = adbutils.AdbDevice(self.client, serial=serial)
        self.shell_v2: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.adb_host}:{self.settings.adb_port}"

    def _guard(self, fn: Callable[[], Any]) -> Any:
        import adbutils

        try:
            return fn()
        except adbutils.AdbTimeout as exc:
            raise TransportError("timeout", f"no answer within {self.settings.timeout:g} s") from exc
        except TimeoutError as exc:
            raise TransportError("timeout", f"no answer within {self.settings.timeout:g} s") from exc
        except adbutils.AdbError as exc:
            text = str(exc)
            kind = "offline" if ("not found" in text or "offline" in text) else "disconnect"
            raise TransportError(kind, text or type(exc).__name__) from exc
        except (EOFError, OSError) as exc:
            raise TransportError("disconnect", f"connection lost ({type(exc).__name__}: {exc})") from exc

    def state(self) -> str | None:
        """The phone's state on the server ('device', 'offline', 'unauthorized'), None if absent."""
        for info in self._guard(lambda: self.client.list()):
            if info.serial == self.serial:
                return info.state
        return None

    def serials(self) -> list[str]:
        return [f"{i.serial} ({i.state})" for i in self._guard(lambda: self.client.list())]

    def shell(self, command: str, timeout: float | None = None) -> tuple[str, int]:
        """Run ``command``; return (stdout+stderr, exit status)."""
        timeout = timeout or self.settings.timeout
        if self.shell_v2 is None:
            features = self._guard(lambda: self.device.get_features())
            self.shell_v2 = "shell_v2" in features.split(",")
        if self.shell_v2:
            r = self._guard(lambda: self.device.shell2(command, timeout=timeout, v2=True))
            return r.output, r.returncode
        # v1 loses the exit status: append a marker that echoes it.
        raw = self._guard(lambda: self.device.shell(f"{command}; echo {_EXIT_MARK}$?", timeout=timeout, encoding=None))
        text = raw.decode("utf-8", errors="replace")
        m = re.search(re.escape(_EXIT_MARK) + r"(\d+)\s*$", text)
        if m is None:
            raise TransportError("disconnect", "the shell ended without its exit marker (connection dropped)")
        return text[: m.start()], int(m.group(1))

    def push(self, local: Path, remote: str) -> None:
        self._guard(lambda: self.device.sync.push(str(local), remote, mode=0o755, check=True))

    def size(self, remote: str) -> int | None:
        st = self._guard(lambda: self.device.sync.stat(remote))
        return st.size if st.mode else None


# ------------------------------------------------------------------ discovery
def props(phone: Phone) -> dict[str, str]:
    text, _ = phone.shell("getprop")
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", text, flags=re.MULTILINE))


def soc(props: dict[str, str]) -> str:
    """The SoC's name from getprop (manufacturer and model, else the board platform)."""
    name = " ".join(v for v in (props.get("ro.soc.manufacturer"), props.get("ro.soc.model")) if v)
    return name or props.get("ro.board.platform") or props.get("ro.hardware") or "?"


def list_phones(host: str | None = None, port: int | None = None, timeout: float = 1.0) -> list[dict[str, str]]:
    """Phones attached to the adb server: serial, state, model, soc, abi, android.

    Returns [] at once when adbutils is missing or no server listens (it never
    starts one). Defaults: ``$ANDROID_ADB_SERVER_HOST``/``PORT``, 127.0.0.1:5037.
    """
    if importlib.util.find_spec("adbutils") is None:
        return []
    settings = AdbSettings.from_options(
        {**({"adb_host": host} if host else {}), **({"adb_port": str(port)} if port else {}), "timeout": str(timeout)}
    )
    if not server_up(settings.adb_host, settings.adb_port, timeout=min(timeout, 0.5)):
        return []
    rows = []
    try:
        infos = Phone("?", settings)._guard(lambda: client(settings.adb_host, settings.adb_port, timeout).list())
    except TransportError:
        return []
    for info in infos:
        row = {"serial": info.serial, "state": info.state, "model": "", "soc": "", "abi": "", "android": ""}
        if info.state == "device":
            try:
                found = props(Phone(info.serial, settings))
                row.update(
                    model=found.get("ro.product.model", "?"),
                    soc=soc(found),
                    abi=found.get("ro.product.cpu.abi", "?"),
                    android=found.get("ro.build.version.release", "?"),
                )
            except TransportError as exc:
                row["state"] = f"device (no answer: {exc})"
        rows.append(row)
    return rows
