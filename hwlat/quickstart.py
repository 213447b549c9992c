"""The embedded default job behind ``make quickstart`` / ``hwlat quickstart``.

1. measure a CPU latency table of MBConv-space ops (default protocol; resumable),
2. fit a latency predictor on 80 % of it and evaluate it on the held-out 20 %,
3. measure the ops of the digits ProxylessNAS space, fit its predictor, run a
   short latency-aware ProxylessNAS search on scikit-learn's digits and
   measure the found network on the device,
4. write ``report.md`` (and the predictors, the found network) to the output folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def run_quickstart(out: Path, n_ops: int = 120, device: str = "onnxruntime-cpu") -> int:
    from hwlat.devices import create_backend
    from hwlat.measure import Protocol
    from hwlat.predict import LatencyPredictor, save_predictor
    from hwlat.predict.evaluate import HEADER, metrics, split_ops
    from hwlat.spaces import get_space
    from hwlat.store import LatencyStore, check_writable
    from hwlat.workflows import run_measure

    if isinstance(n_ops, bool) or not isinstance(n_ops, int) or n_ops < 10:
        raise ValueError(f"Invalid n={n_ops!r}: the quickstart needs at least 10 ops (80 % to fit, 20 % to evaluate)")
    out = Path(out)
    check_writable(out / "table.db")
    backend = create_backend(device)
    protocol = Protocol()
    ops = get_space("mbconv").sample(n_ops, seed=0)
    t0 = time.perf_counter()
    print(f"[1/4] measuring {len(ops)} MBConv-space ops on {backend.spec.key} -> {out / 'table.db'}", flush=True)
    with LatencyStore(out / "table.db") as store:
        new, skipped = run_measure(backend, ops, store, protocol, jobs=2)
        df = store.frame(backend.spec.key)
        info = next(iter(store.devices().values()))
    df = df[(df["protocol"] == protocol.key) & df["op_key"].isin({op.key for op in ops})]
    t_measure = time.perf_counter() - t0

    print("[2/4] fitting a predictor on 80 % of the table, evaluating on the other 20 %", flush=True)
    train, test = split_ops(df["op_key"], 0.2, seed=0)
    predictor = LatencyPredictor().fit(list(df["op_key"][train]), df["median_ms"][train], device_key=backend.spec.key)
    held_out = metrics(predictor.predict(list(df["op_key"][test])), df["median_ms"][test].to_numpy())
    save_predictor(predictor, out / "predictor.skops", table=str(out / "table.db"), device_info=info)

    search_lines = _search(out, backend, protocol)

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
        f"- median latency {df['median_ms'].median():.3f} ms (range "
        f"{df['median_ms'].min():.3f}–{df['median_ms'].max():.3f} ms)",
        "",
        f"## Predictor ({predictor.model}, trained on {int(train.sum())} ops, held-out {int(test.sum())})",
        "",
        HEADER,
        held_out.row("held-out ops"),
        "",
        *search_lines,
        "",
        f"Files: `{out / 'table.db'}`, `{out / 'predictor.skops'}`; wall time {time.perf_counter() - t0:.0f} s.",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:]))
    print(f"report: {report}", file=sys.stderr)
    return 0


def _search(out: Path, backend, protocol) -> list[str]:
    """Steps 3-4: a short latency-aware ProxylessNAS search on digits, measured on the device."""
    import math

    from hwlat.devices._base import torch_threads
    from hwlat.predict import LatencyPredictor, save_predictor
    from hwlat.predict.calibration import CalibratedPredictor
    from hwlat.search.proxyless import (
        DIGITS_BACKBONE,
        DIGITS_CONFIG,
        build_lut,
        calibrate,
        calibration_networks,
        candidate_ops,
        run_proxyless,
    )
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    ops = candidate_ops(DIGITS_BACKBONE)
    print(f"[3/4] measuring the {len(ops)} ops of the digits ProxylessNAS space, fitting their predictor", flush=True)
    with LatencyStore(out / "digits.db") as store:
        run_measure(backend, ops, store, protocol)
        predictor = LatencyPredictor().fit_table(store, device=backend.spec.key)
    save_predictor(predictor, out / "digits-predictor.skops", table=str(out / "digits.db"))
    # These networks are tens of microseconds: per-network overheads matter, so
    # calibrate the op sums on a few measured networks before choosing a target.
    calibrated = calibrate(predictor, backend.spec.key, calibration_networks(DIGITS_BACKBONE, 4))
    lut = build_lut(calibrated, DIGITS_BACKBONE)
    cheapest, dearest = lut.latency_range()
    if not 0 < cheapest < dearest:
        # Measurements caught in a busy phase of a shared machine can fit a calibration that makes the
        # cheapest network cost <= 0 ms: search against the plain sum of op predictions instead.
        print(f"      calibration unusable ({calibrated.describe()}): using the op predictions as they are", flush=True)
        # The calibration networks stay the speed reference of the final measurement.
        calibrated = CalibratedPredictor(predictor, reference=calibrated.reference)
        lut = build_lut(calibrated, DIGITS_BACKBONE)
        cheapest, dearest = lut.latency_range()
    target = round(math.sqrt(cheapest * dearest), 4)  # the middle of the space, on a log scale
    config = DIGITS_CONFIG.replace(target_ms=target, epochs=12, warmup_epochs=4, final_epochs=6)
    print(
        f"[4/4] ProxylessNAS search on digits, loss {config.loss}, target {target} ms "
        f"(space: {cheapest:.4f}-{dearest:.4f} ms predicted), then measuring the found network",
        flush=True,
    )
    # One training thread: the digits models are tiny, and on a shared machine
    # two spinning OpenMP threads next to another busy process slow training 10x or more.
    with torch_threads(1):
        result = run_proxyless(calibrated, config=config, device=backend.spec.key, quiet=False)
    path = result.network.save(out / "found-network.json")
    return [
        f"## Latency-aware search (ProxylessNAS on digits, {config.epochs} epochs, loss `{config.loss}`)",
        "",
        f"- target {target:.4f} ms; the space spans {cheapest:.4f}-{dearest:.4f} ms (predicted)",
        f"- found network: {len(result.network.ops)} ops, choices {list(result.choices)}",
        *headline(result, backend.spec.key),
        f"- predictor: {result.calibration}",
        f"- saved: `{path}` (use with `hwlat predict --network` or `hwlat measure --networks`)",
    ]


def headline(result, device_key: str) -> list[str]:
    """The found network's predicted and measured latency, with the predictor's error apart from the machine's.

    ``result.corrected_ms`` was measured interleaved with the calibration networks (same sessions, same
    shuffled rounds) and put on their calibration-time speed, so its error against the prediction is the
    predictor's; the raw measurement also carries the machine's change of speed since calibration.
    """
    lines = [
        f"- predicted {result.predicted_ms:.4f} ms, measured {result.measured_ms:.4f} ms on {device_key} "
        f"({100 * result.raw_error:+.1f} % at today's machine speed), test accuracy {100 * result.test_acc:.1f} %"
    ]
    if result.predictor_error is not None:
        lines.append(
            f"- **measured interleaved with the calibration networks: {result.corrected_ms:.4f} ms at "
            f"calibration-time speed (predictor error {100 * result.predictor_error:+.1f} %)**; machine speed "
            f"during the run: {result.machine_drift:.2f}x its calibration-time latency"
        )
    return lines
