"""``hwlat adapt``: a predictor for a new device from other devices' predictors and a few measurements there.

    hwlat measure --device litert-cpu --space mbconv --n 300 --few-shot 10 --from ort.skops --db few.db
    hwlat adapt --from ort.skops[,pixel1.skops] --table few.db --out litert.skops
    hwlat predict --predictor litert.skops --network proxyless-mobile

``--from`` takes predictor files (``hwlat fit``) or latency tables (fitted first). The
method (scale, per-kind, roofline groups), source and shrinkage are chosen by
cross-validation on the table's rows (:mod:`hwlat.adapt`); the choice is printed and
recorded in ``NEW.skops.json`` under ``adaptation``.

For ``hwlat measure``: :func:`add_few_shot_arguments` adds ``--few-shot N`` and ``--from``;
:func:`few_shot_items` then picks the N most informative of the sampled items.
"""

from __future__ import annotations

import argparse
import sys
import warnings


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text}")
    return value


def add_few_shot_arguments(parser: argparse.ArgumentParser) -> None:
    """``--few-shot N`` and ``--from SRC[,SRC2...]`` (dest ``few_shot`` and ``sources``) on ``parser``."""
    parser.add_argument(
        "--few-shot",
        type=_count,
        metavar="N",
        help="measure only the N most informative of the sampled items (--n or --networks), chosen by the "
        "--from predictors: spread over their latency range and the op kinds",
    )
    parser.add_argument(
        "--from",
        dest="sources",
        metavar="SRC[,SRC2...]",
        help="with --few-shot: source predictors (.skops) or latency tables of other devices",
    )


def few_shot_items(args: argparse.Namespace, candidates: list) -> list | None:
    """The items ``--few-shot N --from SRC`` chooses among ``candidates``; None without ``--few-shot``."""
    few = getattr(args, "few_shot", None)
    sources = getattr(args, "sources", None)
    if few is None:
        if sources:
            from hwlat.adapt import AdaptError

            raise AdaptError("--from is for --few-shot N: give both, or neither")
        return None
    from hwlat.adapt import AdaptError, choose_items
    from hwlat.adapt.workflow import load_sources

    if not sources:
        raise AdaptError("--few-shot needs --from SRC.skops[,SRC2...]: the predictors that rank the candidates")
    if few > len(candidates):
        raise AdaptError(
            f"--few-shot {few} is more than the {len(candidates)} sampled candidates; sample more (--n) or choose fewer"
        )
    predictors, _ = load_sources(sources)
    return choose_items(candidates, predictors, few)


def cmd_adapt(args: argparse.Namespace) -> int:
    from hwlat.adapt import FewShotWarning
    from hwlat.adapt.workflow import adapt_table

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FewShotWarning)
        p, path, meta = adapt_table(args.sources, args.table, args.out, device=args.device, force=args.force)
    for w in caught:
        if issubclass(w.category, FewShotWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    a = p.adaptation_
    what = ", ".join(f"{n} {label}" for n, label in ((a["n_ops"], "ops"), (a["n_networks"], "networks")) if n)
    print(
        f"adapted {a['source']} to {p.device_key_} from {a['n']} measurements ({what}): method {a['method']}, "
        f"cross-validated MAPE {100 * a['cv_mape']:.1f} % (fit {100 * a['fit_mape']:.1f} %)"
    )
    w0 = a["global_scale"]
    moved = {k: v for k, v in a["weights"].items() if abs(v / w0 - 1) > 0.01}
    print(
        f"weights: {w0:.3f} x the source"
        + (" except " + ", ".join(f"{k} {v:.3f}" for k, v in moved.items()) if moved else "")
    )
    for key, label in (("method", "method"), ("source", "source")):
        best: dict[str, float] = {}
        for c in a["candidates"]:
            best[c[key]] = min(best.get(c[key], float("inf")), c["cv_mape"])
        if len(best) > 1:
            print(f"cross-validated MAPE by {label}: " + ", ".join(f"{m} {100 * v:.1f} %" for m, v in best.items()))
    if not a["n_networks"]:
        print(
            "note: no whole network among the measurements: the network overhead is the source's, scaled; "
            "measure a few networks too (--networks random:30 --few-shot 5) for network-level accuracy"
        )
    print(f"saved {path} and {meta}")
    return 0


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat adapt``."""
    s = sub.add_parser("adapt", help="a predictor for a new device from other devices' predictors + N measurements")
    s.add_argument(
        "--from",
        dest="sources",
        required=True,
        metavar="SRC[,SRC2...]",
        help="source predictors (.skops) or latency tables of other devices, comma-separated",
    )
    s.add_argument("--table", required=True, help="latency table of the N measurements on the target device")
    s.add_argument("--device", help="the target's device key in --table (needed if it holds several)")
    s.add_argument("--out", required=True, help="predictor file to write (.skops, plus .skops.json metadata)")
    s.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out that is not an hwlat predictor (a latency table is never replaced)",
    )
    s.set_defaults(func=cmd_adapt)
