"""Turn a GPU session's files (benchmarks/gpu_session.py) into shipped tables, results and the comparison.

Runs here, on the CPU machine, after the session's files came back (no GPU needed):

    python benchmarks/gpu_ingest.py SESSION_DIR [--tables datasets_lat] [--results benchmarks/results]
        [--cpu-devices onnxruntime-cpu/cores=0,litert-cpu/cores=0,torch-cpu/cores=0]

1. each table of ``gpu.db`` -> ``TABLES/<backend>-<mode>-b<batch>_mbconv.csv`` and its card
   (``.md``), with ``_repeat.csv`` from ``gpu_repeat.db`` when the session repeated it;
2. ``benchmarks/predictor_accuracy.py`` on those tables -> ``RESULTS/gpu_predictor_accuracy.*``;
3. ``benchmarks/gpu_tables_summary.py`` -> ``RESULTS/gpu_tables.*`` (graphs vs eager, batch 8 vs 1);
4. ``hwlat compare`` of the zoo models: the CPU devices measured here, the GPU columns from the
   session's ``compare.db`` (devices unavailable here are compared from the table)
   -> ``RESULTS/compare/``; the fp16 / energy runs -> ``RESULTS/gpu_zoo_extras.{json,md}``;
5. the session's own report -> ``RESULTS/gpu_session.{json,md}``.

``--cpu-devices none`` leaves out the CPU columns (and step 4 then writes
``RESULTS/compare-gpu/``, leaving the README's CPU comparison alone).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from gpu_session import COMPARE_BUDGET_S, CONFIGS, ZOO, device_key, device_string, table_name  # noqa: E402

CPU_DEVICES = "onnxruntime-cpu/cores=0,litert-cpu/cores=0,torch-cpu/cores=0"
NOTE = """Measured in one GPU session of benchmarks/gpu_session.sh: CUDA events around each run, the
end event synchronised after it (each run starts on an idle GPU: a latency, launches included),
warm-up until successive 25 ms windows agree, cuDNN autotuning on. The session measures a
seeded prefix of the items (MBConv ops, the 71 backbone configs and random networks taking
turns) until its deadline, so the counts above are what fitted in the session."""


def run(cmd: list[str]) -> str:
    print("+", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc.stdout


def export_tables(session: Path, tables: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "datasets_lat"))
    from make_card import card

    from hwlat.store import LatencyStore

    tables.mkdir(parents=True, exist_ok=True)
    csvs, n_nets = [], {}
    with LatencyStore(session / "gpu.db", readonly=True) as store:
        keys = store.device_keys()
        for key in keys:
            csv = tables / f"{table_name(key)}_mbconv.csv"
            store.export(csv, key)
            csvs.append(csv)
            n_nets[key] = sum(m.kind == "network" for m in store.measurements(key))
    repeat_db = session / "gpu_repeat.db"
    repeats: dict[str, Path] = {}
    if repeat_db.exists():
        with LatencyStore(repeat_db, readonly=True) as rep:
            for key in rep.device_keys():
                path = tables / f"{table_name(key)}_mbconv_repeat.csv"
                rep.export(path, key)
                repeats[key] = path
    for key, csv in zip(keys, csvs):
        text = card(
            csv,
            repeats.get(key),
            NOTE,
            networks=f"random ProxylessNAS-backbone networks at 224x224 (the first "
            f"{n_nets[key]} of `random:200`, seed 0)",
            regenerate="`bash benchmarks/gpu_session.sh` on the GPU, then "
            "`python benchmarks/gpu_ingest.py SESSION_DIR` here (docs/gpu.md)",
        )
        csv.with_suffix(".md").write_text(text)
        print(f"wrote {csv} and its card ({key})", file=sys.stderr)
    return csvs


def zoo_extras(session: Path, results: Path, backend: str) -> Path | None:
    """fp16 and NVML energy of the zoo models (the session's extras stage), as a small table."""
    from hwlat.store import LatencyStore
    from hwlat.workflows import resolve_networks

    db = session / "compare.db"
    if not db.exists():
        return None
    nets = resolve_networks(ZOO)
    keys = {
        label: device_key(device_string(backend, "graph", 8, 0, option))
        for label, option in (("fp32", ""), ("fp16", "fp16"), ("energy", "energy=1"))
    }
    with LatencyStore(db, readonly=True) as store:
        rows = {label: {m.op_key: m for m in store.measurements(key)} for label, key in keys.items()}
    if not rows["fp16"] and not rows["energy"]:
        return None
    out = []
    for net in nets:
        rec: dict = {"model": net.name, "mmacs": net.flops / 1e6}
        for label in ("fp32", "fp16", "energy"):
            m = rows[label].get(net.key)
            if m is not None:
                rec[f"{label}_ms"] = m.median_ms
                if label == "energy":
                    rec.update({k: v for k, v in m.extra if k.startswith("energy_")})
        out.append(rec)
    md = [
        f"# Zoo models at batch 8 with CUDA graphs: fp32, fp16 and energy ({backend})",
        "",
        "| model | MMACs/image | fp32 ms | fp16 ms | fp16 speed-up | "
        "energy per batch (mJ) | mean power (W) | window (s) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in out:
        f32, f16 = r.get("fp32_ms"), r.get("fp16_ms")
        md.append(
            f"| {r['model']} | {r['mmacs']:.0f} | {_num(f32, 3)} | {_num(f16, 3)} | "
            f"{f'{f32 / f16:.2f}x' if f32 and f16 else '–'} | {_num(r.get('energy_mj'), 1)} | "
            f"{_num(r.get('energy_power_w'), 0)} | {_num(r.get('energy_window_s'), 2)} |"
        )
    md += [
        "",
        "Energy: NVML's total-energy counter over a window of at least 1 s aligned to counter updates,",
        "each run synchronised (latency-style, not back-to-back); per batch of 8 images, board power.",
    ]
    results.mkdir(parents=True, exist_ok=True)
    (results / "gpu_zoo_extras.json").write_text(json.dumps(out, indent=1) + "\n")
    path = results / "gpu_zoo_extras.md"
    path.write_text("\n".join(md) + "\n")
    return path


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("session", type=Path, help="folder with gpu.db, gpu_repeat.db, compare.db, session.json")
    ap.add_argument("--tables", type=Path, default=ROOT / "datasets_lat")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument(
        "--cpu-devices", default=CPU_DEVICES, help=f"measured here for the comparison ({CPU_DEVICES}; none)"
    )
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "gpu-ingest", help="scratch folder (compare's table)")
    args = ap.parse_args(argv)
    report = json.loads((args.session / "session.json").read_text())
    backend = report.get("backend", "cuda")
    python, hwlat = sys.executable, [sys.executable, "-m", "hwlat.cli"]

    csvs = export_tables(args.session, args.tables)
    names = [c.name.removesuffix("_mbconv.csv") for c in csvs]
    if names:
        print(
            run(
                [
                    python,
                    str(HERE / "predictor_accuracy.py"),
                    "--data",
                    str(args.tables),
                    "--out",
                    str(args.results),
                    "--devices",
                    ",".join(names),
                    "--name",
                    "gpu_predictor_accuracy",
                ]
            )
        )
        print(
            run(
                [
                    python,
                    str(HERE / "gpu_tables_summary.py"),
                    *map(str, csvs),
                    "--out",
                    str(args.results / "gpu_tables"),
                ]
            )
        )

    if (args.session / "compare.db").exists():
        args.work.mkdir(parents=True, exist_ok=True)
        db = args.work / "compare-all.db"
        shutil.copyfile(args.session / "compare.db", db)
        gpu = [device_string(backend, m, b, 0) for m, b in CONFIGS]
        cpu = [] if args.cpu_devices == "none" else args.cpu_devices.split(",")
        folder = args.results / ("compare" if cpu else "compare-gpu")
        gpu_name = next((s.get("detail", {}).get("gpu") for s in report["stages"] if s["name"] == "env"), None) or "GPU"
        title = (
            f"Zoo models on one CPU core and on {gpu_name} (224x224, fp32; GPU: PyTorch eager and CUDA graphs, "
            "batch 1 and 8)"
        )
        print(
            run(
                [
                    *hwlat,
                    "compare",
                    "--models",
                    ZOO,
                    "--devices",
                    ",".join(cpu + gpu),
                    "--budget",
                    f"{COMPARE_BUDGET_S:g}",
                    "--db",
                    str(db),
                    "--out",
                    str(folder),
                    "--title",
                    title,
                    "-q",
                ]
            )
        )
        extras = zoo_extras(args.session, args.results, backend)
        if extras is not None:
            print(extras.read_text())

    args.results.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.session / "session.json", args.results / "gpu_session.json")
    shutil.copyfile(args.session / "session.md", args.results / "gpu_session.md")
    print(f"ingested {len(csvs)} tables ({', '.join(names)}) into {args.tables}; results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
