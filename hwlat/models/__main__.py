"""``python -m hwlat.models [PATTERN ...] [--reference]``: build variants and print their parameters and MACs.

With ``--reference`` only the variants with a published count are built, and the published numbers
are printed next to the measured ones (the table in docs/models.md).
"""

from __future__ import annotations

import argparse

from hwlat.models import REFERENCES, count_macs, count_params, get_model, list_models


def _table(names: list[str], reference: bool) -> list[str]:
    head = "| model | input | params | MACs (M) |"
    rule = "|---|---|---:|---:|"
    if reference:
        head += " published params | published MACs (M) | MACs vs published |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for name in names:
        spec = get_model(name)
        model = spec.build()
        params, macs = count_params(model), count_macs(model, spec.input_shape) / 1e6
        row = f"| {name} | {spec.resolution} | {params:,} | {macs:,.1f} |"
        if reference:
            ref = REFERENCES[name]
            published = f"{ref.params:,}" if ref.params is not None else f"{ref.params_m} M"
            row += f" {published} | {ref.macs_m:,.0f} | {macs / ref.macs_m - 1:+.1%} |"
        lines.append(row)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwlat.models", description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", default=["*"], help="shell wildcards over the variant names")
    parser.add_argument("--reference", action="store_true", help="only variants with published counts, side by side")
    args = parser.parse_args(argv)
    names = list_models(args.patterns)
    if args.reference:
        names = [n for n in names if n in REFERENCES]
    if not names:
        parser.error(f"no model matches {' '.join(args.patterns)!r}; see python -m hwlat.models --help")
    print("\n".join(_table(names, args.reference)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
