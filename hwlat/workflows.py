"""Workflows: what the CLI, the quick start, compare, the searches and benchmarks share.

Each is a library function with no printing of its own (progress bars go to
stderr and can be turned off): measure what a table lacks, convert models in
parallel processes, resolve a ``--networks`` value into networks. The CLI only
parses arguments and prints what these return.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hwlat.network import Network
from hwlat.spaces import sample_networks
from hwlat.zoo import get_network, list_networks

__all__ = ["convert_parallel", "resolve_networks", "run_measure"]


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

    if jobs <= 1 or type(backend).convert is Backend.convert:
        return
    with (
        ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool,
        tqdm(total=len(items), desc="converting", unit="op", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar,
    ):
        for _ in pool.map(_convert_one, [(backend.spec, it) for it in items], chunksize=4):
            bar.update(1)


def run_measure(
    backend, items, store, protocol, *, quiet: bool = False, jobs: int = 1, reference=None
) -> tuple[int, int]:
    """Measure what ``store`` lacks; returns (new rows, already present)."""
    from tqdm.auto import tqdm

    from hwlat.measure import measure

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
        if m.kind == "network":
            store.add_network(by_key[m.op_key])
        new += store.add(m, info_id)

    with tqdm(
        total=len(items),
        initial=len(items) - len(todo),
        desc=backend.spec.key,
        unit="op",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        measure(backend, todo, protocol, on_result=save, progress=bar.update, reference=reference)
    return new, len(items) - len(todo)
