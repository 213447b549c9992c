"""Workflows: what the CLI, the quick start, compare, the searches and benchmarks share.

Each is a library function with no printing of its own (progress bars go to
stderr and can be turned off): build a measurement protocol from options,
measure what a table lacks, convert models in parallel processes, resolve a
``--networks`` value into networks, pick a device in a table, summarise a
table, fit a predictor on a table, list the backends. The CLI only parses
arguments and prints what these return; errors are ``ValueError`` naming the fix.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hwlat.network import Network
from hwlat.spaces import sample_networks
from hwlat.zoo import get_network, list_networks

if TYPE_CHECKING:
    import pandas as pd

    from hwlat.measure import Protocol
    from hwlat.predict import LatencyPredictor
    from hwlat.store import LatencyStore

__all__ = [
    "backend_status",
    "check_jobs",
    "convert_parallel",
    "export_space_lut",
    "fit_table",
    "protocol_from_options",
    "resolve_device_key",
    "check_items",
    "resolve_models",
    "resolve_networks",
    "run_measure",
    "save_row",
    "table_summary",
    "model_kernels",
    "runtime_graph",
]

log = logging.getLogger(__name__)


_RANDOM = re.compile(r"random:(\d+)(?::(\d+))?")


def resolve_networks(spec: str, seed: int = 0) -> list[Network]:
    """Networks named by a ``--networks`` value.

    Parameters
    ----------
    spec : str
        Comma-separated items, each a zoo name (see :func:`list_networks`),
        ``random:N`` (N distinct random ProxylessNAS-backbone networks, seeded
        by ``seed``), ``random:N:SEED``, or the path of a ``.json`` file (an
        hwlat network or a ProxylessNAS config).
    seed : int
        Seed for ``random:N`` items without their own seed.

    Examples
    --------
    >>> [n.name for n in resolve_networks("resnet18,random:2")]
    ['resnet18', 'random-0-0', 'random-0-1']
    """
    if not isinstance(spec, str):
        raise TypeError(f"networks must be a string, got {type(spec).__name__}")
    networks: list[Network] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if item in list_networks():
            networks.append(get_network(item))
        elif match := _RANDOM.fullmatch(item):
            n, own_seed = int(match[1]), match[2]
            networks.extend(sample_networks(n, seed=int(own_seed) if own_seed is not None else seed))
        elif item.endswith((".json", ".config")) or Path(item).is_file():
            if not Path(item).is_file():
                raise ValueError(f"Network file {item!r} not found")
            networks.append(Network.load(item))
        else:
            raise ValueError(
                f"Unknown network {item!r}. Give comma-separated zoo names ({', '.join(list_networks())}), "
                "'random:N' or 'random:N:SEED', or paths of .json network files"
            )
    if not networks:
        raise ValueError(f"No networks in {spec!r}; give zoo names, 'random:N', or .json paths")
    return networks


def resolve_models(spec: str, *, input_shape: str | None = None, seed: int = 0) -> list:
    """Items named by a ``--model``/``--models`` value: comma-separated model files (.onnx, .tflite,
    .pt2), ``pkg.module:factory``, variants of :mod:`hwlat.models` (``resnet50-w0.5-r160``) and anything
    :func:`resolve_networks` takes (zoo names, random:N,
    .json networks), and ``composed:N[:SEED]`` (:mod:`hwlat.models.composed`: the calibration networks of
    whole-model predictions). ``input_shape`` applies to every .onnx file and module given (.tflite files have
    fixed shapes)."""
    from hwlat.graph import MODEL_SUFFIXES, load_model
    from hwlat.models import get_model, list_models

    out: list = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        if list_models(part) == [part]:  # a variant of hwlat.models' families, e.g. mobilenetv2-w0.75-r160
            variant = get_model(part)
            out.append(load_model(variant.build(), input_shape=input_shape or variant.input_shape, name=part))
            continue
        if part.startswith("composed:"):  # random networks of real networks' blocks (hwlat.models.composed)
            for variant in composed_specs(part):
                out.append(load_model(variant.build(), input_shape=variant.input_shape, name=variant.name))
            continue
        is_file = Path(part).suffix.lower() in MODEL_SUFFIXES
        is_factory = ":" in part and not part.startswith("random:") and not Path(part).exists()
        if is_file or is_factory:  # a .tflite file's shapes are fixed: the shape is for the others
            fixed = Path(part).suffix.lower() == ".tflite"
            out.append(load_model(part, input_shape=None if fixed else input_shape))
        else:
            out.extend(resolve_networks(part, seed=seed))
    if not out:
        raise ValueError("no models given: --model takes files (.onnx, .tflite, .pt2), pkg.module:factory or zoo names")
    return out


def composed_specs(text: str) -> list:
    """The ModelSpecs of ``composed:N[:SEED]``: N networks of :mod:`hwlat.models.composed` from seed SEED (0)."""
    from hwlat.models.composed import sample_networks as composed

    parts = text.split(":")[1:]
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts) or int(parts[0]) < 1:
        raise ValueError(f"Invalid {text!r}: give composed:N or composed:N:SEED (N >= 1 networks, e.g. composed:96)")
    return composed(int(parts[0]), seed=int(parts[1]) if len(parts) == 2 else 0)


def check_jobs(jobs: int) -> int:
    """``jobs`` if it is a whole number >= 1 (``--jobs``: converter processes); ``ValueError`` otherwise."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs {jobs!r}: give a whole number of processes >= 1 (1: convert in this process)")
    return jobs


def _convert_one(args):
    from hwlat.devices import create_backend

    spec, item = args
    create_backend(spec, check=False).convert(item)


def convert_parallel(backend, items, jobs: int, quiet: bool = False) -> None:
    """Fill the backend's conversion cache with ``jobs`` worker processes.

    Measuring pins the process to ``threads`` CPUs, which would also pin slow
    converters (litert-torch takes seconds per op); converting first, in
    parallel, keeps the timed phase short.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from hwlat.devices import Backend

    items = [it for it in items if it.kind != "model"]  # users' models: converted where measured (few, unpicklable)
    if jobs <= 1 or type(backend).convert is Backend.convert or not items:
        return
    with (
        ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool,
        tqdm(total=len(items), desc="converting", unit="op", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar,
    ):
        for _ in pool.map(_convert_one, [(backend.spec, it) for it in items], chunksize=4):
            bar.update(1)


def check_items(backend, items, batch: int) -> None:
    """Refuse, before anything is measured, an item ``backend`` (a Backend or its class) does not run,
    or a model that cannot run at ``batch`` (one-line ValueErrors)."""
    for it in items:
        problem = backend.supports(it)
        if problem:
            raise ValueError(problem)
        if it.kind == "model":
            it.check_batch(batch)


def save_row(store, m, item, info_id: str) -> bool:
    """Commit one measurement with its network's definition (both or neither); False if it was there."""
    with store.transaction():
        if m.kind == "network":
            store.add_network(item)
        return store.add(m, info_id)


def run_measure(
    backend, items, store, protocol, *, quiet: bool = False, jobs: int = 1, reference=None
) -> tuple[int, int]:
    """Measure what ``store`` lacks; returns (new rows, already present)."""
    from tqdm.auto import tqdm

    check_jobs(jobs)
    from hwlat.measure import measure

    check_items(backend, items, backend.spec.batch)
    done = store.done_keys(backend.spec.key, protocol.key)
    todo = [it for it in items if it.key not in done]
    if not todo:
        return 0, len(items)
    convert_parallel(backend, todo, jobs, quiet)
    info_id = store.add_device(backend.describe())
    by_key = {it.key: it for it in todo}
    new = 0

    def save(m) -> None:
        nonlocal new
        new += save_row(store, m, by_key[m.op_key], info_id)

    rules = store.fusion_rules(backend.spec.key)
    kernels = {it.key: model_kernels(backend, it, rules) for it in todo if it.kind == "model"}

    def extra(it) -> tuple:
        return (*backend.measurement_extra(it), *kernels.get(it.key, ()))

    with tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        desc=backend.spec.key,
        unit="op",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        measure(backend, todo, protocol, on_result=save, progress=bar.update, reference=reference, extra=extra)
    return new, len(items) - len(todo)


def runtime_graph(backend, item):
    """The graph ``backend`` executes for a model: the file itself where the backend runs its format
    (.onnx on ONNX Runtime, .tflite on LiteRT), else the file it converts the model to (the .tflite
    LiteRT converts a torch module to; the exported .onnx ONNX Runtime runs)."""
    from hwlat.devices import Backend
    from hwlat.graph import load_model

    if item.format in ("onnx", "tflite") or type(backend).convert is Backend.convert:
        return item.graph(backend.spec.batch)
    return load_model(backend.convert(item), name=item.name).graph(backend.spec.batch)


def model_kernels(backend, item, rules_json: str | None = None) -> tuple[tuple[str, str], ...]:
    """``(("kernels", "KEY;KEY;..."),)``: the op key standing for each kernel of a model as ``backend``
    runs it (``?TYPE`` for a kernel no op kind stands for), detected with the device's rules or the
    fusion rules learned on it (``rules_json``). Stored with the model's row, so ``hwlat fit``
    calibrates whole-model predictions on measured models without converting them again
    (:mod:`hwlat.predict.calibration`, ``kinds``). Empty when the graph cannot be read."""
    from hwlat.graph import GraphError, detect_kernels

    rules = None
    if rules_json:
        from hwlat.graph.fusion import FusionRules

        rules = FusionRules.from_json(rules_json).rule_set()
    try:
        kset = detect_kernels(runtime_graph(backend, item), rules, device=backend.spec.key)
    except (GraphError, ValueError, OSError) as exc:
        log.warning("%s: kernels not recorded (%s)", item.name, exc)
        return ()
    return (("kernels", ";".join(k.specs[0].key if k.specs else f"?{k.type}" for k in kset.kernels)),)


def protocol_from_options(
    name: str = "adaptive", *, rel_ci: float | None = None, budget_s: float | None = None
) -> Protocol:
    """The measurement protocol for ``--protocol``, ``--rel-ci`` and ``--budget``.

    Parameters
    ----------
    name : {"adaptive", "fixed"}
        ``fixed`` is TFLite ``benchmark_model``'s protocol and takes no options.
    rel_ci, budget_s : float, optional
        Overrides of the adaptive protocol's defaults; ``None`` keeps them.
        ``rel_ci`` must be in (0, 1), ``budget_s`` finite and > 0 (``ValueError`` otherwise).

    Examples
    --------
    >>> "ci=0.05" in protocol_from_options(rel_ci=0.05).key
    True
    """
    from hwlat.measure import Protocol

    if rel_ci is not None and not (isinstance(rel_ci, (int, float)) and 0 < rel_ci < 1):
        raise ValueError(f"--rel-ci {rel_ci!r}: give a fraction between 0 and 1, e.g. 0.02 (2 %)")
    if budget_s is not None and not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise ValueError(f"--budget {budget_s!r}: give a finite time in seconds > 0, e.g. 0.4")
    if name == "fixed":
        return Protocol.fixed()
    if name != "adaptive":
        raise ValueError(f"Unknown protocol {name!r}; choose 'adaptive' or 'fixed'")
    changes: dict[str, float] = {}
    if rel_ci is not None:
        changes["rel_ci"] = rel_ci
    if budget_s is not None:
        changes["budget_s"] = budget_s
    return Protocol(**changes)


def backend_status() -> list[tuple[str, bool, str]]:
    """``(name, available, note)`` per registered backend: its description, or why it is unavailable."""
    from hwlat.devices import get_backend, list_backends

    rows = []
    for name in list_backends():
        cls = get_backend(name)
        ok, reason = cls.available()
        rows.append((name, bool(ok), cls.description if ok else reason))
    return rows


def resolve_device_key(store: LatencyStore, device: str | None = None) -> str:
    """The full device key in ``store`` that ``device`` names.

    Parameters
    ----------
    store : LatencyStore
        The table to look in.
    device : str, optional
        A full key (``cuda/t1/b8/fp32/mode=graph``), a device string that
        parses to one (``cuda/b8/mode=graph``), or a backend name matching
        exactly one key. ``None`` works when the table holds one device.

    Raises
    ------
    ValueError
        The table is empty, or ``device`` matches no key or several; the
        message lists the keys there.
    """
    from hwlat.devices import DeviceSpec

    keys = store.device_keys()
    if not keys:
        raise ValueError(f"{store.path}: the table is empty")
    if device is None:
        if len(keys) > 1:
            raise ValueError(f"the table holds several devices ({', '.join(keys)}); pick one with --device")
        return keys[0]
    if "/" in device:  # a device string such as cuda/b8/mode=graph names its full key
        try:
            full = DeviceSpec.parse(device).key
        except ValueError:
            full = device
        if full in keys:
            return full
    matches = [k for k in keys if k == device or DeviceSpec.backend_of(k) == device]
    if len(matches) != 1:
        raise ValueError(
            f"device {device!r} matches {len(matches)} devices in the table; devices there: {', '.join(keys)}"
        )
    return matches[0]


def table_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per device and op kind: rows, median/min/max of ``median_ms`` and the settled share in percent.

    ``frame`` is :meth:`LatencyStore.frame`'s output; ``settled_pct`` is
    rounded to one decimal.
    """
    summary = (
        frame.groupby(["device_key", "kind"])
        .agg(
            rows=("op_key", "size"),
            median_ms=("median_ms", "median"),
            min_ms=("median_ms", "min"),
            max_ms=("median_ms", "max"),
            settled_pct=("stable", "mean"),
        )
        .reset_index()
    )
    summary["settled_pct"] = (100 * summary["settled_pct"]).round(1)
    return summary


def fit_table(
    table: str | Path,
    out: str | Path,
    *,
    device: str | None = None,
    model: str = "prior+gbr",
    target: str = "median_ms",
    correct_drift: bool = False,
    force: bool = False,
) -> tuple[LatencyPredictor, Path, Path]:
    """Fit a predictor on one device of a latency table and save it with its metadata.

    Returns the fitted predictor, the predictor file and the metadata file.
    ``device`` is resolved with :func:`resolve_device_key`. ``out`` is checked
    before anything is fitted: a latency table there is never replaced, another
    file that is not an hwlat predictor only with ``force``.
    """
    from hwlat.predict import LatencyPredictor, save_predictor
    from hwlat.predict.predictor import check_predictor_output
    from hwlat.store import LatencyStore

    check_predictor_output(out, force)

    with LatencyStore(table, readonly=True) as store:
        key = resolve_device_key(store, device)
        predictor = LatencyPredictor(model=model).fit_table(
            store, device=key, target=target, correct_drift=correct_drift
        )
        info = next((v for v in store.devices().values() if v.get("device_key") == key), {})
    path, meta = save_predictor(predictor, out, table=str(table), device_info=info, force=force)
    return predictor, Path(path), Path(meta)


# op kinds a ProxylessNAS/Once-for-All (MobileNetV2) lookup table has keys for; per dialect:
# hwlat.formats.lut.DIALECT_KINDS (the MobileNetV3 one adds gap and linear)
LUT_KINDS = ("stem", "mbconv", "pwconv", "head")


def _is_lut_file(path: Path) -> bool:
    """Whether ``path`` looks like a LUT (YAML mapping of keys to entries with a ``mean``), read cheaply."""
    import yaml

    try:
        if path.stat().st_size > 64 << 20:
            return False
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) and "mean" in v for v in data.values())


def export_space_lut(
    predictor: LatencyPredictor, space: str, out: str | Path, force: bool = False, dialect: str = "proxyless"
) -> tuple[Path, int]:
    """Write ``predictor``'s latency of every LUT-keyed op of search space ``space`` as a LUT (YAML).

    ``dialect`` is ``proxyless`` (ProxylessNAS / OFA MobileNetV2 keys) or ``ofa-mbv3`` (OFA
    MobileNetV3 keys). Returns the file written and the number of ops in it; ops of kinds the
    dialect has no key for (:data:`hwlat.formats.lut.DIALECT_KINDS`) are left out. An existing
    ``out`` is replaced only when it is a LUT, or with ``force``; a latency table never.
    """
    from hwlat.formats.lut import DIALECT_KINDS, DIALECTS, export_lut
    from hwlat.outfile import check_output
    from hwlat.spaces import get_space

    if dialect not in DIALECTS:
        raise ValueError(f"Invalid LUT dialect {dialect!r}; valid: {', '.join(DIALECTS)}")
    kinds = DIALECT_KINDS[dialect]
    check_output(out, "LUT", is_ours=_is_lut_file, force=force)
    ops = [op for op in get_space(space).configs() if op.kind in kinds]
    if not ops:
        raise ValueError(
            f"space {space!r} has no op of a kind a LUT has keys for ({', '.join(kinds)}); "
            "nothing to export (try --space mbconv-backbone)"
        )
    return Path(export_lut(predictor, ops, out, dialect=dialect)), len(ops)
