"""``hwlat farm worker|status``: make a host part of a Ray device farm, and look at the farm.

hwlat farm worker --head --port 6379 [--devices D,...]           start the farm's head on this host
hwlat farm worker --address HEAD:PORT --devices D,... [--host N]  join it, advertising this host's devices
hwlat farm status --address HEAD:PORT                              hosts, devices, busy/idle, ops queued

``worker`` runs ``ray start`` with the resources that advertise the devices (see
:mod:`hwlat.farm.devices`); ``--dry-run`` prints the command instead. Measuring on the farm
is ``hwlat measure --farm HEAD:PORT --device D@HOST,...`` (see docs/farm.md).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess


def _devices(text: str | None) -> list[str]:
    return [d.strip() for d in (text or "").split(",") if d.strip()]


def cmd_worker(args: argparse.Namespace) -> int:
    from hwlat.farm.worker import check_devices_here, ray_start_command

    devices = _devices(args.devices)
    cmd = ray_start_command(
        address=args.address,
        head=args.head,
        port=args.port,
        devices=devices,
        host=args.host,
        num_cpus=args.num_cpus,
        block=args.block,
        extra=args.ray_args[1:] if args.ray_args[:1] == ["--"] else args.ray_args,
    )
    if not args.no_check:
        problems = check_devices_here(devices)
        if problems:
            raise ValueError(
                "cannot advertise devices that do not run here: " + "; ".join(problems) + " (--no-check to skip)"
            )
    print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(cmd)


def cmd_status(args: argparse.Namespace) -> int:
    from hwlat.farm import connect, import_ray
    from hwlat.farm.status import farm_status, format_status

    started = connect(args.address, timeout_s=args.timeout)
    try:
        for line in format_status(*farm_status()):
            print(line)
    finally:
        if started:
            import_ray().shutdown()
    return 0


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat farm worker`` and ``hwlat farm status``."""
    f = sub.add_parser("farm", help="a Ray device farm: start a host (worker) or list hosts and devices (status)")
    fsub = f.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = fsub.add_parser(
        "worker",
        help="start Ray on this host (`ray start`), advertising its devices",
        description="Runs `ray start --head` (--head) or `ray start --address` (--address) with one custom resource "
        "per device: adb:SERIAL for a phone, DEVICE@HOST for anything else, and hwlat-host:HOST.",
    )
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--head", action="store_true", help="start the farm's head here")
    where.add_argument("--address", metavar="HEAD:PORT", help="join the farm whose head is at HEAD:PORT")
    s.add_argument("--port", type=int, default=6379, help="the head's port (--head; default 6379)")
    s.add_argument(
        "--devices",
        metavar="D,...",
        default="",
        help="this host's devices, e.g. onnxruntime-cpu,cuda,adb:SERIAL (no threads/batch: those are per measurement)",
    )
    s.add_argument("--host", metavar="NAME", default=None, help="the name this host advertises (default: hostname)")
    s.add_argument("--num-cpus", type=int, default=None, help="CPUs Ray may use here for conversion tasks")
    s.add_argument("--block", action="store_true", help="stay in the foreground until stopped (ray start --block)")
    s.add_argument("--dry-run", action="store_true", help="print the ray start command, do not run it")
    s.add_argument("--no-check", action="store_true", help="advertise devices even if their backend is missing here")
    s.add_argument("ray_args", nargs=argparse.REMAINDER, help="after --: more `ray start` options")
    s.set_defaults(func=cmd_worker)
    s = fsub.add_parser("status", help="the farm's hosts and devices: busy or idle, ops queued on each")
    s.add_argument("--address", default="auto", metavar="HEAD:PORT", help="the head (default: auto, RAY_ADDRESS)")
    s.add_argument("--timeout", type=float, default=None, help="seconds to wait for the head (default 30)")
    s.set_defaults(func=cmd_status)


def main(argv=None) -> int:
    """``python -m hwlat.cli.farm ...``: the same as ``hwlat farm ...`` (before it is listed in hwlat.cli.main)."""
    import sys

    from hwlat.cli.main import EXIT_ERROR

    parser = argparse.ArgumentParser(prog="hwlat")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(["farm", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"hwlat farm {args.action}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
