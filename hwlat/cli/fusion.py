"""``hwlat fusion-rules --device D --db TABLE``: learn which op pairs the device fuses, store them with its table.

Each pair (conv+relu, conv+hardswish, conv+add, linear+gelu, add+relu, ...) is timed against its two
parts on the device (:mod:`hwlat.graph.fusion`); the test models' rows and the verdicts go into the
latency table, where ``hwlat fit`` picks them up: the predictor then detects a model's kernels with
the learned rules instead of the runtime's defaults. The printout marks every pair where the two
disagree.
"""

from __future__ import annotations

import argparse
import sys


def cmd_fusion_rules(args: argparse.Namespace) -> int:
    from hwlat.graph.fusion import FusionRules
    from hwlat.store import LatencyStore

    if args.show:
        with LatencyStore(args.db, readonly=True) as store:
            stored = store.fusion_rules()
        found = [text for key, text in stored.items() if key == args.device or key.startswith(args.device + "/")]
        if not found:
            hint = f"learn them with `hwlat fusion-rules --device {args.device} --db {args.db}`"
            print(f"{args.db}: no fusion rules for {args.device}; {hint}", file=sys.stderr)
            return 1
        for text in found:
            rules = FusionRules.from_json(text)
            print(f"{rules.device_key} (learned {rules.created_at}, hwlat {rules.hwlat_version})")
            print(rules.table())
            print(rules.rule_set().describe())
        return 0
    from hwlat.devices import create_backend
    from hwlat.graph.fusion import run_pair_tests
    from hwlat.workflows import protocol_from_options

    backend = create_backend(args.device, threads=args.threads)
    protocol = protocol_from_options(args.protocol)
    with LatencyStore(args.db) as store:  # the test models' rows and the rules both go into the table
        rules = run_pair_tests(backend, protocol, pattern=args.pairs, store=store, quiet=args.quiet)
        store.set_fusion_rules(rules.device_key, rules.to_json())
    print(rules.table())
    differ = [p.name for p in rules.pairs if p.differs]
    print(
        f"{rules.device_key}: {sum(p.fused for p in rules.pairs)} of {len(rules.pairs)} pairs fuse; "
        + (
            f"{len(differ)} differ from the default rules ({', '.join(differ)})"
            if differ
            else "all as the defaults say"
        )
        + f"; stored in {args.db} (`hwlat fit --table {args.db}` uses them)"
    )
    return 0


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat fusion-rules``."""
    s = sub.add_parser(
        "fusion-rules",
        help="learn which op pairs a device fuses (pair vs parts timing) and store the rules with its table",
    )
    s.add_argument("--device", required=True, help="device, e.g. onnxruntime-cpu or litert-cpu")
    s.add_argument("--db", required=True, help="latency table to store the rules in (created if missing)")
    s.add_argument("--pairs", default="*", help="shell pattern of the pairs to test (default: all), e.g. 'conv+*'")
    s.add_argument("--threads", type=int, default=1, help="device threads (default 1)")
    s.add_argument("--protocol", default="adaptive", choices=("adaptive", "fixed"), help="measurement protocol")
    s.add_argument("--show", action="store_true", help="print the stored rules and the rule set they give")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_fusion_rules)
