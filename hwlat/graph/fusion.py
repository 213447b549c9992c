"""Learned fusion rules: which op pairs a device runs as one kernel, found by timing them.

nn-Meter's rule tester times, for each pair of ops, the pair against its two parts: when the
pair costs about what its first op costs alone, the runtime fused the second into it. Here each
:data:`PAIRS` entry is three small torch modules (the pair, the head alone, the follower alone)
plus an identity model for the fixed cost of one inference call. With ``o`` that cost, the
follower's share of the pair is ``(t_pair - t_head) / (t_follower - o)``: near 0 when it is fused,
near 1 when it runs as a kernel of its own.

A share is only worth a verdict when the follower's own cost is large against the head's
run-to-run noise, so the test ops are sized for that: every follower works on an 802,816-element
map (256x56x56, or 16x224x224 for the residual pairs, 3136 tokens x 256 for linear), 0.1-0.9 ms
on one CPU core, behind a head with few MACs on that map (a 1x1 convolution from 16 channels, a
3x3 depthwise convolution, a linear layer from 16 features). And one measurement is not enough:
the four models of a pair are measured together (their blocks interleaved by the measurement
loop, so a busy spell of the machine hits all four alike) in :data:`ROUNDS` independent rounds,
each round giving one share. The verdict is read off a distribution-free confidence interval of
the median share (order statistics of the rounds; with 8 rounds the second lowest and second
highest, 93 %, so one wild round at either end does not sway it):
``fused`` when the whole interval lies below :data:`FUSED_BELOW`, ``separate`` when it lies above,
``undecided`` otherwise. An undecided pair keeps the runtime's default rule.

The verdict is about cost: "fused" means the follower adds less than half its own cost to the
pair. That is what kernel detection needs for prediction, and it is not always what the runtime's
graph shows (``benchmarks/fusion_rules.py`` checks each verdict against it): ONNX Runtime 1.32
fuses Clip, Sigmoid and Tanh into its NCHWc Conv, yet only a fused Relu is free, the others cost
a whole pass as they do alone; a residual Add fused into a Conv (a Sum input) still costs 0.8 of an
Add, as it reads its second operand. LiteRT's converter fuses RELU and RELU6 into ADD and MUL, yet
under XNNPACK they cost what a RELU alone does; fused into CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED they are free.

:func:`learned_rule_set` turns the decided verdicts into a :class:`~hwlat.graph.kernels.RuleSet`
derived from the runtime's default one: in the conv, linear, norm and elementwise patterns the
activation steps accept the activations found fused after that head, plus those not decided; a
conv's residual add stays unless conv+add ran separate (then a conv -> add -> relu stays one
kernel only when conv+add+relu fused), and an activation after the residual is set by
conv+add+relu. :class:`FusionRules` are stored in the device's latency table
(:meth:`hwlat.store.LatencyStore.set_fusion_rules`); a predictor fitted on that table detects
kernels with them (``LatencyPredictor.fusion_rules_``). Rules stored by the first version (format
``hwlat.fusion-rules/1``: one measurement per model, no interval) still load; their pairs are
undecided.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwlat.graph.kernels import Pattern, RuleSet, Step, detect_kernels, rule_set_for

__all__ = [
    "CONTROLS",
    "FUSED_BELOW",
    "LEVEL",
    "PAIRS",
    "ROUNDS",
    "FusionRules",
    "PairResult",
    "learned_rule_set",
    "median_ci",
    "pair_models",
    "run_pair_tests",
]

FUSED_BELOW = 0.5
ROUNDS = 8  # independent rounds per pair: the 2nd lowest and 2nd highest of 8 shares are a 93 % interval of the median
LEVEL = 0.9  # the least coverage of the interval a verdict is read from
FORMAT = "hwlat.fusion-rules/2"
_FORMATS = ("hwlat.fusion-rules/1", FORMAT)
# (name, head, follower). Heads: "conv" (1x1, 16 -> 256 channels at 56x56), "dwconv" (3x3 depthwise,
# 256 channels at 56x56), "linear" (16 -> 256 features, 3136 tokens), "add" (a map plus a map, flat),
# "batchnorm", "conv+add" (a residual: conv(y) + y with y = conv(x), 16 channels at 224x224).
# Followers: an activation, "add" (the residual add: after a conv, the conv+add head without it),
# "batchnorm" or "maxpool".
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("conv+relu", "conv", "relu"),
    ("conv+relu6", "conv", "relu6"),
    ("conv+hardswish", "conv", "hardswish"),
    ("conv+sigmoid", "conv", "sigmoid"),
    ("conv+silu", "conv", "silu"),
    ("conv+gelu", "conv", "gelu"),
    ("conv+tanh", "conv", "tanh"),
    ("conv+add", "conv", "add"),
    ("conv+add+relu", "conv+add", "relu"),
    ("dwconv+relu", "dwconv", "relu"),
    ("dwconv+relu6", "dwconv", "relu6"),
    ("dwconv+hardswish", "dwconv", "hardswish"),
    ("dwconv+silu", "dwconv", "silu"),
    ("linear+relu", "linear", "relu"),
    ("linear+gelu", "linear", "gelu"),
    ("add+relu", "add", "relu"),
    ("add+relu6", "add", "relu6"),
    ("batchnorm+relu", "batchnorm", "relu"),
    ("conv+batchnorm", "conv", "batchnorm"),
    ("conv+maxpool", "conv", "maxpool"),
)
# Pairs that set no rule. conv+batchnorm checks the method: every exporter folds a BatchNorm after a
# conv into its weights, so its share must be ~0. conv+maxpool is reported only (pools are kernels of
# their own in every rule set); on ONNX Runtime the max pool alone pays NCHWc layout reorders that it
# does not pay behind a conv, which pulls its share down to ~0.5.
CONTROLS = frozenset({"conv+batchnorm", "conv+maxpool"})
# Which default pattern each head's verdicts adjust.
_PATTERN_OF = {
    "conv": "conv",
    "dwconv": "conv",
    "conv+add": "conv",
    "linear": "linear",
    "add": "elementwise",
    "batchnorm": "norm",
}
_ACTS = ("relu", "relu6", "hardswish", "sigmoid", "silu", "gelu", "tanh")
C, HW = 256, 56  # the followers' map: 256x56x56 = 802,816 values
CIN = 16  # the conv and linear heads' input channels / features: few MACs per output value
RES_C, RES_HW = 16, 224  # the residual pairs' map: 16x224x224, the same size
TOKENS = HW * HW


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


def _modules(head: str, follower: str) -> tuple[tuple[Any, tuple[int, ...]], ...]:
    """((pair, shape), (head alone, shape), (follower alone, shape)) as eval-mode torch modules."""
    import torch
    import torch.nn as nn

    class Sum(nn.Module):  # x + a full-size tensor: an element-wise add of two maps
        def __init__(self, shape: tuple[int, ...]) -> None:
            super().__init__()
            self.register_buffer("other", torch.rand(shape))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.other

    class Norm(nn.BatchNorm2d):  # a trained BatchNorm: statistics and affine terms away from 0 and 1
        def __init__(self, c: int) -> None:
            super().__init__(c)
            with torch.no_grad():
                self.running_mean.uniform_(-0.5, 0.5)
                self.running_var.uniform_(0.5, 1.5)
                self.weight.uniform_(0.5, 1.5)
                self.bias.uniform_(-0.5, 0.5)

    class Flattened(nn.Module):  # body(x).flatten(1): pair and head alike end in a Reshape
        def __init__(self, *body: nn.Module) -> None:
            super().__init__()
            self.body = nn.Sequential(*body)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).flatten(1)

    class Residual(nn.Module):  # y = a(x); b(y) [+ y] [-> act]: the add reads a conv's output, as in a real block
        def __init__(self, add: bool, act: nn.Module | None = None) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(RES_C, RES_C, 1), nn.Conv2d(RES_C, RES_C, 1)
            self.add, self.act = add, act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            z = self.b(y) + y if self.add else self.b(y)
            return self.act(z) if self.act is not None else z

    big = (1, C, HW, HW)
    res = (1, RES_C, RES_HW, RES_HW)
    # Element-wise models alone take the map flattened channel-last (the same values, the same work): LiteRT's
    # converter would wrap a lone 4-d element-wise op in layout TRANSPOSEs, which nothing anchors.
    flat, flat_res = (1, HW * HW, C), (1, RES_HW * RES_HW, RES_C)
    if follower == "add":  # the residual: conv(y) + y against conv(y)
        return (Residual(True), res), (Residual(False), res), (Sum(flat_res), flat_res)
    if head == "conv+add":
        return (Residual(True, _act(follower)), res), (Residual(True), res), (_act(follower), flat_res)
    if head in ("linear", "add"):  # all element-wise or token-wise: flat
        shape: tuple[int, ...] = (1, TOKENS, CIN) if head == "linear" else flat
        make: Callable[[], nn.Module] = (lambda: nn.Linear(CIN, C)) if head == "linear" else (lambda: Sum(flat))
    else:
        shape = (1, CIN, HW, HW) if head == "conv" else big
        make = {
            "conv": lambda: nn.Conv2d(CIN, C, 1),
            "dwconv": lambda: nn.Conv2d(C, C, 3, padding=1, groups=C),
            "batchnorm": lambda: Norm(C),
        }[head]
    if follower == "batchnorm":
        alone, out = Norm(C), big
    elif follower == "maxpool":
        alone, out = nn.MaxPool2d(3, stride=1, padding=1), big
    else:
        alone, out = _act(follower), flat
    if head == "linear":
        # ONNX Runtime runs a 3-d Linear as Reshape -> Gemm -> Reshape, and a Reshape that writes the graph's
        # output copies it: the head alone would pay a copy the pair does not (its Relu writes the output), and
        # the follower would look free. Both end in the same flatten, so both pay it.
        return (Flattened(make(), alone), shape), (Flattened(make()), shape), (alone, out)
    return (nn.Sequential(make(), alone), shape), (make(), shape), (alone, out)


def pair_models(name: str, head: str, follower: str) -> tuple[Any, Any, Any]:
    """The pair, its head and its follower as measurable :class:`hwlat.graph.Model` items."""
    from hwlat.graph.model import load_model

    parts = _modules(head, follower)
    return tuple(
        load_model(m.eval(), input_shape=shape, name=f"fusion-{name}-{part}")
        for (m, shape), part in zip(parts, ("pair", "head", "follower"))
    )


def _overhead_model() -> Any:
    import torch.nn as nn

    from hwlat.graph.model import load_model

    return load_model(nn.ReLU().eval(), input_shape=(1, 8), name="fusion-call-overhead")


# ------------------------------------------------------------------ verdicts
def median_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(low, high, coverage): a distribution-free confidence interval of the median of ``values``.

    The interval runs from the k-th lowest to the k-th highest value, with k the largest whose
    coverage ``1 - 2 P(B < k)``, B ~ Binomial(n, 1/2), is at least ``level``; when even the lowest
    and highest do not reach it (fewer than 5 values at 0.9), they are returned with their coverage.
    NaN values give a NaN interval."""
    x = sorted(float(v) for v in values)
    n = len(x)
    if n == 0 or any(math.isnan(v) for v in x):
        return math.nan, math.nan, 0.0
    at_most = 0.0  # P(B <= k)
    best = (x[0], x[-1], 1.0 - 2.0 * 0.5**n)
    for k in range(n // 2):
        at_most += math.comb(n, k) * 0.5**n
        coverage = 1.0 - 2.0 * at_most
        if coverage < level:
            break
        best = (x[k], x[n - 1 - k], coverage)
    return best


@dataclass(frozen=True)
class PairResult:
    """One pair's timings (ms) and verdict, with what the runtime's default rules assume.

    ``rounds`` holds (pair, head, follower, overhead) ms per independent round; the four
    ``*_ms`` fields are their medians (format 1 stored one measurement each and no rounds)."""

    name: str
    head: str
    follower: str
    pair_ms: float
    head_ms: float
    follower_ms: float
    overhead_ms: float
    default_fused: bool
    rounds: tuple[tuple[float, float, float, float], ...] = ()
    level: float = LEVEL

    @staticmethod
    def from_rounds(
        name: str, head: str, follower: str, rounds: Sequence[Sequence[float]], default: bool, level: float = LEVEL
    ) -> PairResult:
        rows = tuple(tuple(float(v) for v in r) for r in rounds)
        if not rows or any(len(r) != 4 for r in rows):
            raise ValueError(f"{name}: give at least one round of (pair, head, follower, overhead) ms")
        medians = [statistics.median(col) for col in zip(*rows)]
        return PairResult(name, head, follower, *medians, default, rows, level)  # type: ignore[arg-type]

    @staticmethod
    def _share(pair: float, head: float, follower: float, overhead: float) -> float:
        alone = follower - overhead
        return (pair - head) / alone if alone > 0 else math.nan

    @property
    def shares(self) -> tuple[float, ...]:
        """The follower's share of the pair in each round (NaN where the follower cost no more than a call)."""
        return tuple(self._share(*r) for r in self.rounds)

    @property
    def follower_share(self) -> float:
        """The median share (0: fused, 1: a kernel of its own); format 1: from the one measurement."""
        if self.rounds:
            return statistics.median(self.shares) if not any(map(math.isnan, self.shares)) else math.nan
        return self._share(self.pair_ms, self.head_ms, self.follower_ms, self.overhead_ms)

    @property
    def ci(self) -> tuple[float, float, float]:
        """(low, high, coverage) of the median share; NaN without rounds."""
        return median_ci(self.shares, self.level) if self.rounds else (math.nan, math.nan, 0.0)

    @property
    def follower_cost_ms(self) -> float:
        """The follower's own cost: its time alone less a call's, the median over rounds."""
        if not self.rounds:
            return self.follower_ms - self.overhead_ms
        return statistics.median(f - o for _, _, f, o in self.rounds)

    @property
    def head_spread_ms(self) -> float:
        """The head's run-to-run spread over the rounds: the width of the same order statistics as the
        interval (with 8 rounds, 2nd highest less 2nd lowest); NaN with fewer than 2 rounds."""
        return self._spread([h for _, h, _, _ in self.rounds])

    @property
    def diff_spread_ms(self) -> float:
        """The run-to-run spread of what a share reads, pair less head (as :attr:`head_spread_ms`)."""
        return self._spread([pr - h for pr, h, _, _ in self.rounds])

    def _spread(self, values: Sequence[float]) -> float:
        if len(values) < 2:
            return math.nan
        lo, hi, _ = median_ci(values, self.level)
        return hi - lo

    @property
    def resolution(self) -> float:
        """The follower's own cost over the spread of pair less head: how finely a share can be read.

        (The head's own spread, :attr:`head_spread_ms`, also holds the machine's drift between rounds,
        which the four models of a round share and the share cancels.)"""
        spread = self.diff_spread_ms
        if math.isnan(spread):
            return math.nan
        return self.follower_cost_ms / spread if spread > 0 else math.inf

    @property
    def verdict(self) -> str:
        """``fused`` or ``separate`` when the whole interval is on one side of FUSED_BELOW, else ``undecided``."""
        lo, hi, coverage = self.ci
        if math.isnan(lo) or coverage < self.level:
            return "undecided"
        if hi < FUSED_BELOW:
            return "fused"
        if lo > FUSED_BELOW:
            return "separate"
        return "undecided"

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"

    @property
    def fused(self) -> bool:
        """Decided fused (an undecided pair is not)."""
        return self.verdict == "fused"

    @property
    def differs(self) -> bool:
        """Decided, and not what the runtime's default rules say."""
        return self.decided and self.fused != self.default_fused

    @property
    def why_undecided(self) -> str:
        if self.decided:
            return ""
        if not self.rounds:
            return "one measurement (format 1): no interval"
        lo, hi, coverage = self.ci
        if math.isnan(lo):
            return "the follower alone cost no more than a call"
        if coverage < self.level:
            return f"{len(self.rounds)} rounds give only a {100 * coverage:.0f} % interval"
        return f"interval {lo:.2f}..{hi:.2f} spans {FUSED_BELOW}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class FusionRules:
    """The pair verdicts learned on one device (JSON: :meth:`to_json` / :meth:`from_json`)."""

    device_key: str
    pairs: list[PairResult]
    created_at: str = field(default_factory=_now)
    hwlat_version: str = ""
    wall_s: float = 0.0  # how long learning them took
    format: str = FORMAT

    def fused(self) -> dict[str, bool]:
        """{pair: decided fused}."""
        return {p.name: p.fused for p in self.pairs}

    def verdicts(self) -> dict[str, str]:
        """{pair: fused | separate | undecided}."""
        return {p.name: p.verdict for p in self.pairs}

    def rule_set(self) -> RuleSet:
        return learned_rule_set(rule_set_for(self.device_key), self.pairs)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "device_key": self.device_key,
                "created_at": self.created_at,
                "hwlat_version": self.hwlat_version,
                "wall_s": self.wall_s,
                "fused_below": FUSED_BELOW,
                "pairs": [dataclasses.asdict(p) for p in self.pairs],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FusionRules:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") not in _FORMATS:
            raise ValueError(f"not hwlat fusion rules (format {' or '.join(_FORMATS)})")
        known = {f.name for f in dataclasses.fields(PairResult)}
        pairs = []
        for p in data["pairs"]:
            p = {k: v for k, v in p.items() if k in known}
            p["rounds"] = tuple(tuple(r) for r in p.get("rounds") or ())
            pairs.append(PairResult(**p))
        return cls(
            data["device_key"],
            pairs,
            data["created_at"],
            data.get("hwlat_version", ""),
            float(data.get("wall_s") or 0.0),
            data["format"],
        )

    def table(self) -> str:
        # the intervals' coverage (8 rounds: 93 %; at least each pair's level where it has rounds)
        level = min((p.ci[2] for p in self.pairs if p.rounds), default=LEVEL)
        rows = [
            (
                "pair",
                "pair ms",
                "head ms",
                "follower ms",
                "cost/noise",
                "share",
                f"{100 * level:.0f} % CI",
                "verdict",
                "default",
                "",
            )
        ]
        for p in self.pairs:
            lo, hi, _ = p.ci
            res = p.resolution
            default = "fused" if p.default_fused else "separate"
            if p.decided:
                note = "DIFFERS" if p.differs else ""
            else:
                note = f"default kept ({p.why_undecided})"
            if p.name in CONTROLS:
                note = ("no rule; " + note) if note else "no rule"
            rows.append(
                (
                    p.name,
                    f"{p.pair_ms:.3f}",
                    f"{p.head_ms:.3f}",
                    f"{p.follower_ms:.3f}",
                    "-" if math.isnan(res) else ("inf" if math.isinf(res) else f"{res:.0f}x"),
                    f"{p.follower_share:.2f}",
                    "-" if math.isnan(lo) else f"{lo:.2f}..{hi:.2f}",
                    p.verdict,
                    default,
                    note,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def summary(self) -> str:
        """One line: how many pairs fuse, run separate, are undecided, and which differ from the defaults."""
        v = list(self.verdicts().values())
        differ = [p.name for p in self.pairs if p.differs and p.name not in CONTROLS]
        return (
            f"{self.device_key}: {v.count('fused')} fused, {v.count('separate')} separate, "
            f"{v.count('undecided')} undecided (default kept) of {len(v)} pairs; "
            + (
                f"{len(differ)} differ from the default rules ({', '.join(differ)})"
                if differ
                else "none differ from the default rules"
            )
        )


def default_fused(device: str, models: Sequence[Any]) -> bool:
    """Whether the runtime's default rules run the pair model as one kernel more than its head, i.e. fuse the
    follower into the head's kernel."""
    pair, head = models[0], models[1]
    return len(detect_kernels(pair.graph(), device=device)) == len(detect_kernels(head.graph(), device=device))


# ------------------------------------------------------------------ rules from verdicts
def _with_ops(step: Step, ops: frozenset[str]) -> Step:
    return Step(ops, frozenset(), step.optional)


def _with_steps(pat: Pattern, steps: Sequence[Step]) -> Pattern:
    return dataclasses.replace(pat, steps=tuple(steps))


def _is_act(step: Step) -> bool:
    from hwlat.graph.vocab import op_category

    return "activation" in step.categories or bool(step.ops and all(op_category(o) == "activation" for o in step.ops))


def _is_add(step: Step) -> bool:
    return step.ops == frozenset({"add"}) and not step.categories


def _category_ops(step: Step) -> set[str]:
    from hwlat.graph.vocab import ops_in_category

    return {op for cat in step.categories for op in ops_in_category(cat)}


def _act_step(step: Step, fused: set[str], tested: set[str]) -> Step | None:
    """``step`` accepting the fused activations and the untested ones it accepted (None: none)."""
    untested = (set(step.ops) | _category_ops(step)) - tested
    if "relu6" in tested:
        untested.discard("clip")  # clip stands with relu6
    ops = frozenset(fused | untested)
    return _with_ops(step, ops) if ops else None


def _conv_patterns(
    pat: Pattern,
    act: Callable[[Step], Step | None],
    residual: bool | None,
    residual_relu: bool | None,
    after_residual: Callable[[Step], Step | None],
) -> list[Pattern]:
    """A conv pattern ``[pad?] conv batchnorm? mul? add? act? add? act?`` rewritten by the verdicts.

    ``residual`` False (conv+add ran separate): no residual add; an ``add`` stays only right after a
    ``mul`` (a folded BatchNorm's scale and bias), except that when ``residual_relu`` (conv+add+relu
    fused: the relu after the residual add is free) a conv -> add -> relu is still one kernel (ONNX
    Runtime's Conv with a Sum input and a Relu). True or None (undecided): kept, and when the
    activations allowed after the residual (``after_residual``, set by conv+add+relu) differ from
    those after the conv, a pattern with the residual add required comes first."""
    steps = list(pat.steps)
    first_add = next((i for i, s in enumerate(steps) if i and _is_add(s) and s.optional), None)
    if first_add is None:
        return [_with_steps(pat, [x for s in steps for x in ([act(s)] if _is_act(s) and s.optional else [s]) if x])]
    prefix, tail = steps[:first_add], steps[first_add:]
    first_act = next((s for s in tail if _is_act(s) and s.optional), None)
    a = act(first_act) if first_act is not None else None
    if residual is False:
        out = []
        if residual_relu:
            add = steps[first_add]
            out.append(
                _with_steps(
                    pat, [*prefix, Step(add.ops, add.categories, False), Step(frozenset({"relu"}), frozenset(), False)]
                )
            )
        if prefix and prefix[-1].ops == frozenset({"mul"}) and prefix[-1].optional:
            scaled = [*prefix[:-1], Step(prefix[-1].ops, prefix[-1].categories, False), steps[first_add]]
            out.append(_with_steps(pat, scaled + ([a] if a else [])))
            prefix = prefix[:-1]
        out.append(_with_steps(pat, prefix + ([a] if a else [])))
        return out
    rewritten = [x for s in tail for x in ([act(s)] if _is_act(s) and s.optional else [s]) if x]
    plain = _with_steps(pat, prefix + rewritten)
    ar = after_residual(first_act) if first_act is not None else None
    if first_act is None or ar == a:
        return [plain]
    add = steps[first_add]
    required = [*prefix, Step(add.ops, add.categories, False)] + ([ar] if ar else [])
    return [_with_steps(pat, required), plain]


def learned_rule_set(default: RuleSet, pairs: Sequence[PairResult]) -> RuleSet:
    """``default`` with its activation steps (and a conv's residual add) set by the decided verdicts.

    For each head's pattern (conv, linear, norm, elementwise), an activation step accepts the
    activations found fused after that head (``clip`` stands with relu6) and those not decided, and
    is dropped when that leaves none; a conv's residual add is dropped when conv+add ran separate
    (an ``add`` stays only after a ``mul``: a folded BatchNorm, or when conv+add+relu fused, before a
    relu); conv+add+relu sets relu after the residual. Undecided pairs, untested pairs, activations
    on which conv and dwconv disagree, and the pairs that set no rule keep the default's steps."""
    seen: dict[tuple[str, str], set[bool]] = {}  # (pattern, follower) -> the decided verdicts (conv and dwconv)
    for p in pairs:
        if not p.decided or p.name in CONTROLS:
            continue
        pattern = _PATTERN_OF.get(p.head)
        if p.head == "conv+add":
            pattern, follower = "residual", p.follower
        elif p.follower == "add" and pattern == "conv":
            pattern, follower = "residual", "add"
        elif pattern is None or p.follower not in _ACTS:
            continue
        else:
            follower = p.follower
        seen.setdefault((pattern, follower), set()).add(p.fused)
    agreed = {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}  # heads that disagree: the default stays
    fused_after: dict[str, set[str]] = {}
    tested: dict[str, set[str]] = {}
    for (pattern, follower), fused_ in agreed.items():
        if pattern == "residual":
            continue
        tested.setdefault(pattern, set()).add(follower)
        if fused_:
            fused_after.setdefault(pattern, set()).update({follower, "clip"} if follower == "relu6" else {follower})
    residual = agreed.get(("residual", "add"))
    residual_relu = agreed.get(("residual", "relu"))
    kernels: list[Pattern] = []
    for pat in default.kernels:
        name = pat.name
        if name not in tested and not (name == "conv" and (residual is not None or residual_relu is not None)):
            kernels.append(pat)
            continue
        fused, done = fused_after.get(name, set()), tested.get(name, set())

        def act(step: Step, fused=fused, done=done) -> Step | None:
            return _act_step(step, fused, done)

        if name != "conv":
            steps = [pat.steps[0]] + [
                x for s in pat.steps[1:] for x in ([act(s)] if _is_act(s) and s.optional else [s]) if x
            ]
            kernels.append(_with_steps(pat, steps))
            continue

        def after_residual(step: Step, fused=fused, done=done) -> Step | None:
            if residual_relu is None:
                return _act_step(step, fused, done)
            return _act_step(step, (fused | {"relu"}) if residual_relu else (fused - {"relu"}), done | {"relu"})

        kernels.extend(_conv_patterns(pat, act, residual, residual_relu, after_residual))
    # replace(): whatever else a rule set or pattern carries (its layout, ...) stays as the default has it
    return dataclasses.replace(default, name=f"{default.name}+learned", kernels=tuple(kernels))


# ------------------------------------------------------------------ measuring
def _loop_measure(backend: Any, protocol: Any) -> Callable[[Sequence[Any]], list[float]]:
    """measure(items) -> median ms each, with the normal measurement loop (its blocks interleaved)."""
    from hwlat.measure import measure as loop

    def measure(items: Sequence[Any]) -> list[float]:
        by_key = {m.op_key: float(m.median_ms) for m in loop(backend, list(items), protocol)}
        return [by_key[it.key] for it in items]

    return measure


def run_pair_tests(
    backend: Any,
    protocol: Any,
    *,
    pattern: str = "*",
    rounds: int = ROUNDS,
    quiet: bool = True,
    measure: Callable[[Sequence[Any]], Sequence[float]] | None = None,
) -> FusionRules:
    """Time every pair of :data:`PAIRS` matching ``pattern`` on ``backend`` in ``rounds`` rounds; return the verdicts.

    Each round measures, for every pair in turn, its four models together: the call-overhead model,
    the pair, the head and the follower (their order rotated from round to round), so drift hits the
    four alike and rounds are independent. ``measure(items) -> ms`` replaces the measurement loop
    (tests); it is called once per pair and round, with the items in that round's order."""
    import hwlat
    from hwlat.workflows import check_items

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    chosen = [p for p in PAIRS if fnmatch.fnmatchcase(p[0], pattern)]
    if not chosen:
        raise ValueError(f"no fusion pair matches {pattern!r}; pairs: {', '.join(p[0] for p in PAIRS)}")
    t0 = time.perf_counter()
    models = [pair_models(*p) for p in chosen]
    overhead = _overhead_model()
    everything = [overhead] + [m for triple in models for m in triple]
    check_items(backend, everything, backend.spec.batch)
    from tqdm.auto import tqdm

    if measure is None:
        from hwlat.devices import Backend

        if type(backend).convert is not Backend.convert:  # convert first (LiteRT: seconds per model, then cached)
            for it in tqdm(everything, desc="converting", unit="model", disable=quiet, file=sys.stderr):
                backend.convert(it)
        measure = _loop_measure(backend, protocol)
    key = backend.spec.key
    timings: list[list[tuple[float, float, float, float]]] = [[] for _ in chosen]
    with tqdm(
        total=rounds * len(chosen), desc=f"{key} fusion pairs", unit="pair", disable=quiet, file=sys.stderr
    ) as bar:
        for r in range(rounds):
            for i, triple in enumerate(models):
                quad = [overhead, *triple]  # 0 overhead, 1 pair, 2 head, 3 follower
                order = [(j + r) % 4 for j in range(4)]
                ms = list(measure([quad[j] for j in order]))
                if len(ms) != 4:
                    raise RuntimeError(f"measured {len(ms)} of 4 fusion-test models")
                got = dict(zip(order, ms))
                timings[i].append((got[1], got[2], got[3], got[0]))
                bar.update(1)
    results = [
        PairResult.from_rounds(name, head, follower, timings[i], default_fused(key, models[i]))
        for i, (name, head, follower) in enumerate(chosen)
    ]
    return FusionRules(key, results, hwlat_version=hwlat.__version__, wall_s=round(time.perf_counter() - t0, 1))
