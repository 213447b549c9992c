"""Compare whole networks across devices: one table, one plot (ProxylessNAS Table 4 style).

:func:`compare` measures each network on each device with the standard
protocol, through a :class:`~hwlat.store.LatencyStore` (so a second run
measures only what is missing), then collects a :class:`Comparison`: per
(model, device) the median latency, its spread, the model's rank on that
device and, where a predictor for the device is given, the predicted latency.
:meth:`Comparison.markdown` prints the table and :func:`bar_plot_png` draws
grouped bars (one group per model) normalised per device.

Examples
--------
>>> from hwlat.devices import create_backend
>>> from hwlat.store import LatencyStore
>>> from hwlat.zoo import get_network
>>> nets = [get_network(n, resolution=32) for n in ("mobilenetv2", "proxyless-mobile")]
>>> with LatencyStore(":memory:") as store:
...     c = compare(nets, [create_backend("fake")], store)
>>> c.shape, sorted(c.ranks("fake/t1/b1/fp32").values())
((2, 1), [1, 2])
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hwlat.devices import Backend
    from hwlat.measure import Protocol
    from hwlat.network import Network
    from hwlat.store import LatencyStore

__all__ = [
    "Cell",
    "Comparison",
    "StoredDevice",
    "bar_plot_png",
    "compare",
    "parse_predictors",
    "resolve_devices",
    "split_devices",
]


@dataclass(frozen=True)
class StoredDevice:
    """A device not usable here whose rows are already in the table: measured on another
    machine (e.g. a GPU server) and brought in with ``hwlat table import``.

    :func:`compare` reads its rows and provenance from the store and measures nothing.
    """

    spec: Any  # DeviceSpec
    info: dict[str, Any]
    reason: str  # why the device cannot measure here


@dataclass(frozen=True)
class Cell:
    """One network on one device (milliseconds)."""

    median_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    n: int
    stable: bool
    rank: int
    predicted_ms: float | None = None
    note: str = ""  # why a model was not measured there (NaN median): the device does not run its format

    @property
    def measured(self) -> bool:
        return bool(np.isfinite(self.median_ms))

    @property
    def spread_ms(self) -> float:
        """Half the interquartile range of the runs: the ± shown in the table."""
        return self.iqr_ms / 2

    @property
    def prediction_error(self) -> float | None:
        """(predicted - measured) / measured, or None without a prediction or a measurement."""
        return None if self.predicted_ms is None or not self.measured else self.predicted_ms / self.median_ms - 1


@dataclass(frozen=True)
class Comparison:
    """Measured (and predicted) latency of ``models`` on ``devices``.

    ``cells[i][j]`` is model ``i`` on device ``j``. ``devices`` are labels
    (what the user typed), ``device_keys`` the full keys rows are stored under.
    """

    models: tuple[str, ...]
    macs: tuple[int, ...]
    devices: tuple[str, ...]
    device_keys: tuple[str, ...]
    device_info: tuple[dict[str, Any], ...]
    cells: tuple[tuple[Cell, ...], ...]
    protocol: str
    new_rows: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.models), len(self.devices)

    def cell(self, model: str, device: str) -> Cell:
        """The cell of ``model`` on ``device`` (a label or a device key)."""
        if model not in self.models:
            raise ValueError(f"Unknown model {model!r}; models here: {', '.join(self.models)}")
        j = self._device_index(device)
        return self.cells[self.models.index(model)][j]

    def _device_index(self, device: str) -> int:
        for names in (self.devices, self.device_keys):
            if device in names:
                return names.index(device)
        raise ValueError(f"Unknown device {device!r}; devices here: {', '.join(self.devices)}")

    def ranks(self, device: str) -> dict[str, int]:
        j = self._device_index(device)
        return {m: row[j].rank for m, row in zip(self.models, self.cells)}

    @property
    def has_predictions(self) -> list[bool]:
        return [any(row[j].predicted_ms is not None for row in self.cells) for j in range(len(self.devices))]

    def frame(self):
        """One row per (model, device) as a pandas DataFrame."""
        import pandas as pd

        rows = []
        for model, macs, row in zip(self.models, self.macs, self.cells):
            for label, key, c in zip(self.devices, self.device_keys, row):
                rows.append(
                    {
                        "model": model,
                        "mmacs": macs / 1e6,
                        "device": label,
                        "device_key": key,
                        **dataclasses.asdict(c),
                        "prediction_error": c.prediction_error,
                    }
                )
        return pd.DataFrame(rows)

    def markdown(self, title: str | None = None) -> str:
        """The comparison as a markdown table with its legend and provenance."""
        preds = self.has_predictions
        header = ["model", "MMACs"]
        for label, p in zip(self.devices, preds):
            header.append(f"`{label}`")
            if p:
                header.append("predicted")
        lines = [f"## {title}", ""] if title else []
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|"]
        for model, macs, row in zip(self.models, self.macs, self.cells):
            out = [model, f"{macs / 1e6:.0f}"]
            for c, p in zip(row, preds):
                if c.measured:
                    out.append(f"{_pm(c.median_ms, c.spread_ms)} ms (#{c.rank}){'' if c.stable else ' *'}")
                else:
                    out.append("n/a †")
                if p:
                    if c.predicted_ms is None:
                        out.append("–")
                    elif c.prediction_error is None:
                        out.append(f"{_ms(c.predicted_ms)} ms")
                    else:
                        out.append(f"{_ms(c.predicted_ms)} ms ({100 * c.prediction_error:+.0f} %)")
            lines.append("| " + " | ".join(out) + " |")
        unsettled = (
            ""
            if self._all_stable()
            else (
                " * : did not settle (the median's 95 % CI or the spread "
                "of round medians stayed above the protocol's limits)."
            )
        )
        lines += [
            "",
            "Median latency per inference ± half the interquartile range of the runs; (#k) is the model's rank on",
            "that device (1 = fastest)." + unsettled,
        ]
        if any(preds):
            lines.append(
                "predicted: the device's latency predictor (`hwlat fit`), with its error relative to the measurement."
            )
        notes = sorted({c.note for row in self.cells for c in row if not c.measured and c.note})
        if notes:
            lines.append("† not measured: " + "; ".join(notes) + ".")
        lines += [
            "",
            f"Protocol: `{self.protocol}`.",
            "",
            "| device | key | hardware | runtime | host |",
            "|---|---|---|---|---|",
        ]
        for label, key, info in zip(self.devices, self.device_keys, self.device_info):
            runtime = f"{info.get('runtime', '?')} {info.get('runtime_version', '')}".strip()
            lines.append(
                f"| `{label}` | `{key}` | {info.get('hardware', '?')} | {runtime} | {info.get('hostname', '?')} |"
            )
        return "\n".join(lines) + "\n"

    def _all_stable(self) -> bool:
        return all(c.stable for row in self.cells for c in row if c.measured)


def _digits(value: float) -> int:
    """Decimals for three significant digits, at least one (0.0123, 1.23, 12.3, 123.4)."""
    if value == 0 or not math.isfinite(value):
        return 1
    return max(1, 2 - math.floor(math.log10(abs(value))))


def _pm(median: float, spread: float) -> str:
    """``12.3 ± 0.2``; a spread too small for the median's decimals gets one significant digit."""
    d = _digits(median)
    if 0 < spread < 0.5 * 10**-d:
        return f"{_ms(median, d)} ± {spread:.1g}"
    return f"{_ms(median, d)} ± {_ms(spread, d)}"


def _ms(value: float, digits: int | None = None) -> str:
    if not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.{_digits(value) if digits is None else digits}f}"


def _unique_names(networks: Sequence[Network]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for net in networks:
        k = seen.get(net.name, 0) + 1
        seen[net.name] = k
        names.append(net.name if k == 1 else f"{net.name}#{k}")
    return names


def compare(
    networks: Sequence[Network],
    backends: Sequence[Backend],
    store: LatencyStore,
    protocol: Protocol | None = None,
    *,
    labels: Sequence[str] | None = None,
    predictors: Mapping[str, Any] | None = None,
    quiet: bool = True,
) -> Comparison:
    """Measure ``networks`` on each backend (what ``store`` lacks) and collect the comparison.

    Parameters
    ----------
    networks : sequence of Network
    backends : sequence of Backend
        Created and checked by the caller (see :func:`resolve_devices`).
    store : LatencyStore
        Where measurements are kept; rows already there (same device key,
        network and protocol) are reused, not measured again.
    protocol : Protocol, optional
        Default: the standard adaptive protocol.
    labels : sequence of str, optional
        Column names, one per backend (default: the device keys).
    predictors : mapping, optional
        Label (or device key) -> fitted LatencyPredictor: adds its prediction
        next to the measurement.
    """
    from hwlat.measure import Protocol
    from hwlat.workflows import run_measure

    if not networks:
        raise ValueError("nothing to compare: no networks given")
    if not backends:
        raise ValueError("nothing to compare: no devices given")
    protocol = protocol or Protocol()
    keys = [b.spec.key for b in backends]
    labels = list(labels) if labels is not None else keys
    if len(labels) != len(backends):
        raise ValueError(f"{len(labels)} labels for {len(backends)} devices")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"device {dup[0]!r} is given twice; give each device once")
    predictors = dict(predictors or {})
    for name in predictors:
        if name not in labels and name not in keys:
            raise ValueError(f"predictor for unknown device {name!r}; devices here: {', '.join(labels)}")

    new_rows, infos, medians = [], [], []
    for backend in backends:
        # a device runs torch models and its own file format (an .onnx file does not run on LiteRT)
        supports = getattr(backend, "supports", lambda item: None)
        problems = [supports(n) for n in networks]  # why the device does not run a model (None: it does)
        runs = [n for n, why in zip(networks, problems) if why is None]
        if isinstance(backend, StoredDevice):
            new, info = 0, backend.info
        else:
            new, _ = run_measure(backend, runs, store, protocol, quiet=quiet) if runs else (0, 0)
            info = backend.describe().to_dict()
        new_rows.append(new)
        infos.append(info)
        rows = {m.op_key: m for m in store.measurements(backend.spec.key) if m.protocol == protocol.key}
        missing = [n.name for n in runs if n.key not in rows]
        if missing and isinstance(backend, StoredDevice):
            raise RuntimeError(
                f"device {backend.spec.key!r} is unavailable here ({backend.reason}) and the table "
                f"lacks {', '.join(missing)} for it under protocol {protocol.key}"
            )
        if missing:  # run_measure measures every missing key, so this is a bug, not a user error
            raise RuntimeError(f"{backend.spec.key}: no measurement of {', '.join(missing)} after measuring")
        medians.append([rows.get(n.key) if why is None else why for n, why in zip(networks, problems)])

    cells: list[list[Cell]] = [[None] * len(backends) for _ in networks]  # type: ignore[list-item]
    nan = float("nan")
    for j, (label, key, ms) in enumerate(zip(labels, keys, medians)):
        predictor = predictors.get(label, predictors.get(key))
        predicted = _predict(predictor, networks, key) if predictor is not None else [None] * len(networks)
        ranks = _ranks([m.median_ms for m in ms if not isinstance(m, str)])
        ranked = iter(ranks)
        for i, m in enumerate(ms):
            if isinstance(m, str):  # the device does not run this model's format: m says why
                cells[i][j] = Cell(nan, nan, nan, nan, 0, True, 0, predicted[i], note=m)
            else:
                cells[i][j] = Cell(
                    m.median_ms, m.iqr_ms, m.ci_low_ms, m.ci_high_ms, m.n, m.stable, next(ranked), predicted[i]
                )
    return Comparison(
        models=tuple(_unique_names(networks)),
        macs=tuple(int(n.flops) for n in networks),
        devices=tuple(labels),
        device_keys=tuple(keys),
        device_info=tuple(infos),
        cells=tuple(tuple(r) for r in cells),
        protocol=protocol.key,
        new_rows=tuple(new_rows),
    )


def _ranks(values: Sequence[float]) -> list[int]:
    """1 = smallest; ties share the better rank."""
    order = sorted(values)
    return [order.index(v) + 1 for v in values]


def _predict(predictor: Any, networks: Sequence[Network], device_key: str) -> list[float | None]:
    """Predicted ms per network; None (with a warning) where the predictor lacks an op kind."""
    from hwlat.predict import UnknownKindError
    from hwlat.predict.protocol import device_mismatch

    if warning := device_mismatch(predictor, device_key):
        warnings.warn(warning, stacklevel=3)
    from hwlat.predict.model import MissingKernelsError, predict_model

    out: list[float | None] = []
    for net in networks:
        try:
            if net.kind == "model":  # a user's model: kernel by kernel, with the device's kernel rules
                out.append(predict_model(predictor, net, device=device_key).total_ms)
            else:
                out.append(float(predictor.predict_network(net)))
        except (UnknownKindError, MissingKernelsError) as exc:
            warnings.warn(f"no prediction of {net.name} on {device_key}: {str(exc).split(';')[0]}", stacklevel=3)
            out.append(None)
    return out


# ------------------------------------------------------------- parsing helpers
def split_devices(text: str) -> list[str]:
    """Split a ``--devices`` value on commas, keeping ``cores=0,1`` lists together."""
    parts: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if parts and part.isdigit():  # the rest of a cores=0,1 list
            parts[-1] += f",{part}"
        else:
            parts.append(part)
    if not parts:
        raise ValueError(f"No devices in {text!r}; give backend names or keys, e.g. onnxruntime-cpu,torch-cpu")
    return parts


def resolve_devices(
    names: Sequence[str],
    skip_unavailable: bool = False,
    *,
    store: LatencyStore | None = None,
    networks: Sequence[Network] = (),
    protocol: Protocol | None = None,
) -> tuple[list[Backend | StoredDevice], list[str], list[str]]:
    """Backends for device strings, checked before anything is measured.

    A device unavailable here is still compared when ``store`` already holds
    every one of ``networks`` for its key under ``protocol`` (rows measured on
    another machine and imported): it becomes a :class:`StoredDevice`.

    Returns ``(backends, labels, skipped)`` where ``skipped`` holds one
    "device: reason" line per unavailable device (only with
    ``skip_unavailable``; otherwise the first one raises ``RuntimeError``).
    """
    from hwlat.devices import DeviceSpec, get_backend
    from hwlat.measure import Protocol

    protocol = protocol or Protocol()
    backends: list[Backend | StoredDevice] = []
    labels, skipped = [], []
    for name in names:
        spec = DeviceSpec.parse(name)
        cls = get_backend(spec.backend)  # ValueError listing the valid names
        reason = cls.check()
        if reason is not None:
            stored = _stored(spec, reason, store, networks, protocol)
            if isinstance(stored, StoredDevice):
                backends.append(stored)
                labels.append(name)
                continue
            why = f"device {name!r} is unavailable here: {reason}"
            if stored:
                why += f" ({stored})"
            if not skip_unavailable:
                raise RuntimeError(f"{why} (or pass --skip-unavailable)")
            skipped.append(f"{name}: {reason}")
            continue
        backends.append(cls(spec))
        labels.append(name)
    if not backends:
        raise RuntimeError(
            "no device to measure on: every device given is unavailable here (" + "; ".join(skipped) + ")"
        )
    return backends, labels, skipped


def devices_for_table(
    text: str,
    db: str | Path,
    skip_unavailable: bool = False,
    *,
    networks: Sequence[Network] = (),
    protocol: Protocol | None = None,
) -> tuple[list[Backend | StoredDevice], list[str], list[str]]:
    """:func:`resolve_devices` for a ``--devices`` value and the table at ``db``.

    A device unavailable here is taken from the table when ``db`` exists and
    already holds all ``networks`` for it (rows measured elsewhere and
    imported); a missing ``db`` is not created.
    """
    from hwlat.store import LatencyStore

    names = split_devices(text)
    if not Path(db).is_file():
        return resolve_devices(names, skip_unavailable)
    with LatencyStore(db, readonly=True) as known:
        return resolve_devices(names, skip_unavailable, store=known, networks=networks, protocol=protocol)


def _stored(
    spec, reason: str, store: LatencyStore | None, networks: Sequence[Network], protocol: Protocol
) -> StoredDevice | str:
    """A StoredDevice when ``store`` has every network for ``spec``; else what is missing ('' if nothing stored)."""
    if store is None or not networks:
        return ""
    done = store.done_keys(spec.key, protocol.key)
    if not done:
        return ""
    missing = [n.name for n in networks if n.key not in done]
    if missing:
        return (
            f"the table has {len(networks) - len(missing)} of the {len(networks)} models for {spec.key} "
            f"under this protocol; missing: {', '.join(missing)}"
        )
    return StoredDevice(spec, store.device_info(spec.key) or {}, reason)


def parse_predictors(text: str | None, labels: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """``dev=PATH,...`` -> {label: PATH}; ``dev`` is a label, a device key or a backend name."""
    from hwlat.devices import DeviceSpec

    out: dict[str, str] = {}
    if not text:
        return out
    for item in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in item:
            raise ValueError(f"Invalid predictor {item!r}: expected DEVICE=PATH, e.g. onnxruntime-cpu=pred.skops")
        device, path = item.rsplit("=", 1)  # labels may hold '=' (cores=0); paths rarely do
        matches = [lab for lab, key in zip(labels, keys) if device in (lab, key)]
        if not matches:
            matches = [lab for lab, key in zip(labels, keys) if DeviceSpec.backend_of(key) == device]
        if len(matches) != 1:
            what = "matches no device" if not matches else f"matches {len(matches)} devices"
            raise ValueError(f"Predictor device {device!r} {what}; devices here: {', '.join(labels)}")
        out[matches[0]] = path
    return out


def load_predictors(text: str | None, labels: Sequence[str], keys: Sequence[str]) -> dict[str, Any]:
    """``dev=PATH,...`` (see :func:`parse_predictors`) -> {label: loaded predictor}."""
    paths = parse_predictors(text, labels, keys)
    if not paths:
        return {}
    from hwlat.predict import load_predictor

    return {label: load_predictor(path) for label, path in paths.items()}


# ----------------------------------------------------------------------- plot
def bar_plot_png(comparison: Comparison, path: str | Path, title: str | None = None) -> Path:
    """Grouped bars, one group per model, one bar per device, each device's
    latencies divided by its fastest model's (1 = fastest on that device).

    Whiskers show ± half the IQR, the number above a bar its median in ms,
    and a black x the predicted latency where a predictor was given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_models, n_dev = comparison.shape
    med = np.array([[c.median_ms for c in row] for row in comparison.cells])
    spread = np.array([[c.spread_ms for c in row] for row in comparison.cells])
    pred = np.array([[np.nan if c.predicted_ms is None else c.predicted_ms for c in row] for row in comparison.cells])
    # each device's fastest measured model (NaN cells: models the device does not run)
    base = np.array([np.min(col[np.isfinite(col)]) if np.isfinite(col).any() else 1.0 for col in med.T])
    width = 0.8 / n_dev
    x = np.arange(n_models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * n_models * max(1, n_dev / 2.5)), 4.2))
    for j, label in enumerate(comparison.devices):
        pos = x - 0.4 + width * (j + 0.5)
        bars = ax.bar(
            pos,
            med[:, j] / base[j],
            width * 0.92,
            yerr=spread[:, j] / base[j],
            capsize=2,
            label=label,
            error_kw={"lw": 0.8},
        )
        for rect, ms, err in zip(bars, med[:, j], spread[:, j] / base[j]):
            if not np.isfinite(ms):
                continue
            ax.annotate(
                _ms(ms),
                (rect.get_x() + rect.get_width() / 2, rect.get_height() + err),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=0 if n_dev <= 3 else 90,
            )
        if np.isfinite(pred[:, j]).any():
            ax.scatter(
                pos,
                pred[:, j] / base[j],
                marker="x",
                color="black",
                s=18,
                zorder=3,
                label="predicted" if j == int(np.argmax(np.isfinite(pred).any(axis=0))) else None,
            )
    ax.axhline(1.0, color="gray", lw=0.6, ls="--")
    ax.set_xticks(x, comparison.models, rotation=15 if n_models > 4 else 0)
    ax.set_ylabel("latency / fastest model on the device")
    top = np.nanmax(np.concatenate([(med + spread) / base, pred / base]))
    ax.set_ylim(0, top * 1.18)
    ax.set_title(title or "Latency per device, relative to its fastest model (numbers: median ms)", fontsize=10)
    ax.legend(fontsize=7, ncol=min(n_dev + 1, 3), loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def write_outputs(comparison: Comparison, out: str | Path, title: str | None = None) -> tuple[Path, Path, Path]:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "compare.md"
    md.write_text(comparison.markdown(title))
    csv = out / "compare.csv"
    comparison.frame().to_csv(csv, index=False)
    png = bar_plot_png(comparison, out / "compare.png")
    return md, csv, png
