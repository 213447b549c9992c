"""``hwlat compare``: the same networks on several devices, one table and one plot.

    hwlat compare --models proxyless-gpu,proxyless-cpu,proxyless-mobile,mobilenetv2,resnet18 \\
        --devices onnxruntime-cpu,litert-cpu,torch-cpu[,cuda/b8/mode=graph] \\
        [--predictors onnxruntime-cpu=ort.skops] [--db out/compare/compare.db] [--out out/compare]

Measurements go through a latency table (``--db``), so running the command
again measures only what is missing. A device unavailable here is compared
from the table when it holds every model for it (rows measured on another
machine, brought in with ``hwlat table import``); otherwise it stops the
command with one line naming the device and why, unless ``--skip-unavailable``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cmd_compare(args: argparse.Namespace) -> int:
    from hwlat.cli.main import EXIT_INTERRUPTED, CLIError, _protocol
    from hwlat.compare import StoredDevice, compare, devices_for_table, load_predictors, write_outputs
    from hwlat.outfile import check_output
    from hwlat.store import LatencyStore
    from hwlat.workflows import resolve_models

    networks = resolve_models(args.models, input_shape=args.input_shape, seed=args.seed)
    protocol = _protocol(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: is a file, not a folder; give a folder for compare.md, compare.csv, compare.png")
    for name in ("compare.md", "compare.csv", "compare.png"):  # replaced on a re-run; a table never is
        check_output(out / name, "comparison", is_ours=lambda _: True)
    db = Path(args.db) if args.db else out / "compare.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    farm_rows = 0
    if args.farm:  # measured on the farm first; compared from the table, with each row's own provenance
        backends, labels, farm_rows = _farm_devices(args, networks, db, protocol)
        skipped = []
    else:
        try:  # devices unavailable here may have their rows in an existing table (measured elsewhere)
            backends, labels, skipped = devices_for_table(
                args.devices, db, args.skip_unavailable, networks=networks, protocol=protocol
            )
        except RuntimeError as exc:
            raise CLIError(str(exc)) from exc
    for line in skipped:
        print(f"warning: skipping {line}", file=sys.stderr)
    for b, label in zip(backends, labels):
        if isinstance(b, StoredDevice) and not args.farm:
            print(
                f"note: {label} is unavailable here ({b.reason}); using its rows in {db} "
                f"(measured on {b.info.get('hardware', '?')}, host {b.info.get('hostname', '?')})",
                file=sys.stderr,
            )
    predictors = load_predictors(args.predictors, labels, [b.spec.key for b in backends])
    with LatencyStore(db) as store:
        try:
            result = compare(
                networks, backends, store, protocol, labels=labels, predictors=predictors, quiet=args.quiet
            )
        except KeyboardInterrupt:
            print(
                f"interrupted: finished rows are saved in {db}; run the same command again to resume", file=sys.stderr
            )
            return EXIT_INTERRUPTED
    md, csv, png = write_outputs(result, out, args.title)
    print(result.markdown(args.title), end="")
    new = sum(result.new_rows) + farm_rows
    print(
        f"\n{new} measured{' on the farm' if args.farm else ''}, {result.shape[0] * result.shape[1] - new} already "
        f"in {db} ({time.perf_counter() - t0:.1f} s); wrote {md}, {csv}, {png}"
    )
    return 0


def _farm_devices(args: argparse.Namespace, networks, db: Path, protocol):
    """Measure on the farm what ``db`` lacks; the devices as stored ones (their rows name their hosts)."""
    from hwlat.compare import StoredDevice
    from hwlat.devices import DeviceSpec
    from hwlat.farm import run_measure_farm
    from hwlat.store import LatencyStore

    got = run_measure_farm(args.farm, args.devices, networks, db, protocol, quiet=args.quiet)
    with LatencyStore(db, readonly=True) as store:
        backends = [StoredDevice(DeviceSpec.parse(k), store.device_info(k) or {}, "measured on the farm") for k in got]
    return backends, list(got), sum(new for new, _ in got.values())


def register(subparsers) -> None:
    s = subparsers.add_parser("compare", help="measure networks on several devices: one table and one plot")
    s.add_argument(
        "--models",
        required=True,
        help="comma-separated models: .onnx/.tflite/.pt2 files, pkg.module:factory, zoo names (hwlat.zoo), "
        "random:N, or .json network files",
    )
    s.add_argument(
        "--devices",
        required=True,
        help="comma-separated devices: backend names or keys with options, "
        "e.g. onnxruntime-cpu/cores=0,torch-cpu,cuda/b8/mode=graph (see `hwlat devices`)",
    )
    s.add_argument("--predictors", help="DEVICE=PATH[,...]: put a fitted predictor's latency next to the measured one")
    s.add_argument("--db", help="SQLite latency table that keeps the measurements (default OUT/compare.db; resumed)")
    s.add_argument("--out", default="out/compare", help="folder for compare.md, compare.csv, compare.png")
    s.add_argument("--title", help="heading of the markdown table")
    s.add_argument("--skip-unavailable", action="store_true", help="skip devices not usable here (with a warning)")
    s.add_argument("--protocol", choices=("adaptive", "fixed"), default="adaptive")
    s.add_argument("--rel-ci", type=float, help="stop when the median's 95%% CI is within this fraction (0.02)")
    s.add_argument("--budget", type=float, help="time budget per network in seconds (0.4)")
    s.add_argument("--seed", type=int, default=0, help="seed for random:N models (default 0)")
    s.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="fix the dynamic input dimensions of the model files and modules given, e.g. 1x3x224x224 "
        "(NAME:SHAPE,... for models with several inputs)",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from hwlat.farm import add_farm_argument

    add_farm_argument(s)
    s.set_defaults(func=cmd_compare)
