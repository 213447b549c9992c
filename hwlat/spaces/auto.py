"""``auto:MODELS``: kernel configs sampled around the kernels real models contain.

The prior is the distinct kernel OpSpecs of the given models (kernel detection with the device's
rules); :func:`auto_space` draws a real spec (uniform over kinds, then over that kind's specs) and
perturbs it: channels x0.5-2 snapped to multiples of 8 (groups kept dividing them), spatial sizes
among the neighbours of real sizes, kernel/stride/act among the values seen for that kind. The real
specs themselves are left out unless ``include_real=True`` (a benchmark samples tables, not the
models' own kernels).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwlat.ops import OpSpec
from hwlat.spaces._base import Space
from hwlat.spaces.generic import MAX_FLOPS

__all__ = ["AdaptiveRound", "auto_space", "model_kernel_specs", "perturb", "sample_adaptive"]

CHANNEL_FIELDS = ("cin", "cout", "mid")
CHOICE_FIELDS = ("kernel", "stride", "act", "gate", "mode", "scale", "expand", "inputs", "heads")


def model_kernel_specs(models: Sequence[str], device: str | None = None, seed: int = 0) -> list[OpSpec]:
    """The distinct kernel OpSpecs of ``models`` (files, ``pkg.mod:factory`` or zoo names)."""
    from hwlat.graph import detect_kernels, item_graph
    from hwlat.predict.model import kernel_specs
    from hwlat.workflows import resolve_models

    if not models:
        raise ValueError("auto space needs models: auto:MODEL[,MODEL...]")
    found: dict[str, OpSpec] = {}
    for m in resolve_models(",".join(models), seed=seed):
        for spec in kernel_specs(detect_kernels(item_graph(m), device=device)):
            found.setdefault(spec.key, spec)
    return list(found.values())


def _snap8(value: float) -> int:
    return max(8, int(round(value / 8)) * 8)


def perturb(spec: OpSpec, rng: random.Random, seen: dict[str, dict[str, list[Any]]]) -> OpSpec | None:
    """A config near ``spec`` (None if invalid or above MAX_FLOPS); ``seen`` maps kind -> field -> real values."""
    fields = spec.to_dict()
    kind = fields.pop("kind")
    values = seen.get(kind, {})
    ratio = 2 ** rng.uniform(-1, 1)
    for name in CHANNEL_FIELDS:
        if name in fields and fields[name] > 0:
            if name == "cin" and fields[name] <= 4:  # stems: 3 input channels stay
                continue
            fields[name] = _snap8(fields[name] * (ratio if rng.random() < 0.7 else 2 ** rng.uniform(-1, 1)))
    if kind == "conv" and fields.get("groups", 1) > 1:
        # depthwise stays depthwise; other grouped convs keep a group count dividing both sides
        if spec.groups == spec.cin == spec.cout:
            fields["cout"] = fields["cin"]
            fields["groups"] = fields["cin"]
        else:
            g = spec.groups
            while g > 1 and (fields["cin"] % g or fields["cout"] % g):
                g //= 2
            fields["groups"] = g
    if "h" in fields and fields["h"] > 1:
        sizes = sorted(set(values.get("h", [fields["h"]])))
        i = sizes.index(fields["h"]) if fields["h"] in sizes else 0
        near = sizes[max(0, i - 1) : i + 2]
        h = rng.choice(near + [max(2, fields["h"] + rng.choice((-2, -1, 1, 2)))])
        fields["w"] = max(1, round(h * spec.w / spec.h)) if "w" in fields else 1
        fields["h"] = h
    if "tokens" in fields and fields["tokens"] > 1:
        fields["tokens"] = max(2, int(round(fields["tokens"] * 2 ** rng.uniform(-1, 1))))
    for name in CHOICE_FIELDS:
        if name in fields and values.get(name) and rng.random() < 0.3:
            fields[name] = rng.choice(values[name])
    try:
        out = OpSpec(kind, **fields)
    except (ValueError, TypeError):
        return None
    return out if out.flops <= MAX_FLOPS else None


def auto_space(
    models: Sequence[str],
    device: str | None = None,
    seed: int = 0,
    include_real: bool = False,
    prior: Sequence[OpSpec] | None = None,
) -> Space:
    """A :class:`Space` named ``auto:MODELS`` sampling configs around the models' kernels.

    ``prior`` (the real specs) is read from ``models`` unless given (tests pass it directly)."""
    real = list(prior) if prior is not None else model_kernel_specs(models, device=device, seed=seed)
    real = [s for s in real if s.flops <= MAX_FLOPS] or real
    if not real:
        raise ValueError(f"no kernels found in {', '.join(models)}: nothing to sample around")
    by_kind: dict[str, list[OpSpec]] = {}
    for s in real:
        by_kind.setdefault(s.kind, []).append(s)
    seen = _seen(real)
    real_keys = {s.key for s in real}
    kinds = sorted(by_kind)

    def draw(rng: random.Random) -> OpSpec | None:
        spec = rng.choice(by_kind[rng.choice(kinds)])
        out = perturb(spec, rng, seen)
        if out is None or (not include_real and out.key in real_keys):
            return None
        return out

    def grid() -> Iterator[OpSpec | None]:
        rng = random.Random(seed)
        for _ in range(200 * len(real)):
            yield draw(rng)
        if include_real:
            yield from real

    return Space(
        "auto:" + ",".join(models),
        tuple(kinds),
        f"configs around the kernels of {', '.join(models)}",
        draw,
        grid,
        lambda: 200 * len(real) + len(real),
        prior=tuple(real),
    )


def _seen(specs: Sequence[OpSpec]) -> dict[str, dict[str, list[Any]]]:
    """kind -> field -> the values real specs have (what :func:`perturb` redraws from)."""
    seen: dict[str, dict[str, list[Any]]] = {}
    for s in specs:
        for name, value in s.to_dict().items():
            if name != "kind":
                seen.setdefault(s.kind, {}).setdefault(name, []).append(value)
    return seen


@dataclass
class AdaptiveRound:
    """One round of :func:`sample_adaptive`: how many configs it measured and where they came from."""

    index: int
    measured: int
    around_worst: int  # drawn near the worst-predicted configs (0 in the prior round)
    cv_mape: dict[str, float] = field(default_factory=dict)  # per kind, before this round (out-of-fold)

    def describe(self) -> str:
        cv = ", ".join(f"{k} {100 * v:.1f} %" for k, v in sorted(self.cv_mape.items()))
        src = "the prior (around the models' kernels)" if self.index == 0 else f"{self.around_worst} near the worst"
        return f"round {self.index}: {self.measured} measured from {src}" + (f"; CV MAPE before: {cv}" if cv else "")


def out_of_fold_errors(specs: Sequence[OpSpec], ms: Sequence[float], folds: int = 5, seed: int = 0) -> list[float]:
    """Relative error of each config's latency predicted by a LatencyPredictor fitted without it (k-fold,
    at most ``folds``); NaN for kinds with fewer than 3 configs."""
    import numpy as np

    from hwlat.predict import LatencyPredictor

    y = np.asarray(ms, dtype=float)
    err = np.full(len(specs), np.nan)
    by_kind: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        by_kind.setdefault(s.kind, []).append(i)
    rng = np.random.default_rng(seed)
    for idx in by_kind.values():
        if len(idx) < 3:
            continue
        k = min(folds, len(idx))
        idx = np.array(idx)
        order = rng.permutation(len(idx))
        for f in range(k):
            test = idx[order[f::k]]
            train = np.setdiff1d(idx, test)
            model = LatencyPredictor().fit([specs[i] for i in train], y[train])
            err[test] = np.abs(model.predict([specs[i] for i in test]) / y[test] - 1)
    return [float(e) for e in err]


def _draw_new(draw: Callable[[], OpSpec | None], n: int, taken: set[str]) -> list[OpSpec]:
    out: list[OpSpec] = []
    for _ in range(200 * n + 200):
        if len(out) >= n:
            break
        op = draw()
        if op is not None and op.key not in taken:
            taken.add(op.key)
            out.append(op)
    return out


def sample_adaptive(
    space: Space,
    n: int,
    measure: Callable[[list[OpSpec]], list[float]],
    *,
    seed: int = 0,
    rounds: int = 3,
    initial_fraction: float = 0.5,
    known: Sequence[tuple[OpSpec, float]] = (),
    on_round: Callable[[AdaptiveRound], None] | None = None,
) -> tuple[list[OpSpec], list[AdaptiveRound]]:
    """``n`` new configs, measured in ``rounds``: first ``initial_fraction`` of them drawn from ``space``
    (its prior), then each round's share near the configs the predictor gets most wrong out of fold
    (the worst quarter, chosen in proportion to their error), as nn-Meter's adaptive sampler does. No
    key is drawn twice, nor one of ``known`` ((spec, ms) already measured, e.g. the table's rows, which
    also train the fits). ``measure(specs) -> ms`` measures a round."""
    if n < 1 or rounds < 1 or not 0 < initial_fraction <= 1:
        raise ValueError(
            f"need n >= 1, rounds >= 1 and 0 < initial_fraction <= 1 (got {n}, {rounds}, {initial_fraction})"
        )
    rng = random.Random(seed)
    seen = _seen(space.prior)
    specs = [s for s, _ in known]
    ms = [float(m) for _, m in known]
    taken = {s.key for s in specs}
    new: list[OpSpec] = []
    log: list[AdaptiveRound] = []
    first = n if rounds == 1 else max(1, math.ceil(n * initial_fraction))
    for r in range(rounds):
        want = first if r == 0 else math.ceil((n - len(new)) / (rounds - r))
        if want <= 0:
            break
        cv: dict[str, float] = {}
        near = 0
        if r == 0:
            batch = _draw_new(lambda: space.draw(rng), want, taken)
        else:
            err = out_of_fold_errors(specs, ms, seed=seed + r)
            scored = sorted((e, i) for i, e in enumerate(err) if math.isfinite(e))
            for kind in {s.kind for s in specs}:
                errs = [e for e, i in scored if specs[i].kind == kind]
                if errs:
                    cv[kind] = sum(errs) / len(errs)
            worst = scored[-max(1, len(scored) // 4) :] if scored else []
            if worst:
                weights = [e + 1e-6 for e, _ in worst]

                def near_worst(worst=worst, weights=weights, pool=tuple(specs)) -> OpSpec | None:
                    _, i = rng.choices(worst, weights=weights)[0]
                    return perturb(pool[i], rng, seen)

                batch = _draw_new(near_worst, want, taken)
                near = len(batch)
            else:
                batch = []
            batch += _draw_new(lambda: space.draw(rng), want - len(batch), taken)  # top up from the prior
        if not batch:
            break
        got = measure(batch)
        specs += batch
        ms += [float(m) for m in got]
        new += batch
        log.append(AdaptiveRound(r, len(batch), near, cv))
        if on_round is not None:
            on_round(log[-1])
    return new, log
