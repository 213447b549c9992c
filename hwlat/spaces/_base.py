"""The :class:`Space` type and the registry that names spaces (``get_space("mbconv")``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from hwlat.ops import OpSpec
from hwlat.registry import Registry


# -------------------------------------------------------------------- space
@dataclass(frozen=True)
class Space:
    """A named set of op configurations and a way to draw from it.

    Parameters
    ----------
    name : str
        Registry name.
    kinds : tuple of str
        Op kinds the space produces.
    description : str
        One line for ``hwlat spaces``.
    draw : callable
        ``draw(rng) -> OpSpec | None``: one random config (None = rejected draw).
    grid : callable
        ``grid() -> iterable of OpSpec | None``: every config; used only when
        drawing does not find enough distinct ones (small spaces).
    bound : callable
        ``bound() -> int``: a cheap upper bound on the number of configs.
    prior : tuple of OpSpec
        The real configs a space samples around (``auto:``), empty for the others.
    """

    name: str
    kinds: tuple[str, ...]
    description: str
    draw: Callable[[random.Random], OpSpec | None] = field(repr=False, compare=False)
    grid: Callable[[], Iterable[OpSpec | None]] = field(repr=False, compare=False)
    bound: Callable[[], int] = field(repr=False, compare=False)
    prior: tuple[OpSpec, ...] = field(default=(), repr=False, compare=False)

    def configs(self) -> list[OpSpec]:
        """Every distinct config of the space (can be slow for the large spaces)."""
        return list({op.key: op for op in self.grid() if op is not None}.values())

    def sample(self, n: int, seed: int = 0) -> list[OpSpec]:
        """``n`` distinct configs, the same ones for the same ``seed``.

        Raises
        ------
        ValueError
            If the space has fewer than ``n`` distinct configs (the message says how many).
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {n!r}")
        if n < 0:
            raise ValueError(f"Invalid n={n}: must be >= 0")
        if n > self.bound():
            self._too_few(n, len(self.configs()))
        rng = random.Random(seed)
        found: dict[str, OpSpec] = {}
        for _ in range(50 * n + 1000):
            if len(found) >= n:
                break
            op = self.draw(rng)
            if op is not None:
                found.setdefault(op.key, op)
        if len(found) < n:
            # Drawing keeps hitting known configs: the space is small, so list it.
            rest = [op for op in self.configs() if op.key not in found]
            if len(found) + len(rest) < n:
                self._too_few(n, len(found) + len(rest))
            found.update((op.key, op) for op in rng.sample(rest, n - len(found)))
        return list(found.values())

    def _too_few(self, n: int, count: int) -> NoReturn:
        raise ValueError(f"Space {self.name!r} has only {count} distinct configs; cannot sample {n}")


SPACES: Registry[Callable[[], Space]] = Registry("space")


def register_space(name: str) -> Callable[[Callable[[], Space]], Callable[[], Space]]:
    """Decorator registering a factory ``() -> Space`` under ``name``; re-registering warns."""
    return SPACES.register(name)


def list_spaces(pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
    """Registered space names matching the wildcard ``pattern`` (or any of several), sorted."""
    return SPACES.names(pattern)


def get_space(name: str) -> Space:
    """The registered space ``name``, or ``auto:M1,M2`` (configs around those models' kernels, see
    :func:`hwlat.spaces.auto.auto_space`); unknown names raise ``ValueError`` listing the valid ones."""
    if name.startswith("auto:"):
        from hwlat.spaces.auto import auto_space

        return auto_space([m for m in name[len("auto:") :].split(",") if m.strip()])
    return SPACES.get(name)()
