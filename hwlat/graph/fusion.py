"""Learned fusion rules: which op pairs a device runs as one kernel, found by timing them.

nn-Meter's rule tester times, for each pair of ops, the pair against its two parts: when the
pair costs about what its first op costs alone, the runtime fused the second into it. Here each
:data:`PAIRS` entry is three small torch modules (the pair, the head alone, the follower alone)
measured on the device with the normal measurement loop, interleaved (pair, head, follower, then
the next pair), plus an identity model for the fixed cost of one inference call. With ``o`` that
cost, the follower's share of the pair is ``(t_pair - t_head) / (t_follower - o)``: near 0 when it
is fused, near 1 when it runs as a kernel of its own; a pair is fused when the share is below
:data:`FUSED_BELOW`.

:func:`learned_rule_set` turns the verdicts into a :class:`~hwlat.graph.kernels.RuleSet` derived from
the runtime's default one: in the conv, linear, norm and elementwise patterns, the activation
steps accept exactly the activations found fused after that head, and a conv's residual add stays
only when conv+add fused. :class:`FusionRules` are stored in the device's latency table
(:meth:`hwlat.store.LatencyStore.set_fusion_rules`); a predictor fitted on that table detects
kernels with them (``LatencyPredictor.fusion_rules_``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwlat.graph.kernels import Pattern, RuleSet, Step, detect_kernels, rule_set_for

__all__ = ["FUSED_BELOW", "PAIRS", "FusionRules", "PairResult", "learned_rule_set", "pair_models", "run_pair_tests"]

FUSED_BELOW = 0.5
# (name, head, follower): the head is "conv" (3x3), "dwconv" (3x3 depthwise), "linear", "add" (two
# activations) or "batchnorm"; the follower an activation, "batchnorm" or "add" (a residual).
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("conv+relu", "conv", "relu"),
    ("conv+relu6", "conv", "relu6"),
    ("conv+hardswish", "conv", "hardswish"),
    ("conv+sigmoid", "conv", "sigmoid"),
    ("conv+silu", "conv", "silu"),
    ("conv+gelu", "conv", "gelu"),
    ("conv+tanh", "conv", "tanh"),
    ("conv+add", "conv", "add"),
    ("dwconv+relu6", "dwconv", "relu6"),
    ("dwconv+hardswish", "dwconv", "hardswish"),
    ("linear+relu", "linear", "relu"),
    ("linear+gelu", "linear", "gelu"),
    ("add+relu", "add", "relu"),
    ("add+relu6", "add", "relu6"),
    ("batchnorm+relu", "batchnorm", "relu"),
)
# Which default pattern each head's verdicts adjust.
_PATTERN_OF = {"conv": "conv", "dwconv": "conv", "linear": "linear", "add": "elementwise", "batchnorm": "norm"}
_ACTS = ("relu", "relu6", "hardswish", "sigmoid", "silu", "gelu", "tanh")
C, HW, TOKENS, WIDTH = 64, 28, 64, 256  # big enough that each op's time clearly exceeds a call's fixed cost


# ------------------------------------------------------------------ the test models
def _act(name: str):
    import torch.nn as nn

    return {
        "relu": nn.ReLU(),
        "relu6": nn.ReLU6(),
        "hardswish": nn.Hardswish(),
        "sigmoid": nn.Sigmoid(),
        "silu": nn.SiLU(),
        "gelu": nn.GELU(),
        "tanh": nn.Tanh(),
    }[name]


def _modules(head: str, follower: str):
    """(pair, head alone, follower alone, input shape) as eval-mode torch modules."""
    import torch
    import torch.nn as nn

    class Residual(nn.Module):  # head(x) + x
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) + x

    class Sum(nn.Module):  # x + a full-size tensor: an element-wise add of two maps
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("other", torch.rand(1, C, HW, HW))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.other

    if head == "linear":
        shape = (1, TOKENS, WIDTH)
        first: nn.Module = nn.Linear(WIDTH, WIDTH)
    else:
        shape = (1, C, HW, HW)
        first = {
            "conv": lambda: nn.Conv2d(C, C, 3, padding=1),
            "dwconv": lambda: nn.Conv2d(C, C, 3, padding=1, groups=C),
            "add": Sum,
            "batchnorm": lambda: nn.BatchNorm2d(C),
        }[head]()
    if follower == "add":
        pair: nn.Module = Residual(first)
        alone: nn.Module = Sum()
    elif follower == "batchnorm":
        pair, alone = nn.Sequential(first, nn.BatchNorm2d(C)), nn.BatchNorm2d(C)
    else:
        pair, alone = nn.Sequential(first, _act(follower)), _act(follower)
    return pair.eval(), first.eval(), alone.eval(), shape


def pair_models(name: str, head: str, follower: str) -> tuple[Any, Any, Any]:
    """The pair, its head and its follower as measurable :class:`hwlat.graph.Model` items."""
    from hwlat.graph.model import load_model

    pair, first, alone, shape = _modules(head, follower)
    return tuple(
        load_model(m, input_shape=shape, name=f"fusion-{name}-{part}")
        for m, part in ((pair, "pair"), (first, "head"), (alone, "follower"))
    )


def _overhead_model() -> Any:
    import torch.nn as nn

    from hwlat.graph.model import load_model

    return load_model(nn.ReLU().eval(), input_shape=(1, 8), name="fusion-call-overhead")


# ------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class PairResult:
    """One pair's timings (ms) and verdict, with what the runtime's default rules assume."""

    name: str
    head: str
    follower: str
    pair_ms: float
    head_ms: float
    follower_ms: float
    overhead_ms: float
    default_fused: bool

    @property
    def follower_share(self) -> float:
        """The follower's cost inside the pair over its cost alone (0: fused, 1: a kernel of its own)."""
        alone = max(self.follower_ms - self.overhead_ms, 1e-9)
        return (self.pair_ms - self.head_ms) / alone

    @property
    def fused(self) -> bool:
        return self.follower_share < FUSED_BELOW

    @property
    def differs(self) -> bool:
        return self.fused != self.default_fused


@dataclass
class FusionRules:
    """The pair verdicts learned on one device (JSON: :meth:`to_json` / :meth:`from_json`)."""

    device_key: str
    pairs: list[PairResult]
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    hwlat_version: str = ""

    def fused(self) -> dict[str, bool]:
        return {p.name: p.fused for p in self.pairs}

    def rule_set(self) -> RuleSet:
        return learned_rule_set(rule_set_for(self.device_key), self.pairs)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": "hwlat.fusion-rules/1",
                "device_key": self.device_key,
                "created_at": self.created_at,
                "hwlat_version": self.hwlat_version,
                "pairs": [dataclasses.asdict(p) for p in self.pairs],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FusionRules:
        data = json.loads(text)
        if data.get("format") != "hwlat.fusion-rules/1":
            raise ValueError("not hwlat fusion rules (format hwlat.fusion-rules/1)")
        return cls(
            data["device_key"], [PairResult(**p) for p in data["pairs"]], data["created_at"], data["hwlat_version"]
        )

    def table(self) -> str:
        rows = [("pair", "pair ms", "head ms", "follower ms", "share", "learned", "default", "")]
        for p in self.pairs:
            rows.append(
                (
                    p.name,
                    f"{p.pair_ms:.3f}",
                    f"{p.head_ms:.3f}",
                    f"{p.follower_ms:.3f}",
                    f"{p.follower_share:.2f}",
                    "fused" if p.fused else "separate",
                    "fused" if p.default_fused else "separate",
                    "DIFFERS" if p.differs else "",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def default_fused(device: str, models: Sequence[Any]) -> bool:
    """Whether the runtime's default rules run the pair model as one kernel."""
    return len(detect_kernels(models[0].graph(), device=device)) == 1


# ------------------------------------------------------------------ rules from verdicts
def _with_ops(step: Step, ops: frozenset[str]) -> Step:
    return Step(ops, frozenset(), step.optional)


def learned_rule_set(default: RuleSet, pairs: Sequence[PairResult]) -> RuleSet:
    """``default`` with its activation steps (and a conv's residual add) set by the verdicts.

    For each head's pattern (conv, linear, norm, elementwise), an activation step accepts the
    activations found fused after that head (``clip`` stands with relu6), and is dropped when none
    was; pairs not tested keep the default's steps."""
    from hwlat.graph.vocab import op_category

    fused_after: dict[str, set[str]] = {}
    tested: dict[str, set[str]] = {}
    residual: dict[str, bool] = {}
    for p in pairs:
        pattern = _PATTERN_OF[p.head]
        if p.follower == "add":
            residual[pattern] = residual.get(pattern, False) or p.fused
            continue
        if p.follower not in _ACTS:
            continue
        tested.setdefault(pattern, set()).add(p.follower)
        if p.fused:
            fused_after.setdefault(pattern, set()).update(
                {p.follower, "clip"} if p.follower == "relu6" else {p.follower}
            )
    kernels = []
    for pat in default.kernels:
        if pat.name not in tested and pat.name not in residual:
            kernels.append(pat)
            continue
        steps: list[Step] = []
        seen_act = False
        for i, step in enumerate(pat.steps):
            is_act = "activation" in step.categories or (
                step.ops and all(op_category(o) == "activation" for o in step.ops)
            )
            if i and is_act and step.optional and pat.name in tested:
                fused = fused_after.get(pat.name, set())
                untested = (set(step.ops) | _category_ops(step)) - tested[pat.name]
                if "relu6" in tested[pat.name]:
                    untested.discard("clip")  # clip stands with relu6
                ops = frozenset(fused | untested)
                seen_act = True
                if ops:
                    steps.append(_with_ops(step, ops))
                continue
            if seen_act and step.ops == frozenset({"add"}) and step.optional and pat.name in residual:
                if residual[pat.name]:
                    steps.append(step)
                continue
            steps.append(step)
        kernels.append(Pattern(pat.name, tuple(steps), pat.closes_head_input))
    return RuleSet(f"{default.name}+learned", default.free, default.composites, tuple(kernels))


def _category_ops(step: Step) -> set[str]:
    from hwlat.graph.vocab import ops_in_category

    return {op for cat in step.categories for op in ops_in_category(cat)}


# ------------------------------------------------------------------ measuring
def run_pair_tests(
    backend: Any,
    protocol: Any,
    *,
    pattern: str = "*",
    store: Any = None,
    quiet: bool = True,
    measure: Callable[[Sequence[Any]], Sequence[float]] | None = None,
) -> FusionRules:
    """Time every pair of :data:`PAIRS` matching ``pattern`` on ``backend`` and return the verdicts.

    With a LatencyStore ``store`` the test models are measured into it as ordinary rows (resumable:
    a second run reuses them); ``measure(items) -> ms`` replaces the measurement loop (tests). Items
    are measured in the order pair, head, follower per pair, after one call-overhead model."""
    import hwlat

    chosen = [p for p in PAIRS if fnmatch.fnmatchcase(p[0], pattern)]
    if not chosen:
        raise ValueError(f"no fusion pair matches {pattern!r}; pairs: {', '.join(p[0] for p in PAIRS)}")
    if measure is None:

        def measure(items: Sequence[Any]) -> list[float]:
            from hwlat.store import LatencyStore
            from hwlat.workflows import run_measure

            with LatencyStore(":memory:") if store is None else contextlib.nullcontext(store) as target:
                run_measure(backend, list(items), target, protocol, quiet=quiet)
                rows = target.frame(backend.spec.key, provenance=False)
            rows = rows[rows["protocol"] == protocol.key]
            by_key = dict(zip(rows["op_key"], rows["median_ms"].astype(float)))
            return [by_key[it.key] for it in items]

    models = [pair_models(*p) for p in chosen]
    items = [_overhead_model()] + [m for triple in models for m in triple]
    ms = list(measure(items))
    if len(ms) != len(items):
        raise RuntimeError(f"measured {len(ms)} of {len(items)} fusion-test models")
    overhead = ms[0]
    key = backend.spec.key
    results = [
        PairResult(name, head, follower, *ms[1 + 3 * i : 4 + 3 * i], overhead, default_fused(key, triple))
        for i, ((name, head, follower), triple) in enumerate(zip(chosen, models))
    ]
    return FusionRules(key, results, hwlat_version=hwlat.__version__)
