"""``hwlat search``: hardware-aware architecture searches on the digits demo data.

    hwlat search proxyless --device onnxruntime-cpu --predictor P.skops --target-ms 0.06 [--loss add#abs]
    hwlat search darc --device onnxruntime-cpu --predictor P.skops --budget-ms 0.3 --base resnet-digits

Each prints the found network, its predicted and measured latency on the
device and its accuracy on the digits test split, and saves the architecture
as Network JSON under ``--out`` (``hwlat predict --network FILE.json``,
``hwlat measure --networks FILE.json``).

Other modules add searches to the group: list them in :data:`SEARCH_EXTENSIONS`;
each defines ``register_search(search_subparsers)``, called with the
sub-subparsers object :func:`search_subparsers` returns.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from hwlat.search import SEARCHES  # light: the registry names modules, it imports no search (no torch)

# Modules adding `hwlat search X` commands through register_search(search_subparsers).
SEARCH_EXTENSIONS: tuple[str, ...] = ("hwlat.cli.search_width",)
# Copies of hwlat.search.proxyless.LOSSES and hwlat.search.darc.MODES (a test keeps them equal),
# so that building the parser does not import torch.
LOSSES = ("mul#log", "add#linear", "add#abs", "add", "reinforce", "none")
DARC_MODES = ("latency", "size")


def _load_predictor(path: str | None, device: str):
    if path is None:
        return None
    from hwlat.predict import load_predictor

    predictor = load_predictor(path)
    from hwlat.predict.protocol import device_mismatch

    warning = device_mismatch(predictor, device)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return predictor


def _check_out(text: str) -> Path:
    """``--out`` as a Path, refused (one line) before a search runs when it cannot become a folder."""
    import os

    out = Path(text)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {text}: exists and is not a folder; give a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {text}: cannot create files under {parent} (not a writable folder)")
    return out


def _network_lines(net) -> list[str]:
    return [f"  {op.key}" for op in net.ops]


def _fmt_ms(value) -> str:
    return "n/a" if value is None else f"{value:.4f} ms"


# ---------------------------------------------------------------- proxyless
def cmd_proxyless(args: argparse.Namespace) -> int:
    from hwlat.search.proxyless import DIGITS_CONFIG

    run_proxyless = SEARCHES.get("proxyless").load()

    predictor = _load_predictor(args.predictor, args.device)
    config = DIGITS_CONFIG.replace(
        loss=args.loss,
        target_ms=args.target_ms,
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        arch_lr=args.arch_lr,
        final_epochs=args.final_epochs,
        gate_mode=args.gate_mode,
        seed=args.seed,
        **({"lam": args.lam, "lam_abs": args.lam, "lam2": args.lam} if args.lam is not None else {}),
    )
    config.check_target()
    out = _check_out(args.out)
    result = run_proxyless(
        predictor,
        config=config,
        device=None if args.no_measure else args.device,
        calibrate_n=0 if args.no_measure else args.calibrate,
        quiet=args.quiet,
    )
    net = result.network
    out.mkdir(parents=True, exist_ok=True)  # after the run: a refused target leaves nothing on disk
    path = net.save(out / f"{net.name}.json")
    (out / f"{net.name}.result.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    target = "none" if config.target_ms is None else f"{config.target_ms:g} ms"
    print(f"found {net.name} (loss {config.loss}, target {target}, {result.search_seconds:.0f} s search):")
    print("\n".join(_network_lines(net)))
    print(f"blocks: {', '.join('skip' if c is None else f'{c[0]}x{c[0]} e{c[1]}' for c in result.choices)}")
    print(f"predicted latency: {_fmt_ms(result.predicted_ms)} ({result.calibration})")
    err = "" if result.target_error is None else f" ({100 * result.target_error:+.1f} % vs target)"
    print(f"measured latency on {args.device}: {_fmt_ms(result.measured_ms)}{err}")
    if result.predictor_error is not None:
        print(
            f"measured interleaved with the calibration networks: {_fmt_ms(result.corrected_ms)} at "
            f"calibration-time speed (predictor error {100 * result.predictor_error:+.1f} %); "
            f"machine speed during the run: {result.machine_drift:.2f}x its calibration-time latency"
        )
    if result.drift_note:
        print(f"note: {result.drift_note}")
    print(
        f"test accuracy (digits): {100 * result.test_acc:.2f} %  ({net.params} parameters, {net.flops / 1e6:.2f} MMACs)"
    )
    print(f"saved {path}")
    return 0


# --------------------------------------------------------------------- darc
def cmd_darc(args: argparse.Namespace) -> int:
    from hwlat.search.darc import DARCConfig
    from hwlat.workflows import resolve_networks

    run_darc = SEARCHES.get("darc").load()

    if args.mode == "latency":
        if args.budget_ms is None or args.predictor is None:
            raise ValueError(
                "--mode latency needs --budget-ms B and --predictor P (or use --mode size --budget-params N)"
            )
        budget = args.budget_ms
    else:
        if args.budget_params is None:
            raise ValueError("--mode size needs --budget-params N (the parameter budget)")
        budget = float(args.budget_params)
    bases = resolve_networks(args.base)
    if len(bases) != 1:
        raise ValueError(f"--base names {len(bases)} networks; give exactly one (e.g. resnet-digits)")
    predictor = _load_predictor(args.predictor, args.device)
    config = DARCConfig(
        mode=args.mode,
        base_epochs=args.base_epochs,
        block_epochs=args.block_epochs,
        max_blocks=args.max_blocks,
        lam0=args.lam0,
        finetune_epochs=args.finetune_epochs,
        seed=args.seed,
    )
    out = _check_out(args.out)
    device = None if args.no_measure else args.device
    calibrate = args.calibrate if predictor is not None and device else 0
    result = run_darc(
        bases[0], budget, predictor, config=config, device=device, calibrate_n=calibrate, quiet=args.quiet
    )
    out.mkdir(parents=True, exist_ok=True)  # after the run: a refused budget leaves nothing on disk
    (out / f"{bases[0].name}-darc-{args.mode}.result.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    unit = "ms" if args.mode == "latency" else "params"
    print(
        f"base {bases[0].name}: cost {result.base_cost:.4g} {unit}, measured {_fmt_ms(result.base_measured_ms)}, "
        f"test accuracy {100 * result.base_test_acc:.2f} %, {bases[0].params} parameters"
    )
    print(f"{'block':>5} {'lambda':>7} {'cost':>9} {'meas ms':>8} {'test acc':>8} {'params':>7}  candidates")
    for s in result.snapshots:
        meas = f"{s.measured_ms:8.4f}" if s.measured_ms is not None else f"{'n/a':>8}"
        print(
            f"{s.block:5d} {s.lam:7.3g} {s.cost:9.4g} {meas} {100 * s.test_acc:7.2f}% {s.network.params:7d}  "
            f"{', '.join(s.candidates)}"
        )
    if result.chosen is None:
        raise RuntimeError(
            f"no snapshot met the budget {budget:g} {unit} in {len(result.snapshots)} blocks; "
            "raise --max-blocks or --lam0"
        )
    s = result.chosen
    path = s.network.save(out / f"{s.network.name}.json")
    print(f"found {s.network.name} (block {s.block}, budget {budget:g} {unit}):")
    print("\n".join(_network_lines(s.network)))
    if args.mode == "latency":
        print(f"predicted latency: {s.cost:.4f} ms ({result.calibration})")
    else:
        print(f"cost: {s.cost:.0f} parameters")
    print(f"measured latency on {args.device}: {_fmt_ms(s.measured_ms)}")
    print(
        f"test accuracy (digits): {100 * s.test_acc:.2f} % ("
        f"{100 * (s.test_acc - result.base_test_acc):+.2f} points vs base); "
        f"parameters {s.network.params} ({s.network.params / bases[0].params:.2f}x base)"
    )
    print(f"saved {path}")
    return 0


# ------------------------------------------------------------------- parser
def _common(s: argparse.ArgumentParser, out: str) -> None:
    s.add_argument("--device", default="onnxruntime-cpu", help="where to measure (default onnxruntime-cpu)")
    s.add_argument(
        "--calibrate",
        type=int,
        default=8,
        metavar="N",
        help="measure N random networks of the space on the device first and calibrate the "
        "predictor's network sums on them (default 8; 0 = off)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation, sampling (default 0)")
    s.add_argument("--out", default=out, help=f"output folder (default {out})")
    s.add_argument("--no-measure", action="store_true", help="do not measure on the device (no calibration either)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def search_subparsers(sub) -> argparse._SubParsersAction:
    """Add the ``search`` command to ``sub``; return its sub-subparsers (to add more searches to)."""
    group = sub.add_parser("search", help="hardware-aware architecture searches (digits demo)")
    ssub = group.add_subparsers(dest="search", required=True, metavar="SEARCH")

    s = ssub.add_parser("proxyless", help=SEARCHES.get("proxyless").description)
    _common(s, "out/search-proxyless")
    s.add_argument("--predictor", required=True, help="predictor fitted on the digits-mbconv space (.skops)")
    s.add_argument("--target-ms", type=float, help="target latency T in ms (needed by every loss but add and none)")
    s.add_argument(
        "--loss",
        choices=LOSSES,
        default="add#abs",
        help="latency loss (default add#abs; the official code uses mul#log)",
    )
    s.add_argument(
        "--lam", type=float, help="weight of the latency term (defaults: add#linear 0.1, add#abs 3, add 0.1 per ms)"
    )
    s.add_argument("--epochs", type=int, default=30, help="search epochs (default 30)")
    s.add_argument("--warmup-epochs", type=int, default=10, help="weight-only epochs first (default 10)")
    s.add_argument("--arch-lr", type=float, default=0.1, help="Adam step of the architecture logits (default 0.1)")
    s.add_argument("--gate-mode", choices=("two", "full"), default="two", help="paths per arch update (default two)")
    s.add_argument("--final-epochs", type=int, default=10, help="training of the found network (default 10)")
    s.set_defaults(func=cmd_proxyless)

    s = ssub.add_parser("darc", help=SEARCHES.get("darc").description)
    _common(s, "out/search-darc")
    s.add_argument("--predictor", help="predictor fitted on the digits-darc space (.skops); needed in latency mode")
    s.add_argument(
        "--base", default="resnet-digits", help="network to compress: zoo name or .json (default resnet-digits)"
    )
    s.add_argument("--mode", choices=DARC_MODES, default="latency", help="cost: predicted latency or parameters")
    s.add_argument("--budget-ms", type=float, help="latency budget B (ms), latency mode")
    s.add_argument("--budget-params", type=int, help="parameter budget, size mode")
    s.add_argument("--base-epochs", type=int, default=15, help="training of the base network (default 15)")
    s.add_argument("--block-epochs", type=int, default=3, help="epochs per training block (default 3)")
    s.add_argument("--max-blocks", type=int, default=8, help="at most this many blocks of doubling λ (default 8)")
    s.add_argument(
        "--lam0", type=float, help="initial λ per unit of the base's cost (default: CE / penalty at the start)"
    )
    s.add_argument("--finetune-epochs", type=int, default=5, help="fine-tuning of each snapshot (default 5)")
    s.set_defaults(func=cmd_darc)
    return ssub


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat search`` and the searches of :data:`SEARCH_EXTENSIONS`."""
    ssub = search_subparsers(sub)
    for module in SEARCH_EXTENSIONS:
        try:
            ext = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # that search is not installed in this checkout
        ext.register_search(ssub)
