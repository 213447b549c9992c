"""Prediction speed: ops per second in batches of 10^4, networks per second.

    python benchmarks/predictor_speed.py

Fits the default predictor on the shipped onnxruntime-cpu table, then times
(median of 5 rounds) batch op prediction (with the per-op feature cache
cleared, and warm) and whole-network prediction of 200 random backbone
networks, one call per batch and one call per network.
Writes benchmarks/results/predictor_speed.{json,md}.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    from hwlat.predict import LatencyPredictor
    from hwlat.spaces import get_space, sample_networks
    from hwlat.store import LatencyStore

    store = LatencyStore(":memory:")
    store.import_file(HERE.parent / "datasets_lat" / "onnxruntime-cpu_mbconv.csv")
    p = LatencyPredictor().fit_table(store)
    # The mbconv space has ~9.8k distinct configs: top the batch up to 10^4 by repetition.
    ops = get_space("mbconv").sample(9_000, seed=7)
    ops = (ops * 2)[:10_000]
    nets = sample_networks(200, seed=3)
    from hwlat import predict as predict_mod

    def cold() -> None:  # features not cached yet: the first call on new ops
        predict_mod._feature_row.cache_clear()
        predict_mod._prior_row.cache_clear()
        p.predict(ops)

    cold_s = timed(cold)
    batch_s = timed(lambda: p.predict(ops))
    nets_batch_s = timed(lambda: p.predict_network(nets))
    one_net_s = timed(lambda: [p.predict_network(n) for n in nets[:50]]) / 50
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "model": p.model,
        "ops_per_s_batch_10k_cold": len(ops) / cold_s,
        "ops_per_s_batch_10k": len(ops) / batch_s,
        "networks_per_s_batched_200": len(nets) / nets_batch_s,
        "networks_per_s_one_call_each": 1 / one_net_s,
        "ms_per_network_one_call": 1e3 * one_net_s,
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "predictor_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    md = "\n".join(
        [
            "# Predictor speed (default model, fitted on the shipped onnxruntime-cpu table; median of 5 rounds)",
            "",
            "| what | rate |",
            "|---|---|",
            f"| ops, one batch of 10^4, new ops (features computed) | {res['ops_per_s_batch_10k_cold']:,.0f} ops/s |",
            f"| ops, one batch of 10^4, features cached (search loops) | {res['ops_per_s_batch_10k']:,.0f} ops/s |",
            f"| networks, one call for 200 | {res['networks_per_s_batched_200']:,.0f} networks/s |",
            f"| networks, one call each | {res['networks_per_s_one_call_each']:,.0f} networks/s "
            f"({res['ms_per_network_one_call']:.2f} ms each) |",
            "",
            "Regenerate: `python benchmarks/predictor_speed.py`.",
        ]
    )
    (out / "predictor_speed.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
