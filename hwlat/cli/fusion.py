"""``hwlat fusion-rules --device D --db TABLE``: learn which op pairs the device fuses, store them with its table.

Each pair (conv+relu, conv+silu, conv+add, dwconv+hardswish, linear+gelu, add+relu, ...) is timed
against its two parts and a call's fixed cost on the device, in ``--rounds`` independent rounds
(:mod:`hwlat.graph.fusion`); a pair gets a verdict (fused or separate) only when the confidence
interval of the follower's share lies wholly on one side of 0.5, and is undecided otherwise (the
runtime's default rule is kept). The verdicts go into the latency table, where ``hwlat fit`` picks
them up: the predictor then detects a model's kernels with the learned rules instead of the
runtime's defaults. The printout marks every pair where the two disagree. Each run measures
afresh (a second run is a repeat, not a resume).
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
            took = f", {rules.wall_s:.0f} s" if rules.wall_s else ""
            print(f"{rules.device_key} (learned {rules.created_at}, hwlat {rules.hwlat_version}{took}, {rules.format})")
            print(rules.table())
            print(rules.summary())
            print(rules.rule_set().describe())
        return 0
    if args.rounds < 5:
        raise ValueError(f"--rounds {args.rounds}: give at least 5 (fewer rounds cannot give a 90 % interval)")
    from hwlat.devices import create_backend
    from hwlat.graph.fusion import run_pair_tests
    from hwlat.workflows import protocol_from_options

    backend = create_backend(args.device, threads=args.threads)
    protocol = protocol_from_options(args.protocol)
    with LatencyStore(args.db) as store:  # opened (and checked) before minutes of measuring
        rules = run_pair_tests(backend, protocol, pattern=args.pairs, rounds=args.rounds, quiet=args.quiet)
        store.set_fusion_rules(rules.device_key, rules.to_json())
    print(rules.table())
    print(f"{rules.summary()}; stored in {args.db} in {rules.wall_s:.0f} s (`hwlat fit --table {args.db}` uses them)")
    return 0


def register(sub) -> None:
    """Called by :mod:`hwlat.cli`: adds ``hwlat fusion-rules``."""
    s = sub.add_parser(
        "fusion-rules",
        help="learn which op pairs a device fuses (pair vs parts timing, repeated rounds) and store the rules",
    )
    s.add_argument("--device", required=True, help="device, e.g. onnxruntime-cpu or litert-cpu")
    s.add_argument("--db", required=True, help="latency table to store the rules in (created if missing)")
    s.add_argument("--pairs", default="*", help="shell pattern of the pairs to test (default: all), e.g. 'conv+*'")
    s.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="independent rounds per pair (default 8: a 93 %% interval that one wild round does not sway; at least 5)",
    )
    s.add_argument("--threads", type=int, default=1, help="device threads (default 1)")
    s.add_argument("--protocol", default="adaptive", choices=("adaptive", "fixed"), help="measurement protocol")
    s.add_argument("--show", action="store_true", help="print the stored rules and the rule set they give")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_fusion_rules)
