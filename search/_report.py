"""Measuring found networks on a device and plotting latency-accuracy trade-offs (matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hwlat.search._latency import measure_networks

__all__ = ["measure_networks", "tradeoff_png"]


def tradeoff_png(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    title: str,
    xlabel: str = "measured latency (ms)",
) -> Path:
    """Accuracy (%) against latency, one marked line per curve; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (label, points), marker in zip(curves.items(), "osD^v<>"):
        pts = sorted(points)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
