"""The ``hwlat`` command line. Errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("hwlat")

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
_MODEL_HELP = "whole models: .onnx/.tflite/.pt2 files, pkg.module:factory or zoo names, comma-separated"
# Modules adding subcommands: each has `register(subparsers)` and imports heavy libraries only when run.
_EXTENSIONS: tuple[str, ...] = (
    "hwlat.cli.compare",
    "hwlat.cli.search",
    "hwlat.cli.cache",
    "hwlat.cli.fusion",
    "hwlat.cli.adapt",
    "hwlat.cli.farm",
)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _count(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (argparse turns the ValueError into one line)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, not {text}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


# ------------------------------------------------------------------ devices
def cmd_devices(args: argparse.Namespace) -> int:
    from hwlat.workflows import backend_status

    rows = [(name, "yes" if ok else "no", note) for name, ok, note in backend_status()]
    width = max(len(r[0]) for r in rows)
    print(f"{'device':{width}}  available  notes")
    for name, ok, note in rows:
        print(f"{name:{width}}  {ok:9}  {note}")
    _print_phones()
    return 0


def _print_phones() -> None:
    """Phones on a running adb server (none started; quiet and fast when there is none)."""
    from hwlat.devices.adb import list_phones

    phones = list_phones()
    if not phones:
        return
    cols = ("serial", "state", "model", "soc", "abi", "android")
    widths = {c: max(len(c), *(len(p[c]) for p in phones)) for c in cols}
    print("\nphones (measure with --device adb:SERIAL --bench-binary PATH):")
    print("  ".join(f"{c:{widths[c]}}" for c in cols).rstrip())
    for p in phones:
        print("  ".join(f"{p[c]:{widths[c]}}" for c in cols).rstrip())


# ------------------------------------------------------------------ measure
def _protocol(args: argparse.Namespace):
    """``--protocol``, ``--rel-ci``, ``--budget`` (shared by measure and compare)."""
    from hwlat.workflows import protocol_from_options

    return protocol_from_options(args.protocol, rel_ci=args.rel_ci, budget_s=args.budget)


def _model_items(args: argparse.Namespace, device: str, batch: int) -> list:
    """``--model`` items: the models themselves, or with ``--kernels`` the distinct op configs of their kernels."""
    from hwlat.workflows import resolve_models

    models = resolve_models(args.model, input_shape=args.input_shape, seed=args.seed)
    if not args.kernels:
        return models
    from hwlat.graph import detect_kernels, item_graph
    from hwlat.predict.model import kernel_specs

    specs: dict[str, object] = {}
    for m in models:
        kset = detect_kernels(item_graph(m), device=device)
        found = kernel_specs(kset)
        left = kset.unmapped()
        print(
            f"{m.name}: {len(kset)} kernels, {len(found)} distinct op configs to measure"
            + (f"; {len(left)} kernels have no op kind yet ({_type_counts(left)})" if left else "")
        )
        specs.update((s.key, s) for s in found)
    if not specs:
        raise CLIError(f"--kernels: no kernel of {args.model} has an op kind to measure")
    return list(specs.values())


def _type_counts(kernels) -> str:
    from collections import Counter

    return ", ".join(f"{t} x{n}" for t, n in Counter(k.type for k in kernels).most_common())


def _items(args: argparse.Namespace) -> list:
    if args.kernels and not args.model:
        raise CLIError("--kernels needs --model: it measures the kernels of those models")
    if args.input_shape and not args.model:
        raise CLIError("--input-shape applies to --model files and modules")
    if args.model:
        if args.space or args.networks:
            raise CLIError("give one of --model, --networks or --space")
        return _model_items(args, args.device, args.batch or 1)
    if args.networks:
        from hwlat.workflows import resolve_networks

        return resolve_networks(args.networks, seed=args.seed)
    if not args.space:
        raise CLIError("nothing to measure: give --space NAME (with --n), --networks SPEC or --model FILE")
    from hwlat.spaces import get_space

    return get_space(args.space).sample(args.n, seed=args.seed)


def cmd_measure(args: argparse.Namespace) -> int:
    from hwlat.devices import create_backend
    from hwlat.measure.drift import drift_summary
    from hwlat.store import LatencyStore
    from hwlat.workflows import check_jobs

    protocol = _protocol(args)
    check_jobs(args.jobs)
    options = {}
    if args.bench_binary:
        if not args.farm and not args.device.startswith("adb"):
            raise CLIError(f"--bench-binary is for phones (--device adb:SERIAL), not {args.device!r}")
        options["bench_binary"] = args.bench_binary
    if args.farm:
        return _measure_on_farm(args, protocol, options)
    backend = create_backend(args.device, threads=args.threads, batch=args.batch, options=options)
    reference = _reference(args.reference, backend, protocol) if args.reference else None
    if args.space and args.space.startswith("auto:") and not (args.model or args.networks):
        return _measure_auto(args, backend, protocol, reference)
    items = _items(args)
    from hwlat.cli.adapt import few_shot_items

    items = few_shot_items(args, items) or items  # --few-shot N --from SRC: the N most informative of them
    with LatencyStore(args.db) as store:  # opened (and checked writable) before any measuring
        t0 = time.perf_counter()
        try:
            from hwlat.workflows import run_measure

            new, skipped = run_measure(
                backend, items, store, protocol, quiet=args.quiet, jobs=args.jobs, reference=reference
            )
        except KeyboardInterrupt:
            n = len(store.done_keys(backend.spec.key, protocol.key))
            print(
                f"interrupted: {n} rows are saved in {args.db}; run the same command again to resume", file=sys.stderr
            )
            return EXIT_INTERRUPTED
        rows = store.frame(backend.spec.key, provenance=False)
    rows = rows[rows["protocol"] == protocol.key]
    drift = drift_summary(rows) if reference is not None else None
    print(
        f"{backend.spec.key}: {new} measured, {skipped} already in {args.db} "
        f"({len(rows)} rows, {int((~rows['stable']).sum())} not settled) in {time.perf_counter() - t0:.1f} s"
    )
    if drift:
        print(drift)
    return 0


def _measure_auto(args: argparse.Namespace, backend, protocol, reference) -> int:
    """``--space auto:M1,M2 --n N``: N new kernel configs around the models' kernels, then near the worst-predicted."""
    from hwlat.ops import OpSpec
    from hwlat.spaces.auto import auto_space, sample_adaptive
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    models = [m for m in args.space[len("auto:") :].split(",") if m.strip()]
    if not models:
        raise CLIError("--space auto: needs models to sample around: auto:MODEL[,MODEL...] (files, pkg.mod:factory)")
    if args.few_shot:
        raise CLIError("--few-shot chooses among given items; --space auto: chooses its own")
    space = auto_space(models, device=backend.spec.key, seed=args.seed)
    print(
        f"{space.name}: {len(space.prior)} distinct kernel configs of {len(space.kinds)} kinds "
        f"({', '.join(space.kinds)})"
    )
    t0 = time.perf_counter()
    with LatencyStore(args.db) as store:

        def table() -> dict[str, float]:
            rows = store.frame(backend.spec.key, provenance=False) if backend.spec.key in store.device_keys() else None
            if rows is None:
                return {}
            rows = rows[(rows["protocol"] == protocol.key) & rows["kind"].isin(space.kinds)]
            return dict(zip(rows["op_key"], rows["median_ms"].astype(float)))

        known = [(OpSpec.from_key(k), ms) for k, ms in table().items()]

        def measure(batch: list) -> list[float]:
            run_measure(backend, batch, store, protocol, quiet=args.quiet, jobs=args.jobs, reference=reference)
            got = table()
            return [got[op.key] for op in batch]

        new, rounds = sample_adaptive(
            space, args.n, measure, seed=args.seed, known=known, on_round=lambda r: print(r.describe(), flush=True)
        )
    print(
        f"{backend.spec.key}: {len(new)} new configs measured into {args.db} in {len(rounds)} rounds "
        f"({len(known)} of these kinds were there already; none measured twice) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _measure_on_farm(args: argparse.Namespace, protocol, options: dict) -> int:
    """``hwlat measure --farm ADDRESS --device D1,D2@HOST,...``: every device at once, this process the one writer."""
    from hwlat.farm import run_measure_farm

    if args.reference:
        raise CLIError("--reference is not supported with --farm (each device would need its own drift reference)")
    if args.few_shot:
        raise CLIError("--few-shot is not supported with --farm yet: choose the items with one device first")
    t0 = time.perf_counter()
    got = run_measure_farm(
        args.farm,
        args.device,
        _items(args),
        args.db,
        protocol,
        quiet=args.quiet,
        threads=args.threads,
        batch=args.batch,
        options=options,
    )
    for key, (new, skipped) in got.items():
        print(f"{key}: {new} measured, {skipped} already in {args.db}")
    print(f"{len(got)} devices in {time.perf_counter() - t0:.1f} s")
    return 0


def _reference(name: str, backend, protocol):
    """The drift reference op for ``--reference``, checked against the backend and protocol."""
    from hwlat.measure import reference_problem
    from hwlat.measure.drift import reference_op

    problem = reference_problem(backend, protocol)
    if problem:
        raise CLIError(f"--reference {problem}")
    try:
        return reference_op(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc


# -------------------------------------------------------------------- table
def cmd_table(args: argparse.Namespace) -> int:
    from hwlat.measure.drift import drift_summary
    from hwlat.store import LatencyStore

    if args.action == "import":
        with LatencyStore(args.db) as store:
            added = store.import_files(args.files)  # all files or none
        print(f"{added} rows imported into {args.db}")
        return 0
    with LatencyStore(args.db, readonly=True) as store:
        if args.action == "export":
            device = None if args.device is None else _device_key(store, args.device)
            path = store.export(args.out, device)
            rows = store.count(device)
            print(f"{rows} rows written to {path}" + (f" (device {device})" if device else ""))
            return 0
        df = store.frame(None if args.device is None else _device_key(store, args.device))
    if df.empty:
        print(f"{args.db}: no rows" + (f" for device {args.device}" if args.device else ""))
        return 0
    from hwlat.workflows import table_summary

    summary = table_summary(df).rename(columns={"settled_pct": "settled"})
    summary["settled"] = summary["settled"].astype(str) + " %"
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for key, rows in df.groupby("device_key"):
        line = drift_summary(rows)
        if line:
            print(f"{key}: {line}")
    if args.rows:
        cols = ["op_key", "median_ms", "iqr_ms", "n", "stable"]
        print()
        print(df[cols].head(args.rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


# ------------------------------------------------------------- predictors
def cmd_fit(args: argparse.Namespace) -> int:
    from hwlat.workflows import fit_table

    p, path, meta = fit_table(
        args.table,
        args.out,
        device=args.device,
        model=args.model,
        target=args.target,
        correct_drift=args.correct_drift,
        force=args.force,
    )
    kinds = ", ".join(f"{k} ({n})" for k, n in p.n_train_.items())
    print(f"fitted {args.model} on {p.device_key_}: {kinds}; network overhead {p.overhead_ms_:.3f} ms")
    if p.composition_ is not None:
        from hwlat.predict.calibration import CalibratedPredictor

        c = p.composition_
        loo = ", ".join(f"{t} {100 * v:.1f} %" for t, v in c["loo_mape"].items())
        how = CalibratedPredictor(p, p.composition()).describe() if c["terms"] != "none" else "the plain sum of kernels"
        print(f"whole models: {how}; chosen from {c['n_models']} models measured whole by leave-one-out MAPE ({loo})")
    print(f"saved {path} and {meta}")
    return 0


def _device_key(store, device: str | None) -> str:
    from hwlat.workflows import resolve_device_key

    try:
        return resolve_device_key(store, device)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hwlat.outfile import check_output
    from hwlat.predict import load_predictor
    from hwlat.predict.evaluate import HEADER, evaluate_table, scatter_png, write_report

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: is a file, not a folder; give a folder for evaluation.md and evaluation.png")
    for name in ("evaluation.md", "evaluation.png"):  # the report files are replaced; a table never is
        check_output(out / name, "report", is_ours=lambda _: True)
    p = load_predictor(args.predictor)
    result = evaluate_table(
        p,
        args.table,
        repeat_table=args.repeat,
        target=p.target_,
        correct_drift=args.correct_drift,
    )
    out.mkdir(parents=True, exist_ok=True)
    title = f"Predictor {Path(args.predictor).name} on {args.table} ({p.device_key_})"
    report = write_report(result, out / "evaluation.md", title)
    png = scatter_png(result["points"], out / "evaluation.png", title) if result["points"] else None
    print(HEADER)
    print("\n".join(report.read_text().splitlines()[4:]))
    print(f"report: {report}" + (f", plot: {png}" if png else ""))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hwlat.predict import load_predictor
    from hwlat.workflows import resolve_networks

    if bool(args.network) == bool(args.model):
        raise CLIError("give --network (hwlat networks) or --model (model files, modules, zoo names)")
    p = load_predictor(args.predictor)
    if args.model:
        return _predict_models(args, p)
    if args.kernels or args.allow_missing or args.input_shape:
        raise CLIError("--kernels, --allow-missing and --input-shape go with --model")
    for net in resolve_networks(args.network):
        per_op = p.predict(list(net.ops))
        total = p.predict_network(net)
        print(
            f"{net.name}: {total:.3f} ms predicted on {p.device_key_} "
            f"({len(net.ops)} ops, {net.flops / 1e6:.1f} MMACs, overhead {p.overhead_ms_:.3f} ms)"
        )
        if args.ops:
            for op, ms in zip(net.ops, per_op):
                print(f"  {ms:9.4f} ms  {op.key}")
    return 0


def _predict_models(args: argparse.Namespace, p) -> int:
    """``hwlat predict --model``: the total, and with --kernels each kernel's latency and share."""
    from hwlat.predict.model import predict_model
    from hwlat.workflows import resolve_models

    for item in resolve_models(args.model, input_shape=args.input_shape):
        r = predict_model(p, item, allow_missing=args.allow_missing)
        graph = r.kernels.graph
        known = "" if not r.missing else f" for the {len(r.known)} kernels it covers"
        print(
            f"{r.name}: {r.total_ms:.3f} ms predicted on {p.device_key_}{known} "
            f"({len(r.units)} kernels, {graph.macs / 1e6:.1f} MMACs, overhead {r.overhead_ms:.3f} ms)"
        )
        if r.missing:
            share = sum(s for _, _, s, _ in r.missing_summary())
            print(f"  missing ({len(r.missing)} kernels, {100 * share:.1f} % of MACs, not in the total):")
            for typ, n, s, why in r.missing_summary():
                print(f"    {typ} x{n}: {100 * s:.1f} % of MACs ({why})")
        if args.kernels:
            print("\n".join("  " + line for line in r.breakdown().splitlines()))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``hwlat inspect --model M``: the graph's size and its kernels under a device's rules."""
    from hwlat.graph import detect_kernels, item_graph, rule_set_for
    from hwlat.workflows import resolve_models

    if args.rules:
        print(rule_set_for(args.device).describe())
        if not args.model:
            return 0
    if not args.model:
        raise CLIError("give --model (or --rules to print the kernel rules)")
    for item in resolve_models(args.model, input_shape=args.input_shape):
        graph = item_graph(item)
        kset = detect_kernels(graph, device=args.device)
        ops = ", ".join(f"{op} x{n}" for op, n in graph.op_counts().most_common(8))
        print(graph.summary())
        sha = graph.source.get("model_sha256")
        if sha:
            print(f"  sha256 {sha}")
        print(f"  ops: {ops}{', ...' if len(graph.op_counts()) > 8 else ''}")
        mapped = len(kset) - len(kset.unmapped())
        print(
            f"  {len(kset)} kernels with the {kset.rules.name} rules ({args.device or 'default'}), "
            f"{len(kset.free)} free nodes; {mapped} kernels map to an op kind"
            + (f", {len(kset.unmapped())} have none yet ({_type_counts(kset.unmapped())})" if kset.unmapped() else "")
        )
        print("\n".join("  " + line for line in kset.table(limit=None if args.all else 25).splitlines()))
    return 0


def cmd_lut(args: argparse.Namespace) -> int:
    if args.action == "import":
        from hwlat.formats.lut import import_lut_report
        from hwlat.store import LatencyStore

        with LatencyStore(args.db) as store:
            report = import_lut_report(
                args.file, store, args.device, dialect=args.dialect, skip_unmapped=args.skip_unmapped
            )
        print(
            f"{report.added} rows imported into {args.db} as device lut/t1/b1/fp32/name={args.device} "
            f"({report.dialect} dialect)"
        )
        if report.skipped:
            print(f"warning: {report.n_skipped} of {report.entries} entries skipped: {report.skipped_text()}")
        return 0
    from hwlat.predict import load_predictor
    from hwlat.workflows import export_space_lut

    p = load_predictor(args.predictor)
    path, n_ops = export_space_lut(p, args.space, args.out, force=args.force, dialect=args.dialect)
    fmt = "Once-for-All MobileNetV3" if args.dialect == "ofa-mbv3" else "ProxylessNAS"
    print(f"{n_ops} ops of space {args.space} written to {path} ({fmt} LUT format, predicted on {p.device_key_})")
    return 0


# --------------------------------------------------------------- quickstart
def cmd_quickstart(args: argparse.Namespace) -> int:
    from hwlat.quickstart import run_quickstart

    return run_quickstart(Path(args.out), n_ops=args.n, device=args.device)


# ------------------------------------------------------------------- parser
def _model_arguments(s: argparse.ArgumentParser) -> None:
    """``--model`` and ``--input-shape`` (measure, predict, inspect)."""
    s.add_argument("--model", metavar="MODEL", help=_MODEL_HELP)
    s.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="fix a --model's dynamic input dimensions, e.g. 1x3x224x224 (NAME:SHAPE,... for several inputs; "
        ".tflite files keep their fixed shapes)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwlat", description="Hardware-aware latency measurement and prediction.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("devices", help="list backends: available here or why not")
    s.set_defaults(func=cmd_devices)

    s = sub.add_parser("measure", help="measure ops, networks or models into a latency table")
    s.add_argument(
        "--device",
        required=True,
        help="backend name, e.g. onnxruntime-cpu (see `hwlat devices`); with --farm a comma list of DEVICE[@HOST]",
    )
    s.add_argument(
        "--space",
        help="op space to sample (see hwlat.spaces), e.g. mbconv; auto:M1,M2 samples around those models' kernels, "
        "then near the configs predicted worst (adaptive, in rounds)",
    )
    s.add_argument("--n", type=_count(1), default=100, help="ops to sample from the space (default 100)")
    s.add_argument("--networks", help="networks instead of ops: zoo names, random:N, or .json files, comma-separated")
    _model_arguments(s)
    s.add_argument(
        "--kernels",
        action="store_true",
        help="with --model: measure each distinct kernel of the models (as op configs) instead of the whole models",
    )
    s.add_argument("--db", required=True, help="SQLite latency table to write (created if missing; resumed)")
    s.add_argument("--threads", type=int, help="CPU threads (default 1, or the device string's /tN)")
    s.add_argument("--batch", type=int, help="batch size (default 1, or the device string's /bN)")
    s.add_argument("--protocol", choices=("adaptive", "fixed"), default="adaptive")
    s.add_argument("--rel-ci", type=float, help="stop when the median's 95%% CI is within this fraction (0.02)")
    s.add_argument("--budget", type=float, help="time budget per op in seconds (0.4)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    s.add_argument("--jobs", type=int, default=1, help="convert models in N parallel processes first (default 1)")
    s.add_argument(
        "--reference",
        metavar="OP",
        help="time this op (an op key, or 'auto') in every round beside the others and record it "
        "per row, so the machine's drift can be corrected later (hwlat fit --correct-drift)",
    )
    s.add_argument(
        "--bench-binary",
        metavar="PATH",
        help="adb: TFLite benchmark_model to push (a file here) or use (a path on the phone)",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from hwlat.cli.adapt import add_few_shot_arguments
    from hwlat.farm import add_farm_argument

    add_few_shot_arguments(s)
    add_farm_argument(s)
    s.set_defaults(func=cmd_measure)

    t = sub.add_parser("table", help="show, export or import a latency table")
    tsub = t.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = tsub.add_parser("show", help="per-kind summary of a table")
    s.add_argument("--db", required=True, help="SQLite latency table")
    s.add_argument("--device", help="only this device key")
    s.add_argument("--rows", type=_count(0), default=0, help="also print the first N rows")
    s.set_defaults(func=cmd_table)
    s = tsub.add_parser("export", help="write a table to .parquet or .csv")
    s.add_argument("--db", required=True, help="SQLite latency table")
    s.add_argument("--device", help="only this device's rows (a device key, or a backend name matching one key)")
    s.add_argument("--out", required=True, help=".parquet or .csv file")
    s.set_defaults(func=cmd_table)
    s = tsub.add_parser("import", help="add rows from .parquet/.csv files written by `table export`")
    s.add_argument("--db", required=True, help="SQLite latency table (created if missing)")
    s.add_argument("files", nargs="+", help=".parquet/.csv files")
    s.set_defaults(func=cmd_table)

    s = sub.add_parser("fit", help="fit a latency predictor on a table")
    s.add_argument("--table", required=True, help="SQLite latency table")
    s.add_argument("--device", help="device key or backend name (needed if the table holds several)")
    s.add_argument("--out", required=True, help="predictor file to write (.skops, plus .skops.json metadata)")
    s.add_argument("--model", default="prior+gbr", help="per-kind model (default prior+gbr)")
    s.add_argument("--target", default="median_ms", help="statistic to predict (default median_ms)")
    s.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out that is not an hwlat predictor (a latency table is never replaced)",
    )
    s.add_argument(
        "--correct-drift",
        action="store_true",
        help="first put rows measured with --reference on the table's typical speed (hwlat.measure.drift)",
    )
    s.set_defaults(func=cmd_fit)

    s = sub.add_parser("evaluate", help="RMSE, MAPE, ±5/±10 %% accuracy of a predictor on a table")
    s.add_argument("--predictor", required=True)
    s.add_argument("--table", required=True)
    s.add_argument("--repeat", help="a second table of the same items, for the measurement noise floor")
    s.add_argument(
        "--correct-drift",
        action="store_true",
        help="put both tables' rows measured with --reference on one common speed first",
    )
    s.add_argument("--out", default="out/evaluate", help="folder for evaluation.md and evaluation.png")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("predict", help="predict network or model latency (with a per-kernel breakdown)")
    s.add_argument("--predictor", required=True)
    s.add_argument("--network", help="zoo name, random:N, or a .json network/ProxylessNAS config")
    _model_arguments(s)
    s.add_argument("--ops", action="store_true", help="also print each op's prediction (--network)")
    s.add_argument("--kernels", action="store_true", help="also print each kernel's latency and share (--model)")
    s.add_argument(
        "--allow-missing",
        action="store_true",
        help="--model: predict the kernels the predictor covers and list the others (default: refuse)",
    )
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("inspect", help="a model's graph and kernels (what a runtime executes as one), no predictor")
    _model_arguments(s)
    s.add_argument("--device", help="use this device's kernel rules (default: the default rules)")
    s.add_argument("--all", action="store_true", help="list every kernel (default: the first 25)")
    s.add_argument("--rules", action="store_true", help="print the kernel rules in use")
    s.set_defaults(func=cmd_inspect)

    t = sub.add_parser(
        "lut", help="import or export ProxylessNAS/Once-for-All (MobileNetV2 and V3) latency lookup tables (YAML)"
    )
    lsub = t.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = lsub.add_parser("import", help="add a LUT's entries to a latency table as an imported device")
    s.add_argument("file", help="YAML lookup table (key -> mean, var/std, count)")
    s.add_argument("--db", required=True, help="SQLite latency table (created if missing)")
    s.add_argument("--device", required=True, help="name of the device the LUT was measured on, e.g. pixel1-tflite")
    s.add_argument(
        "--dialect",
        choices=("auto", "proxyless", "ofa-mbv3"),
        default="auto",
        help="key dialect: proxyless (ProxylessNAS, OFA MobileNetV2) or ofa-mbv3 (OFA MobileNetV3); "
        "default: from the keys",
    )
    s.add_argument(
        "--skip-unmapped",
        action="store_true",
        help="import the entries hwlat has an op for and list the others (e.g. se:1 blocks) instead of refusing",
    )
    s.set_defaults(func=cmd_lut)
    s = lsub.add_parser("export", help="write a predictor's latencies for a space as a LUT")
    s.add_argument("--predictor", required=True)
    s.add_argument("--space", default="mbconv-backbone", help="space whose configs to export (default mbconv-backbone)")
    s.add_argument("--out", required=True, help="YAML file to write")
    s.add_argument(
        "--dialect",
        choices=("proxyless", "ofa-mbv3"),
        default="proxyless",
        help="key dialect to write: proxyless (default; ProxylessNAS, OFA MobileNetV2) or ofa-mbv3 (OFA MobileNetV3)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out that is not a LUT (a latency table is never replaced)",
    )
    s.set_defaults(func=cmd_lut)

    for module in _EXTENSIONS:  # each defines register(subparsers); imported lazily-light modules only
        importlib.import_module(module).register(sub)

    s = sub.add_parser("quickstart", help="the embedded default job: a CPU latency table and its summary")
    s.add_argument("--out", default="out/quickstart", help="output folder (default out/quickstart)")
    s.add_argument("--device", default="onnxruntime-cpu")
    s.add_argument("--n", type=_count(10), default=120, help="ops to measure (default 120, at least 10)")
    s.set_defaults(func=cmd_quickstart)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = None
    try:  # start-up too (building the parser imports the extensions): Ctrl-C is one line, never a traceback
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
        )
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CLIError, ValueError, TypeError, RuntimeError, OSError) as exc:
        if args is None or args.verbose:
            raise
        print(f"hwlat {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
