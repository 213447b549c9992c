"""An emulated Android phone behind a fake adb server (for tests and demos; no phone needed).

:class:`FakeAdbServer` listens on a loopback port and speaks the adb *host*
protocol as the real adb server does towards its clients (``adbutils`` or the
``adb`` command line): ``host:version``, ``host:devices[-l]``, ``host:features``,
``host-serial:SERIAL:features|get-state``, ``host:tport:serial:SERIAL`` (and the
older ``host:transport:SERIAL``), then one service per connection: ``shell:``
(v1, raw output until close), ``shell,v2,...:`` (packets: 1 stdout, 2 stderr,
3 exit code) and ``sync:`` (STAT, SEND/DATA/DONE, RECV, LIST, QUIT).

Its shell (:class:`FakePhone`) understands what the adb backend sends and what a
person types to look around: ``getprop``, ``cat``/``grep -sH .`` over a
virtual sysfs (CPU frequencies and governor, thermal zones), ``ls``, ``chmod``,
``rm``, ``mkdir``, ``rmdir``, ``sha256sum``, ``echo``, ``kill``, ``sh -c``,
``exec``, ``taskset MASK CMD``, ``;``/``&&``/``||``, ``> FILE``. Running a pushed
ELF file of the phone's ABI runs an emulated ``benchmark_model``: it loads the
pushed ``.tflite`` into the LiteRT interpreter *on this host*, times each
``invoke`` for the requested warm-up and runs, and prints the statistics in
the exact format of the real tool. A measurement through it is therefore a
real measurement of this host's CPU, taken through the whole phone path.

Failure injection (:class:`Faults`): a run that drops the connection midway
(the phone then stays offline for a while), a run that hangs, garbage output,
and a phone that starts hot and cools down (throttled frequencies meanwhile).
A missing binary and a binary of the wrong ABI fail as on a phone.

Run ``python -m hwlat.devices.testing.fake_adb --port 5037`` for a standalone server.

The pieces: :mod:`~hwlat.devices.testing.server` (the protocol),
:mod:`~hwlat.devices.testing.phone` (the phone, its files and shell),
:mod:`~hwlat.devices.testing.benchmark_model` (the emulated tool),
:mod:`~hwlat.devices.testing.faults` (failure injection).
"""

from __future__ import annotations

import argparse
import time

from hwlat.devices.adb.binary import ELF_MACHINE
from hwlat.devices.testing.faults import Faults
from hwlat.devices.testing.phone import FakePhone, fake_benchmark_binary
from hwlat.devices.testing.server import ADB_SERVER_VERSION, FakeAdbServer

__all__ = ["FakeAdbServer", "FakePhone", "Faults", "fake_benchmark_binary", "ADB_SERVER_VERSION"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hwlat.devices.testing.fake_adb", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=5037, help="port to listen on (default 5037; 0 = a free one)")
    p.add_argument("--serial", default="emulator-5554")
    p.add_argument("--abi", default="arm64-v8a", choices=sorted(ELF_MACHINE))
    p.add_argument("--governor", default="schedutil")
    p.add_argument("--hot", type=float, default=0.0, help="start hot: seconds to cool down from 75 °C")
    p.add_argument("--write-binary", metavar="FILE", help="also write an emulated benchmark_model binary to FILE")
    args = p.parse_args(argv)
    phone = FakePhone(serial=args.serial, abi=args.abi, governor=args.governor)
    if args.hot > 0:
        phone.heat(75.0, args.hot)
    if args.write_binary:
        with open(args.write_binary, "wb") as fh:
            fh.write(fake_benchmark_binary(args.abi))
    server = FakeAdbServer([phone], port=args.port).start()
    print(f"fake adb server on 127.0.0.1:{server.port} with {args.serial} ({args.abi}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
