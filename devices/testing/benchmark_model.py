"""The emulated ``benchmark_model``: runs the pushed ``.tflite`` in LiteRT on this host, prints as the real tool."""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from typing import TYPE_CHECKING

from hwlat.devices._base import quiet_fds
from hwlat.devices.adb.output import format_stat
from hwlat.devices.testing.faults import Drop

if TYPE_CHECKING:
    from hwlat.devices.testing.phone import FakePhone

__all__ = ["EmulatedBenchmarkModel"]

_QUIET = threading.Lock()  # quiet_fds swaps process-wide fds: one thread at a time


class EmulatedBenchmarkModel:
    """The emulated ``benchmark_model``: the LiteRT interpreter on this host, real output format."""

    FLAGS = {
        "graph": "",
        "num_threads": "-1",
        "num_runs": "50",
        "min_secs": "1.0",
        "max_secs": "150.0",
        "warmup_runs": "1",
        "warmup_min_secs": "0.5",
        "run_delay": "-1",
        "use_gpu": "false",
        "use_xnnpack": "true",
        "use_nnapi": "false",
        "enable_op_profiling": "false",
        "xnnpack_force_fp16": "false",
        "gpu_precision_loss_allowed": "true",
        "verbose": "false",
    }

    def __init__(self, phone: FakePhone, argv: list[str], write, mask: int | None, cancel: threading.Event) -> None:
        self.phone, self.argv, self._write, self.mask, self.cancel = phone, argv, write, mask, cancel

    def out(self, text: str) -> None:
        self._write(1, (text + "\n").encode())

    def err(self, text: str) -> None:
        self._write(2, (text + "\n").encode())

    def main(self) -> int:
        phone, faults = self.phone, self.phone.faults
        flags, unknown = dict(self.FLAGS), []
        for arg in self.argv:
            m = re.fullmatch(r"--([\w]+)=(.*)", arg)
            if m and m.group(1) in flags:
                flags[m.group(1)] = m.group(2)
            else:
                unknown.append(arg)
        threads = int(flags["num_threads"])
        record = {"mask": self.mask, "argv": list(self.argv), "threads": threads, "killed": False}
        phone.runs.append(record)
        armed = len(phone.runs) > faults.after_runs
        self.out("INFO: STARTING!")
        if unknown:
            self.err(f"ERROR: Unconsumed cmdline flags: {' '.join(unknown)}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        if armed and faults.hang_runs > 0:
            faults.hang_runs -= 1
            deadline = time.monotonic() + faults.hang_s
            while not self.cancel.is_set() and not phone.stopping.is_set() and time.monotonic() < deadline:
                self.cancel.wait(0.05)
            record["killed"] = self.cancel.is_set()
            return 137  # killed
        if armed and faults.malformed_runs > 0:
            faults.malformed_runs -= 1
            self.out("INFO: \x00\x17garbled: count=?? first=ab curr=")
            self.out("Segmentation fault (emulated garbage)")
            return 0
        self.out("INFO: Log parameter values verbosely: [0]")
        self.out(f"INFO: Min num runs: [{flags['num_runs']}]")
        self.out(f"INFO: Num threads: [{threads}]")
        self.out(f"INFO: Min warmup runs: [{flags['warmup_runs']}]")
        graph = flags["graph"]
        self.out(f"INFO: Graph: [{graph}]")
        if not graph:
            self.err("ERROR: Please specify the name of your TF Lite input file with --graph")
            self.err("ERROR: Benchmarking failed.")
            return 1
        model = phone.read(graph)
        if model is None:
            self.err(f"ERROR: Could not open '{graph}'.")
            self.err(f"ERROR: Failed to mmap model {graph}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        if flags["use_gpu"] in ("1", "true"):
            self.out("INFO: Use gpu: [1]")
            self.err("ERROR: GPU delegate is not available on this emulated phone (it runs on the host CPU).")
            self.err("ERROR: Failed to apply GPU delegate.")
            self.err("ERROR: Benchmarking failed.")
            return 1
        self.out(f"INFO: Loaded model {graph}")
        record["model_sha256"] = hashlib.sha256(model).hexdigest()
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        t0 = time.perf_counter()
        use_xnnpack = flags["use_xnnpack"] not in ("0", "false")
        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with _QUIET, quiet_fds():  # LiteRT logs to fd 2 itself; the emulated tool prints its own lines
                interp = Interpreter(
                    model_content=model,
                    num_threads=threads if threads > 0 else None,
                    experimental_op_resolver_type=resolver,
                )
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            self.err(f"ERROR: {exc}")
            self.err("ERROR: Benchmarking failed.")
            return 1
        self.out("INFO: Initialized TensorFlow Lite runtime.")
        if use_xnnpack:
            self.out("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
        init_us = int((time.perf_counter() - t0) * 1e6)
        self.out(f"INFO: The input model file size (MB): {len(model) / 1e6:g}")
        self.out(f"INFO: Initialized session in {init_us / 1e3:g}ms.")
        rng = np.random.default_rng(0)
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], (rng.random(d["shape"]) - 0.5).astype(d["dtype"]))
        max_secs = float(flags["max_secs"])
        warm = self._phase(
            interp, int(flags["warmup_runs"]), float(flags["warmup_min_secs"]), max_secs, float(flags["run_delay"])
        )
        if armed and faults.disconnect_runs > 0:
            faults.disconnect_runs -= 1
            phone.offline_until = time.monotonic() + faults.offline_s
            raise Drop("emulated cable pull")
        timed = self._phase(
            interp, int(flags["num_runs"]), float(flags["min_secs"]), max_secs, float(flags["run_delay"])
        )
        record["timed_us"] = list(timed)
        avg = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
        self.out(
            f"INFO: Inference timings in us: Init: {init_us}, First inference: {warm[0] if warm else 0}, "
            f"Warmup (avg): {avg(warm):g}, Inference (avg): {avg(timed):g}"
        )
        self.out(
            "INFO: Note: as the benchmark tool itself affects memory footprint, the following is only "
            "APPROXIMATE to the actual memory footprint of the model at runtime. "
            "Take the information at your discretion."
        )
        self.out("INFO: Memory footprint delta from the start of the tool (MB): init=1.5 overall=1.75")
        if flags["enable_op_profiling"] in ("1", "true"):
            self._profile(timed, use_xnnpack)
        return 0

    def _phase(self, interp, runs: int, min_secs: float, max_secs: float, delay: float) -> list[int]:
        self.out(
            f"INFO: Running benchmark for at least {runs} iterations and at least {min_secs:g} seconds "
            f"but terminate if exceeding {max_secs:g} seconds."
        )
        times: list[int] = []
        clock, invoke = time.perf_counter_ns, interp.invoke
        start = clock()
        while True:
            elapsed = (clock() - start) * 1e-9
            if (len(times) >= runs and elapsed >= min_secs) or elapsed >= max_secs or self.cancel.is_set():
                break
            t0 = clock()
            invoke()
            times.append((clock() - t0) // 1000)
            if delay > 0:
                time.sleep(delay)
        self.out("INFO: " + format_stat(times))
        self.out("")
        return times

    def _profile(self, times: list[int], xnnpack: bool) -> None:
        avg_ms = (sum(times) / len(times) / 1e3) if times else 0.0
        first_ms = times[0] / 1e3 if times else 0.0
        kind = "TfLiteXNNPackDelegate" if xnnpack else "DELEGATE"
        self.out("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
        self.out("============================== Run Order ==============================")
        self.out(
            "\t             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]"
        )
        self.out(
            f"\t{kind:>24}\t{first_ms:9.3f}\t{avg_ms:9.3f}\t100.000%\t100.000%\t     0.000\t        1\t[hwlat op]:0"
        )
        self.out("")
        self.out(f"Timings (microseconds): {format_stat(times, percentiles=False)}")
        self.out("Memory (bytes): count=0")
        self.out("1 nodes observed")
