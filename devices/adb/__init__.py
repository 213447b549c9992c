"""Android phones over adb: TFLite ``benchmark_model`` on the big cores (the *runner*).

Device ``adb:SERIAL``. Per op: convert to ``.tflite`` (:func:`hwlat.devices.litert.convert_tflite`,
NHWC I/O), push it, run ``benchmark_model`` under ``taskset`` on the big cores,
read its output with :mod:`hwlat.devices.adb.output` (the *parser*), and
remove the file. ``adbutils`` is imported lazily; hwlat never starts an adb
server (it fails with a clear message instead) and every call has a timeout.

How it maps onto the timing protocol
------------------------------------
``benchmark_model`` reports statistics, not per-run times, and starting it
(process, model load, delegate) costs far more than one run. So one *block*
of the measurement loop (:func:`hwlat.measure.measure`, the same loop as every
backend) is one invocation; the backend gives the loop its hooks
(:mod:`hwlat.devices.adb.backend`):

- ``prepare`` converts the op and pushes the model; ``warm_up`` runs nothing:
  each invocation does its own warm-up (``--warmup_runs``, ``--warmup_min_secs``
  from the protocol);
- ``time_block`` runs the block the stop rule plans: with the adaptive rule
  timed runs for ``round_s`` (``--num_runs=1 --min_secs=round_s``), with the
  fixed rule ``benchmark_model``'s own defaults (50 runs for at least 1 s);
  the stat line gives the round's median;
- the loop groups, shuffles and stops as for any backend (``interleave``,
  ``min_rounds``, CI and round spread, ``budget_s``, ``max_rounds``).

Each final op is handed to ``on_result`` at once (the store commits it), so a
run that fails or is killed loses at most the group in flight and the same
command resumes.

Before each invocation the phone is gated: wait (bounded) until the hottest CPU
thermal zone is below ``max_temp`` and the big cores are back near full speed,
then idle ``cooldown`` seconds. With the ``performance``/``userspace`` governor
"full speed" means ``scaling_cur_freq``; with load-following governors
(schedutil, ...) an idle core sits at a low current frequency, so the throttle
cap ``scaling_max_freq`` is compared with ``cpuinfo_max_freq`` instead. The
temperature and frequency ratio seen are stored in ``Measurement.extra``.

Device options (``adb:SERIAL/name=value``; ``--bench-binary`` sets ``bench_binary``):
``cores`` (e.g. ``6,7`` or ``4-7``; default: the fastest cluster(s) covering
``threads``), ``use_gpu=1``, ``use_xnnpack=0|1`` change what is measured and are
part of the device key. Run settings, not in the key: ``bench_binary``,
``adb_host``/``adb_port`` (default ``$ANDROID_ADB_SERVER_HOST``/``PORT``,
127.0.0.1:5037), ``timeout`` (s of silence before a call counts as hung, 120),
``retries`` (3), ``backoff`` (s, 1.0, doubling), ``keep=1`` (leave pushed files),
``max_temp`` (°C, 50), ``freq_ratio`` (0.9), ``thermal_wait`` (s, 60),
``cooldown`` (s, 0), ``profile=1`` (``--enable_op_profiling``), ``remote_dir``.

Modules: ``settings`` (options), ``transport`` (the adb connection, discovery),
``thermal`` (big cores, sysfs snapshot), ``binary`` (ELF/ABI of benchmark_model),
``flags`` (its command line), ``output`` (the parser), ``backend`` (the runner).
"""

from __future__ import annotations

from hwlat.devices.adb.backend import AdbBackend
from hwlat.devices.adb.binary import BINARY_URL, ELF_MACHINE, elf_abi
from hwlat.devices.adb.errors import AdbDeviceError
from hwlat.devices.adb.settings import AdbSettings
from hwlat.devices.adb.thermal import big_cores
from hwlat.devices.adb.transport import list_phones

__all__ = [
    "AdbBackend",
    "AdbDeviceError",
    "AdbSettings",
    "BINARY_URL",
    "ELF_MACHINE",
    "big_cores",
    "elf_abi",
    "list_phones",
]
