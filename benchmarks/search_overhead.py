"""Search overhead: what the latency term costs inside one search step.

    python benchmarks/search_overhead.py          # (prefix `taskset -c 0` on a shared machine)

On the digits ProxylessNAS supernet (9 blocks, batch 64, 32x32) and the DARC
model of ``resnet-digits`` it times, median of ``--rounds`` rounds of
``--steps`` steps each:

- the latency term alone: ``LatencyLUT.expected_latency`` forward + backward
  to the architecture parameters (what a step adds);
- a whole search step with the term and with the loss turned off
  (ProxylessNAS: one weight step + one two-path architecture step, the digits
  schedule; DARC: one joint weight/α step), in steps per second.

The share is term time / step time (goal < 1 %). The predictor is fitted on
the fake device's latencies (the term's cost does not depend on the values).
Writes benchmarks/results/search_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _median_time(fn, steps: int, rounds: int) -> float:
    """Median over rounds of the mean seconds per call (one warm-up round first)."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - t0) / steps)
    return float(np.median(times))


def _predictor(ops):
    from hwlat.devices import create_backend
    from hwlat.predict import LatencyPredictor

    fake = create_backend("fake")
    return LatencyPredictor(model="prior").fit(ops, [fake.true_latency_s(o) * 1e3 for o in ops])


def proxyless(steps: int, rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    from hwlat.search import proxyless as px
    from hwlat.search._common import cosine_sgd
    from hwlat.search.data import digits_loaders

    lut = px.build_lut(_predictor(px.candidate_ops()))
    loaders = digits_loaders(32, batch_size=64, seed=0)
    x, y = next(iter(loaders.train))
    xv, yv = next(iter(loaders.valid))
    torch.manual_seed(0)
    net = px.ProxylessSupernet()
    gen = torch.Generator().manual_seed(0)
    w_opt, _ = cosine_sgd(net.weight_parameters(), 0.05, 10**6)

    def term() -> None:
        lat = lut.expected_latency(net.probs())
        torch.autograd.grad(lat, net.arch_parameters())

    def step(loss: str):
        cfg = px.DIGITS_CONFIG.replace(loss=loss, target_ms=0.06)
        st = px._State(net, lut, cfg, torch.optim.Adam(net.arch_parameters(), lr=1e-3, betas=(0.0, 0.999)), gen)

        def run() -> None:
            net.sample_paths(gen)
            w_opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            w_opt.step()
            px._arch_step_gradient(st, xv, yv)

        return run

    term_s = _median_time(term, steps * 10, rounds)
    with_s = _median_time(step("mul#log"), steps, rounds)
    without_s = _median_time(step("none"), steps, rounds)
    return {
        "term_ms": 1e3 * term_s,
        "step_ms_with": 1e3 * with_s,
        "step_ms_without": 1e3 * without_s,
        "steps_per_s_with": 1 / with_s,
        "steps_per_s_without": 1 / without_s,
        "term_share": term_s / with_s,
        "step_ratio": with_s / without_s,
    }


def darc(steps: int, rounds: int) -> dict:
    import torch
    import torch.nn.functional as F

    from hwlat.search import darc as dc
    from hwlat.search.data import digits_loaders
    from hwlat.spaces import get_space
    from hwlat.zoo import get_network

    model = dc.DARCModel(get_network("resnet-digits")).train()
    lut = dc.cost_table(model, _predictor(get_space("digits-darc").configs()), "latency")
    x, y = next(iter(digits_loaders(32, batch_size=64, seed=0).train))
    alphas = model.alphas()
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=1e-3, momentum=0.9)

    def term() -> None:
        torch.autograd.grad(lut.expected_latency(list(alphas)), alphas)

    def step(with_term: bool):
        def run() -> None:
            w_opt.zero_grad(set_to_none=True)
            for a in alphas:
                a.grad = None
            loss = F.cross_entropy(model(x), y)
            if with_term:
                loss = loss + 0.1 * lut.expected_latency(list(alphas))
            loss.backward()
            w_opt.step()
            with torch.no_grad():
                for layer in model.darc_layers:
                    layer.alpha -= 1e-4 * layer.alpha.grad
                    layer.project()

        return run

    term_s = _median_time(term, steps * 10, rounds)
    with_s = _median_time(step(True), steps, rounds)
    without_s = _median_time(step(False), steps, rounds)
    return {
        "term_ms": 1e3 * term_s,
        "step_ms_with": 1e3 * with_s,
        "step_ms_without": 1e3 * without_s,
        "steps_per_s_with": 1 / with_s,
        "steps_per_s_without": 1 / without_s,
        "term_share": term_s / with_s,
        "step_ratio": with_s / without_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per round (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, median taken (default 5)")
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = parser.parse_args()
    import os

    import torch

    res = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": args.steps,
        "rounds": args.rounds,
        "proxyless": proxyless(args.steps, args.rounds),
        "darc": darc(args.steps, args.rounds),
        "goal_share": 0.01,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_overhead.json").write_text(json.dumps(res, indent=1) + "\n")
    rows = []
    for name, what in (
        ("proxyless", "weight step + two-path arch step (digits supernet, batch 64)"),
        ("darc", "joint weight/α step (resnet-digits, 4 candidates per conv, batch 64)"),
    ):
        r = res[name]
        rows.append(
            f"| {name} | {what} | {r['term_ms']:.3f} | {r['step_ms_with']:.1f} | {r['steps_per_s_with']:.2f} "
            f"| {r['steps_per_s_without']:.2f} | **{100 * r['term_share']:.2f} %** |"
        )
    md = [
        "# Search overhead: the latency term's share of a search step",
        "",
        f"{res['date']}, {res['cpus']} CPU(s) visible, torch {res['torch']} ({res['torch_threads']} thread(s)); "
        f"median of {args.rounds} rounds x {args.steps} steps.",
        "",
        "| search | step | latency term (ms) | step with term (ms) | steps/s with | steps/s without | term share |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Term = `LatencyLUT.expected_latency` forward + backward to the architecture parameters. "
        "Goal: share < 1 %. Steps/s with and without differ by less than the run-to-run noise "
        "when the share is this small.",
        "",
        "Regenerate: `python benchmarks/search_overhead.py`",
    ]
    (out / "search_overhead.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
