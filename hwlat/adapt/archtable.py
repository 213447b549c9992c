"""Architectures x devices tables: the generic path of few-shot transfer (published multi-device data).

An :class:`ArchTable` is one latency (ms) per architecture and device, plus an
architecture description from which kind features (op counts) are read. HELP's
NAS-Bench-201 and FBNet tables ship in ``datasets_lat/help`` (:func:`load_help`);
any CSV with an id column, a description column and one column per device loads
with :func:`read_arch_table`. :meth:`ArchTable.adapt` fits a target device from N
measured architectures and the other devices (:func:`hwlat.adapt.methods.fit_arch`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwlat.adapt.methods import AdaptError, ArchAdapter, check_latencies, fit_arch

__all__ = ["ArchTable", "HELP_SPACES", "help_dir", "load_help", "read_arch_table"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
HELP_SPACES = {
    "nasbench201": ("nasbench201_latency.csv.gz", "arch_str"),
    "fbnet": ("fbnet_latency.csv.gz", "op_idx_list"),
}


def _nb201_counts(arch: str) -> list[float]:
    edges = [e.split("~")[0] for e in arch.replace("+", "|").split("|") if e]
    return [float(edges.count(op)) for op in NB201_OPS]


def _fbnet_counts(arch: str) -> list[float]:
    return np.bincount(np.array(arch.split(), dtype=int), minlength=9).astype(float).tolist()


def _guess_counter(column: str) -> Callable[[str], list[float]] | None:
    return {"arch_str": _nb201_counts, "op_idx_list": _fbnet_counts}.get(column)


@dataclass
class ArchTable:
    """Latency (ms) of architectures (rows) on devices (columns).

    Attributes
    ----------
    name : str
        Label (``"nasbench201"``).
    arch : list of str
        Each architecture's description (NB201 string, FBNet op list, ...).
    devices : list of str
        Column names.
    latency_ms : ndarray, n_arch x n_devices
    counts : ndarray or None
        Kind features (op counts per architecture) when the description is understood.
    """

    name: str
    arch: list[str]
    devices: list[str]
    latency_ms: np.ndarray = field(repr=False)
    counts: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.latency_ms = np.asarray(self.latency_ms, dtype=float)
        if self.latency_ms.shape != (len(self.arch), len(self.devices)):
            raise AdaptError(
                f"table {self.name}: latency is {self.latency_ms.shape}, "
                f"expected {len(self.arch)} x {len(self.devices)}"
            )
        if len(set(self.devices)) != len(self.devices):
            raise AdaptError(f"table {self.name}: device columns repeat; give each device one column")

    def __len__(self) -> int:
        return len(self.arch)

    def column(self, device: str) -> int:
        if device not in self.devices:
            raise AdaptError(f"no device {device!r} in table {self.name}; devices there: {', '.join(self.devices)}")
        return self.devices.index(device)

    def log_latency(self, devices: Sequence[str]) -> np.ndarray:
        cols = [self.column(d) for d in devices]
        L = self.latency_ms[:, cols]
        check_latencies(L, f"table {self.name} ({', '.join(devices)})")
        return np.log(L)

    def kind_features(self) -> np.ndarray | None:
        """Standardised op counts (each column mean 0, std 1), or None when unknown."""
        if self.counts is None:
            return None
        sd = self.counts.std(0)
        return (self.counts - self.counts.mean(0)) / np.where(sd > 0, sd, 1.0)

    def adapt(
        self,
        target_rows: Sequence[int],
        target_ms: Any,
        sources: Sequence[str],
        methods: Sequence[str] | None = None,
    ) -> ArchAdapter:
        """Fit the target from its latency on ``target_rows`` (indices of architectures) and ``sources``.

        Raises :class:`AdaptError` when a row is out of range or repeated, a source has
        no value there, or fewer than two rows are given.
        """
        rows = np.asarray(list(target_rows), dtype=int)
        if len(rows) == 0:
            raise AdaptError(
                "no overlap: none of the target's measured architectures is in the table; "
                "measure architectures of this table (their row index or id)"
            )
        if rows.min() < 0 or rows.max() >= len(self) or len(set(rows.tolist())) != len(rows):
            raise AdaptError(f"target rows must be distinct indices in 0..{len(self) - 1}")
        S = self.log_latency(sources)
        K = self.kind_features()
        kw = {} if methods is None else {"methods": methods}
        return fit_arch(S[rows], target_ms, None if K is None else K[rows], source_names=list(sources), **kw)

    def predict(self, adapter: ArchAdapter, sources: Sequence[str]) -> np.ndarray:
        """The adapter's latency (ms) of every architecture of the table."""
        return adapter.predict_ms(self.log_latency(sources), self.kind_features())


def help_dir() -> Path:
    """``datasets_lat/help`` of this checkout (HELP's data ships with the repository, not the wheel)."""
    here = Path(__file__).resolve().parents[2] / "datasets_lat" / "help"
    if not here.is_dir():
        raise AdaptError(
            f"HELP's data is not at {here} (it ships with the hwlat repository, not the installed package); "
            "run from a checkout, or read a copy with read_arch_table(PATH, 'arch_str')"
        )
    return here


def read_arch_table(
    path: str | Path,
    arch_column: str,
    id_column: str | None = "arch_index",
    name: str | None = None,
    counter: Callable[[str], list[float]] | None = None,
) -> ArchTable:
    """An :class:`ArchTable` from a CSV (optionally gzipped): ``id_column``, ``arch_column``, then one column per
    device (ms). ``counter`` maps an architecture description to op counts (NB201 strings and FBNet op lists are
    understood without one)."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise AdaptError(f"{path}: cannot read an architecture table ({exc})") from exc
    if arch_column not in df.columns:
        raise AdaptError(f"{path}: no column {arch_column!r}; columns: {', '.join(map(str, df.columns[:8]))}, ...")
    if id_column is not None and id_column in df.columns:
        df = df.sort_values(id_column).reset_index(drop=True)
    devices = [c for c in df.columns if c not in (arch_column, id_column)]
    arch = [str(a) for a in df[arch_column]]
    counter = counter or _guess_counter(arch_column)
    counts = np.array([counter(a) for a in arch], dtype=float) if counter else None
    return ArchTable(name or path.name.split(".")[0], arch, devices, df[devices].to_numpy(float), counts)


def load_help(space: str = "nasbench201") -> ArchTable:
    """HELP's latency table of ``space`` (``"nasbench201"``: 15,625 cells; ``"fbnet"``: 5,000 architectures)."""
    if space not in HELP_SPACES:
        raise AdaptError(f"unknown HELP space {space!r}; choose one of {', '.join(HELP_SPACES)}")
    file, column = HELP_SPACES[space]
    return read_arch_table(help_dir() / file, column, name=space)


def help_reference_rows(space: str = "nasbench201") -> list[int]:
    """HELP's 10 fixed reference architectures of ``space`` (its "hardware embedding"), as row indices."""
    if space not in HELP_SPACES:
        raise AdaptError(f"unknown HELP space {space!r}; choose one of {', '.join(HELP_SPACES)}")
    return list(json.loads((help_dir() / "hardware_embedding_index.json").read_text())[space])
