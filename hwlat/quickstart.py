"""The embedded default job behind ``make quickstart`` / ``hwlat quickstart``.

1. measure a CPU latency table of MBConv-space ops (default protocol; resumable),
2. fit a latency predictor on 80 % of it and evaluate it on the held-out 20 %,
3. write ``report.md`` (and the predictor) to the output folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def run_quickstart(out: Path, n_ops: int = 120, device: str = "onnxruntime-cpu") -> int:
    from hwlat.cli import run_measure
    from hwlat.devices import create_backend
    from hwlat.evaluate import HEADER, metrics, split_ops
    from hwlat.predict import LatencyPredictor, save_predictor
    from hwlat.spaces import get_space
    from hwlat.store import LatencyStore, check_writable
    from hwlat.timing import Protocol

    out = Path(out)
    check_writable(out / "table.db")
    backend = create_backend(device)
    protocol = Protocol()
    ops = get_space("mbconv").sample(n_ops, seed=0)
    t0 = time.perf_counter()
    print(f"[1/2] measuring {len(ops)} MBConv-space ops on {backend.spec.key} -> {out / 'table.db'}", flush=True)
    with LatencyStore(out / "table.db") as store:
        new, skipped = run_measure(backend, ops, store, protocol, jobs=2)
        df = store.frame(backend.spec.key)
        info = next(iter(store.devices().values()))
    df = df[(df["protocol"] == protocol.key) & df["op_key"].isin({op.key for op in ops})]
    t_measure = time.perf_counter() - t0

    print("[2/2] fitting a predictor on 80 % of the table, evaluating on the other 20 %", flush=True)
    train, test = split_ops(df["op_key"], 0.2, seed=0)
    predictor = LatencyPredictor().fit(list(df["op_key"][train]), df["median_ms"][train], device_key=backend.spec.key)
    held_out = metrics(predictor.predict(list(df["op_key"][test])), df["median_ms"][test].to_numpy())
    save_predictor(predictor, out / "predictor.skops", table=str(out / "table.db"), device_info=info)

    lines = [
        "# hwlat quickstart",
        "",
        f"Device `{backend.spec.key}` ({info['hardware']}, {info['runtime']} {info['runtime_version']}); "
        f"protocol `{protocol.key}`.",
        "",
        "## Latency table",
        "",
        f"- ops: {len(df)} ({new} measured now, {skipped} reused) in {t_measure:.0f} s",
        f"- settled (CI ±{100 * protocol.rel_ci:g} % and rounds agree): {100 * df['stable'].mean():.1f} %",
        f"- median latency {df['median_ms'].median():.3f} ms (range {df['median_ms'].min():.3f}–{df['median_ms'].max():.3f} ms)",
        "",
        f"## Predictor ({predictor.model}, trained on {int(train.sum())} ops, held-out {int(test.sum())})",
        "",
        HEADER,
        held_out.row("held-out ops"),
        "",
        f"Files: `{out / 'table.db'}`, `{out / 'predictor.skops'}`; wall time {time.perf_counter() - t0:.0f} s.",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"report: {report}", file=sys.stderr)
    return 0
