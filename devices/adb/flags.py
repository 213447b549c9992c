"""The ``benchmark_model`` command line for one block: timing, threads, delegate, precision, pinning."""

from __future__ import annotations

import shlex

from hwlat.devices._base import DeviceSpec
from hwlat.devices.adb.settings import AdbSettings
from hwlat.measure.stop import BlockPlan

__all__ = ["benchmark_command"]


def benchmark_command(
    *,
    spec: DeviceSpec,
    settings: AdbSettings,
    binary: str,
    mask: str,
    pidfile: str,
    remote_model: str,
    plan: BlockPlan,
    warmup: tuple[int, float],
) -> str:
    """The shell command that runs one block: its own warm-up (``warmup``: runs, seconds),
    then ``plan.runs`` timed runs for at least ``plan.min_s``, under ``taskset mask``.

    ``exec`` keeps the pid written to ``pidfile``, so a hung run can be killed by pid, not by name.
    """
    flags = [
        f"--graph={remote_model}",
        f"--num_threads={spec.threads}",
        f"--warmup_runs={warmup[0]}",
        f"--warmup_min_secs={warmup[1]:g}",
        f"--num_runs={plan.runs}",
        f"--min_secs={plan.min_s:g}",
        # benchmark_model must finish well before a silent phone counts as hung
        f"--max_secs={max(1.0, settings.timeout / 2):g}",
    ]
    if spec.option("use_gpu") == "1":
        flags.append("--use_gpu=true")
        if spec.precision == "fp32":
            flags.append("--gpu_precision_loss_allowed=false")
    elif spec.precision == "fp16":
        flags.append("--xnnpack_force_fp16=true")
    if spec.option("use_xnnpack") is not None:
        flags.append(f"--use_xnnpack={'true' if spec.option('use_xnnpack') == '1' else 'false'}")
    if settings.profile:
        flags.append("--enable_op_profiling=true")
    run = " ".join(shlex.quote(a) for a in ["taskset", mask, binary, *flags])
    pid = shlex.quote(pidfile)
    return f"rm -f {pid}; sh -c {shlex.quote(f'echo $$ > {pidfile}; exec {run}')}"
