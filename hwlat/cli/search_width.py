"""``hwlat search split`` and ``hwlat search width``: latency-aware splitting and width optimisation on digits.

    hwlat search split --device onnxruntime-cpu --predictor P.skops --growth 0.5 --stages 4 [--mode both]
    hwlat search width --device onnxruntime-cpu --predictor P.skops --budget-ms 0.1 0.15 \\
        [--transfer width=0.5,depth=0.5,res=16,data=0.2] [--compare]

Both print the found widths, predicted and measured latency and test
accuracy, save every found network (Network JSON) and a latency-accuracy
plot under ``--out``. :func:`register_search` adds them to a ``search``
subcommand group.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hwlat.search import SEARCHES


def _setup(args: argparse.Namespace):
    """The predictor (input-MB calibrated when --calibrate is given); warns when it is for another device."""
    from hwlat.predict import load_predictor
    from hwlat.predict.protocol import device_mismatch

    predictor = load_predictor(args.predictor)
    warning = device_mismatch(predictor, args.device)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.calibrate:
        from hwlat.search._latency import calibrate_from_table

        predictor = calibrate_from_table(predictor, args.calibrate, remeasure=args.device if args.remeasure else None)
        print(f"network latency {predictor.describe()}", file=sys.stderr)
    elif args.remeasure:
        raise ValueError("--remeasure needs --calibrate TABLE (the networks to measure again)")
    return predictor


def _measure(args: argparse.Namespace, networks) -> dict[str, float]:
    from hwlat.search._report import measure_networks

    if args.no_measure:
        return {}
    return measure_networks(args.device, networks)


def _fmt(widths) -> str:
    return "[" + ",".join(str(int(w)) for w in widths) + "]"


# -------------------------------------------------------------------- split
def cmd_split(args: argparse.Namespace) -> int:
    import torch

    from hwlat.search._report import tradeoff_png
    from hwlat.search._trainloop import TrainConfig
    from hwlat.search.data import digits_loaders
    from hwlat.search.splitting import MODES, EigenConfig, SplitConfig
    from hwlat.zoo import get_network

    predictor = _setup(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = MODES if args.mode == "both" else (args.mode,)
    if args.seed_channels:
        seed = get_network(
            "mobilenet-digits",
            widths=[args.seed_channels] * 10,
            resolution=args.resolution,
            network_name=f"mobilenet-digits-seed{args.seed_channels}",
        )
    else:
        seed = get_network(
            "mobilenet-digits",
            width_mult=args.seed_width,
            resolution=args.resolution,
            network_name=f"mobilenet-digits-seed{args.seed_width:g}",
        )
    runs = {}
    for mode in modes:
        # Fresh loaders per mode: both modes see the same shuffles, so their Splitting-0 is the same network.
        loaders = digits_loaders(args.resolution, args.batch_size, data_fraction=args.data_fraction, seed=args.seed)
        config = SplitConfig(
            growth=args.growth,
            stages=args.stages,
            mode=mode,
            epsilon=args.epsilon,
            eigen=EigenConfig(method=args.eigen, sweeps=args.sweeps, seed=args.seed, refine=args.refine),
            seed_train=TrainConfig(epochs=args.epochs, seed=args.seed),
            stage_train=TrainConfig(epochs=args.stage_epochs, lr=0.02, seed=args.seed),
        )

        def save(res, model, mode=mode) -> None:
            res.network.save(out / f"splitting-{mode}-{res.stage}.json")
            torch.save(model.state_dict(), out / f"splitting-{mode}-{res.stage}.pt")

        runs[mode] = SEARCHES.get("split").load()(seed, loaders, predictor, config, on_stage=save, quiet=args.quiet)
    measured = _measure(args, [s.network for stages in runs.values() for s in stages])
    print(f"{'mode':8} {'stage':>5} {'pred ms':>8} {'meas ms':>8} {'test acc':>8}  widths")
    rows, curves = [], {}
    for mode, stages in runs.items():
        for s in stages:
            meas = measured.get(s.network.key)
            print(
                f"{mode:8} {s.stage:5d} {s.predicted_ms:8.4f} {meas if meas is not None else float('nan'):8.4f} "
                f"{100 * s.test_acc:7.2f}%  {_fmt(s.widths)}"
            )
            rows.append(
                {
                    "mode": mode,
                    "stage": s.stage,
                    "widths": list(s.widths),
                    "predicted_ms": s.predicted_ms,
                    "measured_ms": meas,
                    "test_acc": s.test_acc,
                    "valid_acc": s.valid_acc,
                    "n_split": s.n_split,
                    "split_per_layer": list(s.split_per_layer),
                    "index_seconds": s.index_seconds,
                    "train_seconds": s.train_seconds,
                    "network": f"splitting-{mode}-{s.stage}.json",
                }
            )
        label = "energy-aware" if mode == "energy" else "vanilla"
        curves[label] = [(measured.get(s.network.key, s.predicted_ms), s.test_acc) for s in stages]
    xlabel = "predicted latency (ms)" if args.no_measure else f"measured latency on {args.device} (ms)"
    png = tradeoff_png(curves, out / "splitting_tradeoff.png", f"Splitting on digits (growth {args.growth:g})", xlabel)
    (out / "splitting.json").write_text(
        json.dumps(
            {"device": args.device, "predictor": str(args.predictor), "growth": args.growth, "stages": rows}, indent=1
        )
        + "\n"
    )
    print(f"saved networks splitting-<mode>-<k>.json, {out / 'splitting.json'} and {png}")
    return 0


# -------------------------------------------------------------------- width
def cmd_width(args: argparse.Namespace) -> int:
    from hwlat.cost import check_latency
    from hwlat.search._report import tradeoff_png
    from hwlat.search._trainloop import TrainConfig
    from hwlat.search.data import digits_loaders
    from hwlat.search.width import (
        WIDTH_OPTIMIZERS,
        DigitsArch,
        Projection,
        cost_saved,
        fit_ratios,
        train_and_test,
        transfer_ratios,
    )

    metric = "latency" if args.budget_ms is not None else "flops"
    given = args.budget_ms if metric == "latency" else args.budget_mmacs
    flag, unit = ("--budget-ms", "ms") if metric == "latency" else ("--budget-mmacs", "MMACs")
    for b in given:  # before any measuring or training, and before --out is created
        check_latency(b, flag, unit)
    predictor = _setup(args)
    budgets = given if metric == "latency" else [b * 1e6 for b in given]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arch = DigitsArch(resolution=args.resolution)
    _, config_cls = WIDTH_OPTIMIZERS[args.optimizer]
    if args.optimizer == "morphnet":
        config = config_cls(train=TrainConfig(seed=args.seed), steps=args.opt_steps, strength=args.strength)
    else:
        config = config_cls(seed_train=TrainConfig(epochs=10, seed=args.seed))

    def loaders_for(resolution: int, fraction: float):
        return digits_loaders(resolution, args.batch_size, data_fraction=fraction * args.data_fraction, seed=args.seed)

    loaders = loaders_for(arch.resolution, 1.0)
    ratio_sets = {}
    if args.transfer:
        projection = Projection.parse(args.transfer)
        ratio_sets["transfer"] = transfer_ratios(
            arch,
            projection,
            predictor,
            loaders_for=loaders_for,
            optimizer=args.optimizer,
            config=config,
            rule=args.rule,
            quiet=args.quiet,
        )
    if args.compare or not args.transfer:
        opt = SEARCHES.get("width").load()(args.optimizer, arch, loaders, predictor, config, quiet=args.quiet)
        ratio_sets["direct"] = (list(opt.ratios), opt)
    if args.compare:
        ratio_sets["uniform"] = ([1.0] * arch.n_slots, None)
    results = [
        fit_ratios(arch, ratios, predictor, b, metric=metric, method=method, opt=opt)
        for b in budgets
        for method, (ratios, opt) in ratio_sets.items()
    ]
    measured = _measure(args, [r.network for r in results])
    seeds = list(range(args.seed, args.seed + args.seeds))
    unit = "ms" if metric == "latency" else "MMACs"
    print(f"{'method':9} {'budget':>8} {'pred ms':>8} {'meas ms':>8} {'err':>6} {'test acc':>8}  widths")
    rows, curves = [], {}
    for k, r in enumerate(results):
        acc, accs = train_and_test(r.network, loaders, TrainConfig(epochs=args.epochs), seeds, quiet=args.quiet)
        meas = measured.get(r.network.key)
        name = f"width-{r.method}-{k // len(ratio_sets)}.json"
        r.network.save(out / name)
        shown = r.budget if metric == "latency" else r.budget / 1e6
        print(
            f"{r.method:9} {shown:8.4g} {r.predicted_ms:8.4f} {meas if meas is not None else float('nan'):8.4f} "
            f"{100 * r.budget_error:+5.1f}% {100 * acc:7.2f}%  {_fmt(r.widths)}"
        )
        rows.append(
            {
                "method": r.method,
                "budget": r.budget,
                "metric": metric,
                "widths": list(r.widths),
                "ratios": list(r.ratios),
                "multiplier": r.multiplier,
                "predicted_ms": r.predicted_ms,
                "measured_ms": meas,
                "budget_error": r.budget_error,
                "flops": r.flops,
                "test_acc": acc,
                "test_accs": accs,
                "optimizer_macs": r.optimizer_macs,
                "optimizer_seconds": r.optimizer_seconds,
                "network": name,
            }
        )
        curves.setdefault(r.method, []).append((meas if meas is not None else r.predicted_ms, acc))
    summary = {
        "device": args.device,
        "predictor": str(args.predictor),
        "metric": metric,
        "unit": unit,
        "optimizer": args.optimizer,
        "transfer": args.transfer,
        "results": rows,
    }
    if "transfer" in ratio_sets and "direct" in ratio_sets:
        direct = next(r for r in results if r.method == "direct")
        transfer = next(r for r in results if r.method == "transfer")
        summary["cost_saved"] = saved = cost_saved(direct, transfer)
        print(
            f"width transfer: optimisation cost {saved['macs_ratio']:.1f}x lower in MACs, "
            f"{saved['seconds_ratio']:.1f}x in wall time"
        )
    xlabel = "predicted latency (ms)" if args.no_measure else f"measured latency on {args.device} (ms)"
    png = tradeoff_png(curves, out / "width_tradeoff.png", f"Width optimisation on digits ({args.optimizer})", xlabel)
    (out / "width.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"saved networks width-<method>-<k>.json, {out / 'width.json'} and {png}")
    return 0


# ------------------------------------------------------------------- parser
def _common(s: argparse.ArgumentParser, out: str) -> None:
    s.add_argument(
        "--device", default="onnxruntime-cpu", help="where to measure the found networks (default onnxruntime-cpu)"
    )
    s.add_argument("--predictor", required=True, help="predictor fitted on the digits-widths space (.skops)")
    s.add_argument(
        "--calibrate",
        metavar="TABLE",
        help="re-calibrate network latency on the networks measured in TABLE, with a per-op "
        "activation-size term (more accurate for ONNX Runtime; see docs/widths.md)",
    )
    s.add_argument(
        "--remeasure",
        action="store_true",
        help="with --calibrate: measure TABLE's networks again on --device now and scale the "
        "calibration by the median ratio now/table (for a machine whose speed has drifted since "
        "the table was made)",
    )
    s.add_argument("--resolution", type=int, default=32, help="input resolution of the digits images (default 32)")
    s.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    s.add_argument(
        "--data-fraction",
        type=float,
        default=1.0,
        help="class-balanced fraction of the training split to use (default 1.0)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of data splits, initialisation and v (default 0)")
    s.add_argument("--out", default=out, help=f"output folder (default {out})")
    s.add_argument("--no-measure", action="store_true", help="skip measuring on the device (report predictions only)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


# Copies of hwlat.search.splitting.MODES / EIGEN_METHODS and hwlat.search.width.STACK_RULES /
# WIDTH_OPTIMIZERS' names (tests/test_cli_search.py keeps them equal), so that building the parser for
# ``hwlat --help`` does not import torch through the search modules.
SPLIT_MODES = ("energy", "vanilla")
EIGEN_METHODS = ("fast", "exact")
STACK_RULES = ("last", "average")
WIDTH_OPTIMIZERS = ("morphnet", "splitting")


def register_search(search_subparsers) -> None:
    """Add ``split`` and ``width`` to the ``hwlat search`` subcommand group."""
    s = search_subparsers.add_parser("split", help=SEARCHES.get("split").description)
    _common(s, "out/search-split")
    s.add_argument("--growth", type=float, default=0.5, help="growth ratio α per stage (default 0.5)")
    s.add_argument("--stages", type=int, default=4, help="splitting stages after the seed (default 4)")
    s.add_argument(
        "--mode",
        choices=(*SPLIT_MODES, "both"),
        default="energy",
        help="energy = latency-aware knapsack, vanilla = most negative splitting index (default energy)",
    )
    s.add_argument("--eigen", choices=EIGEN_METHODS, default="fast", help="splitting index computation (default fast)")
    s.add_argument("--sweeps", type=int, default=40, help="fast method: passes over the data (default 40)")
    s.add_argument(
        "--refine",
        type=int,
        default=8,
        help="fast method: Krylov (Rayleigh-Ritz) refinement steps after the sweeps; 0 = the paper's "
        "gradient descent alone (default 8)",
    )
    s.add_argument("--epsilon", type=float, default=0.1, help="split step ε (default 0.1)")
    s.add_argument("--seed-width", type=float, default=0.25, help="width multiplier of the seed network (default 0.25)")
    s.add_argument(
        "--seed-channels",
        type=int,
        default=0,
        help="seed with this many channels in every layer instead (paper Sec. 5.1 style), e.g. 4",
    )
    s.add_argument("--epochs", type=int, default=30, help="epochs training the seed (default 30)")
    s.add_argument("--stage-epochs", type=int, default=15, help="epochs after each split (default 15)")
    s.set_defaults(func=cmd_split)

    s = search_subparsers.add_parser("width", help=SEARCHES.get("width").description)
    _common(s, "out/search-width")
    budget = s.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-ms", type=float, nargs="+", help="predicted-latency budget(s) in ms")
    budget.add_argument("--budget-mmacs", type=float, nargs="+", help="FLOPs budget(s) in millions of MACs")
    s.add_argument("--transfer", help="optimise on a projection, e.g. width=0.5,depth=0.5,res=16,data=0.2")
    s.add_argument("--compare", action="store_true", help="also direct optimisation and uniform widths")
    s.add_argument(
        "--optimizer", choices=WIDTH_OPTIMIZERS, default="morphnet", help="width optimiser (default morphnet)"
    )
    s.add_argument("--rule", choices=STACK_RULES, default="average", help="stacking rule (default average)")
    s.add_argument("--strength", type=float, default=0.2, help="morphnet: latency-weighted sparsity strength (0.2)")
    s.add_argument(
        "--opt-steps",
        type=int,
        default=340,
        help="morphnet: SGD steps, the same on a projection (default 340: 20 epochs of digits)",
    )
    s.add_argument("--epochs", type=int, default=30, help="epochs training each found network (default 30)")
    s.add_argument("--seeds", type=int, default=1, help="training seeds per found network (default 1)")
    s.set_defaults(func=cmd_width)


def register(subparsers) -> None:
    """Stand-alone hook for ``hwlat.cli._EXTENSIONS``: a ``search`` group holding only ``split`` and ``width``.

    Use :func:`register_search` instead when another module already creates the ``search`` group.
    """
    s = subparsers.add_parser("search", help="hardware-targeted searches on digits: split, width")
    register_search(s.add_subparsers(dest="search_command", required=True, metavar="SEARCH"))
