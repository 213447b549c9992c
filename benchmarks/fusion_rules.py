"""Learned fusion rules on the CPU runtimes: repeated runs, and each verdict against the runtime's own graph.

For each device, ``hwlat fusion-rules`` runs twice (separate processes, separate tables; the runs
of the devices alternate, so a busy spell of the machine does not hit one device's repeat only).
Each verdict is then checked against what the runtime really fused:

- ONNX Runtime writes the graph it runs (``SessionOptions.optimized_model_filepath``, full
  optimisation, as the backend runs it): the pair is fused when its optimised graph has as many
  compute nodes as its head's (layout reorders and reshapes not counted); fused activations show
  as ``Conv[Relu]``, a residual add fused into an NCHWc Conv as ``Conv[+Sum]``.
- LiteRT: the converted ``.tflite`` the backend runs, its operators and their
  ``fused_activation_function`` (``CONV_2D(RELU)``); what the XNNPACK delegate does inside its
  one delegate node is not visible there.

A verdict is about cost (the follower adds less than half its own cost), the graph about structure:
where they differ the table says so, and the README explains the cases found.

    python benchmarks/fusion_rules.py [--devices onnxruntime-cpu,litert-cpu] [--runs 2] [--db-dir /tmp]

Writes benchmarks/results/fusion_rules.json and .md; the tables stay in --db-dir
(``fr_ort_1.db``, ``fr_litert_2.db``, ...: ``hwlat fusion-rules --show --device D --db T`` prints them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHORT = {"onnxruntime-cpu": "ort", "litert-cpu": "litert"}
ORT_FREE = {"ReorderInput", "ReorderOutput", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
TFLITE_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


# ------------------------------------------------------------------ the runs
def stored(device: str, db: Path):
    """(the FusionRules stored for ``device`` in ``db``, their JSON)."""
    from hwlat.graph.fusion import FusionRules
    from hwlat.store import LatencyStore

    with LatencyStore(db, readonly=True) as store:
        (text,) = (v for k, v in store.fusion_rules().items() if k.startswith(device + "/"))
    return FusionRules.from_json(text), json.loads(text)


def learn(device: str, db: Path) -> dict:
    """One ``hwlat fusion-rules`` process; its wall time, printout and the rules it stored."""
    cmd = [sys.executable, "-m", "hwlat.cli.main", "fusion-rules", "--device", device, "--db", str(db), "--quiet"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rules, data = stored(device, db)
    print(f"{device} -> {db}: {wall:.0f} s\n{done.stdout}", flush=True)
    return {"db": str(db), "wall_s": round(wall, 1), "stdout": done.stdout, "rules": rules, "json": data}


def reread(device: str, db: Path, previous: dict, i: int) -> dict:
    """A run of an earlier invocation, from its table (``--report-only``); wall time and printout from its JSON."""
    rules, data = stored(device, db)
    old = previous["devices"][device]["runs"][i]
    if old.get("json", {}).get("created_at") != data["created_at"]:
        raise SystemExit(f"{db} holds rules learned at {data['created_at']}, not the run in the results JSON")
    return {"db": str(db), "wall_s": old["wall_s"], "stdout": old["stdout"], "rules": rules, "json": data}


# ------------------------------------------------------------------ the runtimes' own graphs
def ort_ops(path: Path, tmp: Path) -> list[str]:
    import onnx
    import onnxruntime as ort

    from hwlat.devices import create_backend

    so = create_backend("onnxruntime-cpu").session_options()  # as the backend runs it (ORT_ENABLE_ALL)
    out_path = tmp / (path.stem + ".optimized.onnx")
    so.optimized_model_filepath = str(out_path)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ops = []
    for node in onnx.load(str(out_path)).graph.node:
        tags = [a.s.decode() for a in node.attribute if a.name == "activation" and a.s]
        if node.op_type == "Conv" and node.domain == "com.microsoft.nchwc" and len(node.input) > 3 and node.input[3]:
            tags.insert(0, "+Sum")
        ops.append(node.op_type + (f"[{','.join(tags)}]" if tags else ""))
    return ops


def tflite_ops(path: Path) -> list[str]:
    from ai_edge_litert import schema_py_generated as S

    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    fused = {1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
    options = {
        S.BuiltinOptions.Conv2DOptions: S.Conv2DOptions,
        S.BuiltinOptions.DepthwiseConv2DOptions: S.DepthwiseConv2DOptions,
        S.BuiltinOptions.AddOptions: S.AddOptions,
        S.BuiltinOptions.MulOptions: S.MulOptions,
        S.BuiltinOptions.FullyConnectedOptions: S.FullyConnectedOptions,
        S.BuiltinOptions.Pool2DOptions: S.Pool2DOptions,
    }
    model = S.Model.GetRootAs(path.read_bytes(), 0)
    sub = model.Subgraphs(0)
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        act = ""
        cls, table = options.get(op.BuiltinOptionsType()), op.BuiltinOptions()
        if cls is not None and table is not None:
            o = cls()
            o.Init(table.Bytes, table.Pos)
            act = fused.get(o.FusedActivationFunction(), "")
        ops.append(name + (f"({act})" if act else ""))
    return ops


def graph_truth(device: str, tmp: Path) -> dict[str, dict]:
    """{pair: {pair_ops, head_ops, fused}} from the files the backend runs (converted and cached by the runs)."""
    from hwlat.devices import create_backend
    from hwlat.graph.fusion import PAIRS, pair_models

    backend = create_backend(device)
    out = {}
    for name, head, follower in PAIRS:
        pair_m, head_m, _ = pair_models(name, head, follower)
        if device.startswith("onnxruntime"):
            p_ops, h_ops = (ort_ops(backend.convert(m), tmp) for m in (pair_m, head_m))
            free = ORT_FREE
        else:
            p_ops, h_ops = (tflite_ops(backend.convert(m)) for m in (pair_m, head_m))
            free = TFLITE_FREE

        def compute(ops, free=free):
            return [o for o in ops if o.split("[")[0].split("(")[0] not in free]

        out[name] = {
            "pair_ops": compute(p_ops),
            "head_ops": compute(h_ops),
            "fused": len(compute(p_ops)) == len(compute(h_ops)),
        }
    return out


# ------------------------------------------------------------------ report
def plain(x):
    """``x`` with NaN and infinities as None (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def fmt_ratio(x: float) -> str:
    return "-" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.0f}x")


def device_report(device: str, runs: list[dict], truth: dict[str, dict]) -> tuple[dict, list[str]]:
    from hwlat.graph.fusion import CONTROLS

    names = [p.name for p in runs[0]["rules"].pairs]
    rows, lines = [], []
    for name in names:
        ps = [next(p for p in r["rules"].pairs if p.name == name) for r in runs]
        verdicts = [p.verdict for p in ps]
        g = truth[name]
        decided = [p for p in ps if p.decided]
        graph_agree = [p.fused == g["fused"] for p in decided]
        rows.append(
            {
                "pair": name,
                "sets_rule": name not in CONTROLS,
                "default_fused": ps[0].default_fused,
                "runs": [
                    {
                        "share": p.follower_share,
                        "ci": list(p.ci[:2]),
                        "coverage": p.ci[2],
                        "shares": list(p.shares),
                        "verdict": p.verdict,
                        "differs_from_default": p.differs,
                        "follower_cost_ms": p.follower_cost_ms,
                        "head_spread_ms": p.head_spread_ms,
                        "pair_minus_head_spread_ms": p.diff_spread_ms,
                    }
                    for p in ps
                ],
                "runs_agree": len(set(verdicts)) == 1,
                "graph": g,
                "verdicts_agreeing_with_graph": sum(graph_agree),
                "decided_verdicts": len(decided),
            }
        )
    lines.append(f"### {device}\n")
    walls = ", ".join(f"{r['wall_s']:.0f} s" for r in runs)
    n = len(runs[0]["rules"].pairs[0].rounds)
    lines.append(f"Wall time of one `hwlat fusion-rules` run (all {len(names)} pairs, {n} rounds): {walls}.\n")
    head = "| pair | default | " + " | ".join(f"run {i + 1}: share [CI] verdict" for i in range(len(runs)))
    lines.append(
        head
        + " | runs agree | follower ms | cost/noise (cost/head spread) | runtime's graph (pair) | graph | vs graph |"
    )
    lines.append("|" + "---|" * (2 + len(runs)) + ":-:|--:|--:|---|---|:-:|")
    for row, name in zip(rows, names):
        ps = [next(p for p in r["rules"].pairs if p.name == name) for r in runs]
        cells = []
        for p in ps:
            lo, hi, _ = p.ci
            mark = " **≠ default**" if p.differs else ""
            cells.append(f"{p.follower_share:.2f} [{lo:.2f}, {hi:.2f}] {p.verdict}{mark}")
        res = min(p.resolution for p in ps)
        raw = min(p.follower_cost_ms / p.head_spread_ms if p.head_spread_ms > 0 else math.inf for p in ps)
        g = row["graph"]
        dec = row["decided_verdicts"]
        vs = "-" if not dec else ("yes" if row["verdicts_agreeing_with_graph"] == dec else "**no**")
        label = name if row["sets_rule"] else f"{name} (no rule)"
        lines.append(
            f"| {label} | {'fused' if row['default_fused'] else 'separate'} | "
            + " | ".join(cells)
            + f" | {'yes' if row['runs_agree'] else '**no**'} | {ps[0].follower_cost_ms:.3f} | "
            f"{fmt_ratio(res)} ({fmt_ratio(raw)}) | {' '.join(g['pair_ops'])} | "
            f"{'fused' if g['fused'] else 'separate'} | {vs} |"
        )
    agree = sum(r["runs_agree"] for r in rows)
    dec = sum(r["decided_verdicts"] for r in rows)
    gagree = sum(r["verdicts_agreeing_with_graph"] for r in rows)
    differ = sorted({r["pair"] for r in rows if r["sets_rule"] and all(x["differs_from_default"] for x in r["runs"])})
    undecided = sorted({r["pair"] for r in rows if any(x["verdict"] == "undecided" for x in r["runs"])})
    lines.append("")
    lines.append(
        f"Runs agree on {agree} of {len(rows)} pairs; {gagree} of {dec} decided verdicts agree with the runtime's graph"
        f"; undecided in some run: {', '.join(undecided) or 'none'}; differ from the default rules in every run: "
        f"{', '.join(differ) or 'none'}.\n"
    )
    summary = {
        "wall_s": [r["wall_s"] for r in runs],
        "runs_agree": agree,
        "pairs": len(rows),
        "decided_verdicts": dec,
        "agreeing_with_graph": gagree,
        "differ_from_default_every_run": differ,
        "undecided_in_some_run": undecided,
    }
    return {
        "summary": summary,
        "pairs": rows,
        "runs": [{k: v for k, v in r.items() if k != "rules"} for r in runs],
    }, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="onnxruntime-cpu,litert-cpu")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--db-dir", default=tempfile.gettempdir(), help="where the runs' tables go (default: /tmp)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument(
        "--report-only", action="store_true", help="measure nothing: rebuild the report from the tables of the last run"
    )
    args = ap.parse_args()
    import onnxruntime

    from hwlat.devices._base import cpu_model
    from hwlat.devices.litert import _version

    devices = args.devices.split(",")
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {d: [] for d in devices}
    previous = json.loads((Path(args.out) / "fusion_rules.json").read_text()) if args.report_only else None
    for i in range(args.runs):
        for d in devices:
            db = Path(args.db_dir) / f"fr_{SHORT.get(d, d)}_{i + 1}.db"
            runs[d].append(reread(d, db, previous, i) if previous else learn(d, db))
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "ai-edge-litert": _version("ai-edge-litert"),
            "litert-torch": _version("litert-torch"),
            "load_avg_at_end": os.getloadavg(),
        },
        "devices": {},
    }
    md = [
        "# Learned fusion rules: repeated runs and the runtimes' own graphs",
        "",
        f"`python benchmarks/fusion_rules.py` on {cpu_model()} ({os.cpu_count()} cores, shared), one thread; "
        f"ONNX Runtime {onnxruntime.__version__}, ai-edge-litert {_version('ai-edge-litert')}, "
        f"litert-torch {_version('litert-torch')}.",
        "",
        "Each run: every pair's four models (call overhead, pair, head, follower) measured together in 8 independent "
        "rounds; share = (pair - head) / (follower - overhead) per round; CI = 2nd lowest..2nd highest of the 8 "
        "shares (93 % for the median); `fused` when the CI is below 0.5, `separate` when above, else `undecided` (the "
        "default rule is kept). follower ms: its own cost (alone, less a call), run 1. cost/noise: that cost over "
        "the run-to-run spread of pair - head (2nd highest less 2nd lowest of the 8 rounds; in brackets over the "
        "head's own spread, which also holds the machine's drift between rounds, common to a round's four models "
        "and cancelled in the share; the smaller of the runs). The graph column is what the runtime itself runs "
        "(ONNX Runtime's optimised graph; LiteRT's converted file, where XNNPACK's own fusions inside the delegate "
        "are not visible).",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for d in devices:
            rep, lines = device_report(d, runs[d], graph_truth(d, Path(tmp)))
            result["devices"][d] = rep
            md += lines
    result["wall_s"] = previous["wall_s"] if previous else round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion_rules.json").write_text(json.dumps(plain(result), indent=1, allow_nan=False) + "\n")
    (out / "fusion_rules.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
