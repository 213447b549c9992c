"""One GPU session, sized to a deadline: the GPU tests, the zoo comparison and the GPU tables.

Run on the GPU machine (through ``bash benchmarks/gpu_session.sh``, which makes
hwlat importable there without pip); everything it measures lands in ``OUT``:

    python benchmarks/gpu_session.py --out OUT [--deadline-s 480] [--backend cuda] [--gpu 0]

Stages, in order of what matters most if time runs out:

1. ``env``      torch, CUDA, GPU, driver and every backend's availability;
2. ``compare``  the zoo models (proxyless-gpu/cpu/mobile, mobilenetv2, resnet18) on
                ``cuda`` eager and CUDA graphs at batch 1 and 8, with the protocol of
                the README's CPU comparison (budget 3 s) -> ``compare.db``;
3. ``tests``    ``pytest -m gpu tests/test_cuda.py`` (bounded by ``--tests-timeout-s``);
4. ``tables``   the MBConv tables of the four configurations, measured in chunks that
                take turns (ops of the ``mbconv`` space, the 71 ``mbconv-backbone``
                configs and ``random:N`` networks, each list in its seed-0 order, so a
                shorter session measures a prefix of a longer one) until the deadline
                minus ``--reserve-s`` -> ``gpu.db``;
5. ``repeat``   the first ops and networks of each table measured again in the reserve:
                the noise floor -> ``gpu_repeat.db``;
6. ``extras``   if time is left: the zoo models in fp16 and with NVML energy per inference.

Each chunk's rows are written as they finish; a chunk that would not end before the
deadline is not started, and a timer stops a late one at the deadline (what it finished
is kept). ``session.json`` / ``session.md`` (stages, seconds, rows, errors, seconds per
row for sizing the next session) are rewritten after every stage. Nothing here runs
longer than ``--deadline-s`` plus the stage in flight's clean-up.

``--backend fake`` rehearses the whole session without a GPU (the tests in
tests/test_gpu_session.py do), ``--device-options realtime=1`` makes the fake device
take real time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ZOO = "proxyless-gpu,proxyless-cpu,proxyless-mobile,mobilenetv2,resnet18"
CONFIGS = (("eager", 1), ("graph", 1), ("eager", 8), ("graph", 8))
COMPARE_BUDGET_S = 3.0  # the protocol of benchmarks/results/compare (the README's CPU columns)


class Deadline(BaseException):
    """Raised by the session timer inside a measurement: stop now, keep what is saved."""


def device_string(backend: str, mode: str, batch: int, gpu: int, options: str = "") -> str:
    """``cuda/mode=graph`` style device strings (``/bN`` when batch > 1, ``/gpu=K`` when K > 0)."""
    parts = [backend]
    if batch != 1:
        parts.append(f"b{batch}")
    parts.append(f"mode={mode}")
    if gpu:
        parts.append(f"gpu={gpu}")
    if options.strip("/"):  # extra parts (fp16/energy=1) pass through as the user wrote them
        parts.append(options.strip("/"))
    return "/".join(parts)


def table_name(device_key: str) -> str:
    """``cuda/t1/b8/fp32/mode=graph`` -> ``cuda-graph-b8`` (the shipped CSV is NAME_mbconv.csv)."""
    from hwlat.devices import DeviceSpec

    spec = DeviceSpec.parse(device_key)
    return f"{spec.backend}-{spec.option('mode', 'eager')}-b{spec.batch}"


def interleave(lists: Sequence[Sequence[Any]], shares: Sequence[int]) -> list[Any]:
    """Merge ``lists`` taking ``shares[i]`` items of list i per turn, until all are used.

    >>> interleave([[1, 2, 3, 4], ["a", "b"]], [2, 1])
    [1, 2, 'a', 3, 4, 'b']
    """
    out, pos = [], [0] * len(lists)
    while any(p < len(lst) for p, lst in zip(pos, lists)):
        for i, (lst, k) in enumerate(zip(lists, shares)):
            out.extend(lst[pos[i] : pos[i] + k])
            pos[i] += k
    return out


class Session:
    """Stages with a shared deadline, a timer that stops a late measurement, and a report."""

    def __init__(self, out: Path, deadline_s: float, meta: dict[str, Any]) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.deadline = self.t0 + deadline_s
        self.report: dict[str, Any] = {
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "deadline_s": deadline_s,
            **meta,
            "stages": [],
            "tables": {},
            "errors": [],
        }
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "session.log", "a", buffering=1)

    # -------------------------------------------------------------- clock
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        line = f"[{self.elapsed():7.1f} s] {text}"
        print(line, flush=True)
        self.log_file.write(line + "\n")

    def guard(self, until: float | None = None) -> _Timer:
        """A context in which :class:`Deadline` is raised at ``until`` (default: the deadline)."""
        return _Timer((until or self.deadline) - time.monotonic())

    # -------------------------------------------------------------- stages
    def stage(self, name: str, fn: Callable[[], dict[str, Any] | None], *, min_left_s: float = 0.0) -> dict[str, Any]:
        """Run one stage; its failure is recorded, never fatal to the session."""
        rec: dict[str, Any] = {"name": name, "started_s": round(self.elapsed(), 1)}
        if self.left() < min_left_s:
            rec.update(status="skipped", why=f"{self.left():.0f} s left, the stage needs {min_left_s:.0f} s")
            self.log(f"{name}: skipped ({rec['why']})")
        else:
            self.log(f"{name}: start ({self.left():.0f} s left)")
            t = time.monotonic()
            try:
                rec["detail"] = fn() or {}
                rec["status"] = rec["detail"].pop("status", "ok")
            except Deadline:
                rec["status"] = "deadline"
            except Exception as exc:  # recorded and reported; the next stage still runs
                rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
                self.report["errors"].append(
                    {"stage": name, "error": rec["error"], "traceback": traceback.format_exc()}
                )
                self.log(traceback.format_exc())
            rec["seconds"] = round(time.monotonic() - t, 1)
            self.log(f"{name}: {rec['status']} in {rec['seconds']} s")
        self.report["stages"].append(rec)
        self.write()
        return rec

    def write(self) -> None:
        self.report["elapsed_s"] = round(self.elapsed(), 1)
        (self.out / "session.json").write_text(json.dumps(self.report, indent=1, default=str) + "\n")
        (self.out / "session.md").write_text(markdown(self.report))


class _Timer:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> _Timer:
        if self.seconds <= 0:
            raise Deadline
        self._old = signal.signal(signal.SIGALRM, _raise_deadline)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)


def _raise_deadline(signum, frame) -> None:
    # Armed again: a signal's exception raised while Python runs a weakref callback or __del__ is
    # dropped ("Exception ignored in ..."), so the timer fires until one gets through (__exit__ disarms it).
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    raise Deadline


# ------------------------------------------------------------------ stages
def stage_env(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hwlat.devices import get_backend, list_backends

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "host": platform.node(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(args.gpu)
        env.update(
            gpu=props.name,
            sms=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
        )
    env["backends"] = {name: get_backend(name).check() or "yes" for name in list_backends()}
    try:
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,clocks.max.sm,power.limit,temperature.gpu",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        env["nvidia_smi"] = f"unavailable: {exc}"
    return env


def measure_into(
    session: Session, db: Path, device: str, items: Sequence[Any], protocol: Any, until: float | None = None
) -> tuple[int, str]:
    """Measure what ``db`` lacks of ``items`` on ``device`` before ``until``; (new rows, device key)."""
    from hwlat.devices import create_backend
    from hwlat.store import LatencyStore
    from hwlat.workflows import run_measure

    backend = create_backend(device)
    with LatencyStore(db) as store:
        before = len(store.done_keys(backend.spec.key, protocol.key))
        try:
            with session.guard(until):
                run_measure(backend, items, store, protocol, quiet=True)
        finally:
            new = len(store.done_keys(backend.spec.key, protocol.key)) - before
    return new, backend.spec.key


def stage_compare(session: Session, args: argparse.Namespace, devices: Sequence[str], name: str = "compare") -> dict:
    from hwlat.measure import Protocol
    from hwlat.workflows import resolve_networks

    nets = resolve_networks(args.models)
    protocol = Protocol(budget_s=COMPARE_BUDGET_S)
    done: dict[str, Any] = {}
    for device in devices:
        t = time.monotonic()
        new, key = measure_into(session, session.out / "compare.db", device, nets, protocol)
        done[key] = {"new_rows": new, "seconds": round(time.monotonic() - t, 1)}
        session.log(f"{name}: {key}: {new} models in {done[key]['seconds']} s")
    return {"protocol": protocol.key, "devices": done}


def stage_tests(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    timeout = max(10.0, min(args.tests_timeout_s, session.left() - args.reserve_s))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "gpu",
        "-p",
        "no:cacheprovider",
        "-ra",
        str(ROOT / "tests" / "test_cuda.py"),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        session.log_file.write(out)
        return {"status": "timeout", "timeout_s": round(timeout), "tail": out[-2000:]}
    session.log_file.write(proc.stdout + proc.stderr)
    counts = re.compile(r"\d+ (passed|failed|skipped|errors?|deselected)")
    summary = next((line for line in reversed(proc.stdout.splitlines()) if counts.search(line)), "")
    return {
        "status": "ok" if proc.returncode == 0 else "failed",
        "returncode": proc.returncode,
        "summary": summary.strip("= "),
        "tail": proc.stdout[-3000:],
    }


def table_items(args: argparse.Namespace) -> list[Any]:
    """The table's items in the order they are measured: ops, backbone configs and networks taking turns."""
    from hwlat.spaces import get_space
    from hwlat.workflows import resolve_networks

    ops = get_space("mbconv").sample(args.n_ops, seed=0)
    grid = get_space("mbconv-backbone").sample(71, seed=0)
    nets = resolve_networks(f"random:{args.n_nets}", seed=0)
    merged = interleave([ops, grid, nets], [16, 3, 4])
    return list({it.key: it for it in merged}.values())  # half the sampled ops are backbone configs too


def stage_tables(
    session: Session, args: argparse.Namespace, devices: Sequence[str], items: Sequence[Any]
) -> dict[str, Any]:
    """Chunks of ``args.chunk`` items per device, the devices taking turns, until deadline - reserve."""
    from hwlat.measure import Protocol

    protocol = Protocol()
    until = session.deadline - args.reserve_s
    db = session.out / "gpu.db"
    pos = {d: 0 for d in devices}
    cost: dict[str, float] = {}  # seconds per item, per device (from its last chunk)
    status = "ok"
    while status == "ok" and any(pos[d] < len(items) for d in devices):
        for device in devices:
            if pos[device] >= len(items):
                continue
            chunk = items[pos[device] : pos[device] + args.chunk]
            if time.monotonic() + cost.get(device, args.first_item_s) * len(chunk) > until:
                status = "deadline"  # this chunk would not end in time: leave the rest to the reserve
                break
            t = time.monotonic()
            try:
                new, key = measure_into(session, db, device, chunk, protocol, until)
            except Deadline:
                status = "deadline"
                break
            except Exception as exc:  # one bad op should not end the session: log it, skip the chunk
                session.report["errors"].append(
                    {
                        "stage": "tables",
                        "device": device,
                        "items": pos[device],
                        "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(),
                    }
                )
                session.log(f"tables: {device}: chunk at {pos[device]} failed: {type(exc).__name__}: {exc}")
                new, key = 0, None
            seconds = time.monotonic() - t
            pos[device] += len(chunk)
            cost[device] = seconds / len(chunk)
            if key is not None:
                rec = session.report["tables"].setdefault(key, {"device": device, "rows": 0, "seconds": 0.0})
                rec["rows"] += new
                rec["seconds"] = round(rec["seconds"] + seconds, 1)
                rec["s_per_row"] = round(rec["seconds"] / max(rec["rows"], 1), 3)
    session.write()
    return {"status": status, "items_per_device": len(items), "reached": pos}


def stage_repeat(
    session: Session, args: argparse.Namespace, devices: Sequence[str], items: Sequence[Any]
) -> dict[str, Any]:
    """The first measured ops and networks of each table again, into a separate table (the noise floor).

    The time left is shared equally among the devices still to do.
    """
    from hwlat.measure import Protocol
    from hwlat.store import LatencyStore

    protocol = Protocol()
    db = session.out / "gpu.db"
    if not db.exists():
        return {"status": "skipped", "why": "no table to repeat"}
    with LatencyStore(db, readonly=True) as store:
        done = {d: store.done_keys(device_key(d), protocol.key) for d in devices}
    rows: dict[str, Any] = {}
    end = session.deadline - 5.0
    for i, device in enumerate(devices):
        have = [it for it in items if it.key in done[device]]
        ops = [it for it in have if it.kind != "network"][: args.repeat_ops]
        nets = [it for it in have if it.kind == "network"][: args.repeat_nets]
        until = min(end, time.monotonic() + max(end - time.monotonic(), 0.0) / (len(devices) - i))
        try:
            new, key = measure_into(
                session, session.out / "gpu_repeat.db", device, interleave([ops, nets], [6, 1]), protocol, until
            )
            rows[key] = new
        except Deadline:
            rows[device_key(device)] = "stopped at its share of the time"
    return {"rows": rows}


def device_key(device: str) -> str:
    from hwlat.devices import DeviceSpec

    return DeviceSpec.parse(device).key


def single_file(db: Path) -> None:
    """Fold the WAL into ``db`` and switch it to a rollback journal: one self-contained file to copy back."""
    import sqlite3

    if db.exists():
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()


# ------------------------------------------------------------------ report
def markdown(report: dict[str, Any]) -> str:
    env = next((s.get("detail", {}) for s in report["stages"] if s["name"] == "env"), {})
    lines = [
        f"# GPU session {report['started_utc']}",
        "",
        f"GPU: {env.get('gpu', '?')}; torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda', '?')}); "
        f"nvidia-smi: {env.get('nvidia_smi', '?')}; deadline {report['deadline_s']:.0f} s, "
        f"elapsed {report.get('elapsed_s', 0):.0f} s.",
        "",
        "| stage | status | seconds | detail |",
        "|---|---|---|---|",
    ]
    for s in report["stages"]:
        detail = s.get("detail", {})
        text = s.get("why") or s.get("error") or detail.get("summary") or ""
        if s["name"] == "compare" and "devices" in detail:
            text = ", ".join(f"{k}: {v['new_rows']}" for k, v in detail["devices"].items())
        if s["name"] == "repeat" and "rows" in detail:
            text = ", ".join(f"{k}: {v}" for k, v in detail["rows"].items())
        lines.append(f"| {s['name']} | {s.get('status', '?')} | {s.get('seconds', '–')} | {text} |")
    if report["tables"]:
        lines += ["", "| table | new rows | seconds | s per row |", "|---|--:|--:|--:|"]
        for key, t in report["tables"].items():
            lines.append(f"| `{key}` | {t['rows']} | {t['seconds']} | {t.get('s_per_row', '–')} |")
    if report["errors"]:
        lines += ["", f"{len(report['errors'])} error(s); first: {report['errors'][0]['error']}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "out/gpu-session"))
    ap.add_argument("--deadline-s", type=float, default=480.0, help="end of the session, from its start (480)")
    ap.add_argument("--reserve-s", type=float, default=60.0, help="kept for the repeat and extras stages (60)")
    ap.add_argument("--backend", default="cuda", help="cuda, or fake for a rehearsal without a GPU")
    ap.add_argument("--device-options", default="", help="extra /k=v parts for every device, e.g. realtime=1")
    ap.add_argument("--gpu", type=int, default=0, help="CUDA device index (0)")
    ap.add_argument("--models", default=ZOO, help=f"networks to compare ({ZOO})")
    ap.add_argument("--n-ops", type=int, default=500, help="MBConv-space ops per table, at most (500)")
    ap.add_argument("--n-nets", type=int, default=200, help="random backbone networks per table, at most (200)")
    ap.add_argument("--chunk", type=int, default=23, help="items measured per turn of a device (23)")
    ap.add_argument("--first-item-s", type=float, default=1.0, help="guessed seconds per item before any is timed")
    ap.add_argument("--tests", choices=("gpu", "none"), default="gpu", help="run pytest -m gpu (default) or not")
    ap.add_argument("--tests-timeout-s", type=float, default=180.0)
    ap.add_argument("--repeat-ops", type=int, default=48)
    ap.add_argument("--repeat-nets", type=int, default=8)
    ap.add_argument("--extras", choices=("yes", "no"), default="yes", help="fp16 and energy runs of the zoo at the end")
    args = ap.parse_args(argv)

    os.environ.setdefault("HWLAT_CACHE", str(Path("/tmp/hwlat-cache")))
    devices = [device_string(args.backend, m, b, args.gpu, args.device_options) for m, b in CONFIGS]
    session = Session(args.out, args.deadline_s, {"backend": args.backend, "devices": devices, "argv": sys.argv[1:]})
    env = session.stage("env", lambda: stage_env(args))
    reason = env.get("detail", {}).get("backends", {}).get(args.backend, "unknown backend")
    if reason != "yes":  # nothing can be measured: say why at once instead of spending device time
        session.log(f"the {args.backend} backend is unavailable here: {reason}")
        session.report["errors"].append({"stage": "env", "error": f"{args.backend} unavailable: {reason}"})
        session.write()
        return 2
    session.stage("compare", lambda: stage_compare(session, args, devices), min_left_s=30)
    if args.tests == "gpu":
        session.stage("tests", lambda: stage_tests(session, args), min_left_s=args.reserve_s + 20)
    items = table_items(args)
    session.stage("tables", lambda: stage_tables(session, args, devices, items), min_left_s=args.reserve_s + 10)
    session.stage("repeat", lambda: stage_repeat(session, args, devices, items), min_left_s=15)
    if args.extras == "yes":
        extra = [
            device_string(args.backend, "graph", 8, args.gpu, f"{o}/{args.device_options}")
            for o in ("fp16", "energy=1")
        ]
        session.stage("extras", lambda: stage_compare(session, args, extra, "extras"), min_left_s=20)
    for db in ("gpu.db", "gpu_repeat.db", "compare.db"):
        single_file(args.out / db)
    session.write()
    session.log(
        f"done: {sum(t['rows'] for t in session.report['tables'].values())} table rows, "
        f"{len(session.report['errors'])} errors; files in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
