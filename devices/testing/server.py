"""A fake adb server: the adb *host* protocol on a loopback port, in front of emulated phones."""

from __future__ import annotations

import io
import re
import socket
import socketserver
import stat as stat_mod
import struct
import threading
import time

from hwlat.devices.testing.faults import Drop
from hwlat.devices.testing.phone import FakePhone

__all__ = ["ADB_SERVER_VERSION", "FakeAdbServer"]

ADB_SERVER_VERSION = 41  # what the real CLI 1.0.41 expects; another value makes it restart the server


class FakeAdbServer:
    """A fake adb server on ``127.0.0.1:port`` (0: a free port) serving ``phones``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, phones: list[FakePhone] | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.phones = {p.serial: p for p in (phones if phones is not None else [FakePhone()])}
        self.host, self._port = host, port
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[str] = []  # every host request seen, for tests

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    def start(self) -> FakeAdbServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                _Session(owner, self.request).run()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-adb", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for p in self.phones.values():
            p.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeAdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Session:
    """One client connection: host requests, then at most one device service."""

    def __init__(self, server: FakeAdbServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.phone: FakePhone | None = None

    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def okay(self, payload: bytes | None = None) -> None:
        self.sock.sendall(b"OKAY" + (b"" if payload is None else b"%04x" % len(payload) + payload))

    def fail(self, message: str) -> None:
        data = message.encode()
        self.sock.sendall(b"FAIL" + b"%04x" % len(data) + data)

    def run(self) -> None:
        try:
            while True:
                try:
                    size = int(self.recv_exact(4), 16)
                except EOFError:
                    return
                request = self.recv_exact(size).decode()
                self.server.requests.append(request)
                if not self.dispatch(request):
                    return
        except Drop:
            self.sock.shutdown(socket.SHUT_RDWR)  # an abrupt end, like a pulled cable
            self.sock.close()
            return
        except (OSError, EOFError, ValueError):
            pass
        # An orderly end: closing with unread client bytes (e.g. the CLI's close-stdin packet)
        # would send a reset that can destroy the exit-status packet still in flight.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(2.0)
            while self.sock.recv(4096):
                pass
        except OSError:
            pass
        finally:
            self.sock.close()

    def lookup(self, serial: str | None) -> FakePhone | None:
        phones = [p for p in self.server.phones.values() if p.online]
        if serial is None:
            if len(phones) != 1:
                self.fail("no devices/emulators found" if not phones else "more than one device/emulator")
                return None
            return phones[0]
        phone = self.server.phones.get(serial)
        if phone is None or not phone.online:
            self.fail(f"device '{serial}' not found")
            return None
        return phone

    def dispatch(self, req: str) -> bool:
        """Handle one request; False ends the connection."""
        if self.phone is not None:  # transport chosen: this is the service
            return self.service(req)
        # The real server closes the connection after answering a host request
        # (the CLI waits for that); only a transport switch keeps it open.
        if req == "host:version":
            self.okay(b"%04x" % ADB_SERVER_VERSION)
            return False
        if req in ("host:devices", "host:devices-l"):
            lines = []
            for p in self.server.phones.values():
                if p.online:
                    extra = f" product:{p.props['ro.product.board']} model:{p.model.replace(' ', '_')} "
                    f"device:{p.props['ro.hardware']} transport_id:1"
                    lines.append(f"{p.serial}\tdevice" + (extra if req.endswith("-l") else ""))
            self.okay("".join(line + "\n" for line in lines).encode())
            return False
        if req == "host:features":
            self.okay(b"shell_v2,cmd")
            return False
        if req in ("host:kill", "host:kill-server"):
            self.okay()
            return False
        m = re.fullmatch(r"host-serial:(.+):(features|get-state|get-serialno)", req)
        if m:
            phone = self.lookup(m.group(1))
            if phone is not None:
                answer = {
                    "features": "shell_v2,cmd" if phone.shell_v2 else "cmd",
                    "get-state": "device",
                    "get-serialno": phone.serial,
                }[m.group(2)]
                self.okay(answer.encode())
            return False
        m = re.fullmatch(r"host:(tport:serial:|tport:any|transport:|transport-any)(.*)", req)
        if m:
            serial = m.group(2) if m.group(1) in ("tport:serial:", "transport:") else None
            phone = self.lookup(serial)
            if phone is None:
                return False
            self.phone = phone
            self.okay()
            if m.group(1).startswith("tport"):
                self.sock.sendall(struct.pack("<q", 1))
            return True
        self.fail(f"unknown host service '{req}'")
        return False

    # --------------------------------------------------------- services
    def service(self, req: str) -> bool:
        phone = self.phone
        if req.startswith("shell,v2") or (req.startswith("shell,") and ":" in req):
            if not phone.shell_v2:
                self.fail("unknown service (this phone has no shell_v2)")
                return False
            self.okay()
            command = req.split(":", 1)[1]

            def write(fd: int, data: bytes) -> None:
                self.sock.sendall(struct.pack("<BI", fd, len(data)) + data)

            status = phone.shell(command, write)
            self.sock.sendall(struct.pack("<BI", 3, 1) + bytes([status & 0xFF]))
            return False
        if req.startswith("shell:"):
            self.okay()
            phone.shell(req[len("shell:") :], lambda fd, data: self.sock.sendall(data))
            return False
        if req == "sync:":
            self.okay()
            self.sync()
            return False
        self.fail(f"unknown service '{req.split(':')[0]}'")
        return False

    def sync(self) -> None:
        phone = self.phone
        while True:
            try:
                head = self.recv_exact(8)
            except EOFError:
                return
            cmd, size = head[:4], struct.unpack("<I", head[4:])[0]
            if cmd == b"QUIT":
                return
            arg = self.recv_exact(size).decode()
            if cmd == b"STAT":
                data = phone.read(arg) if phone.mode(arg) and not stat_mod.S_ISDIR(phone.mode(arg)) else b""
                self.sock.sendall(
                    b"STAT"
                    + struct.pack("<III", phone.mode(arg), len(data or b""), int(time.time()) if phone.mode(arg) else 0)
                )
            elif cmd == b"SEND":
                path, _, mode_text = arg.rpartition(",")
                buf = io.BytesIO()
                while True:
                    chead = self.recv_exact(8)
                    ccmd, clen = chead[:4], struct.unpack("<I", chead[4:])[0]
                    if ccmd == b"DATA":
                        if clen > 64 * 1024:
                            self.fail_sync("DATA chunk larger than 64 KiB")
                            return
                        buf.write(self.recv_exact(clen))
                    elif ccmd == b"DONE":
                        break
                    else:
                        self.fail_sync(f"unexpected {ccmd!r} during SEND")
                        return
                mode = int(mode_text) & 0o777 if mode_text.isdigit() else 0o644
                phone.write(path, buf.getvalue(), mode)
                self.sock.sendall(b"OKAY" + struct.pack("<I", 0))
            elif cmd == b"RECV":
                data = phone.read(arg)
                if data is None:
                    self.fail_sync(f"remote object '{arg}' does not exist")
                    return
                for i in range(0, len(data), 64 * 1024):
                    chunk = data[i : i + 64 * 1024]
                    self.sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                self.sock.sendall(b"DONE" + struct.pack("<I", 0))
            elif cmd == b"LIST":
                prefix = arg.rstrip("/") + "/"
                names = sorted({p[len(prefix) :].split("/")[0] for p in phone._all_paths() if p.startswith(prefix)})
                for name in names:
                    full = prefix + name
                    data = phone.read(full) or b""
                    enc = name.encode()
                    self.sock.sendall(
                        b"DENT" + struct.pack("<IIII", phone.mode(full), len(data), int(time.time()), len(enc)) + enc
                    )
                self.sock.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            else:
                self.fail_sync(f"unknown sync request {cmd!r}")
                return

    def fail_sync(self, message: str) -> None:
        data = message.encode()
        self.sock.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)
