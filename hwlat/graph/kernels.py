"""Kernels: the groups of graph nodes a runtime executes as one, and the op kind that measures each.

The rules are data (``hwlat/data/kernel_rules.yaml``, one rule set per runtime; see its header).
:func:`detect_kernels` collapses composites (x * sigmoid(x) -> SiLU), then walks the graph in
topological order and at each node not yet taken tries the rule set's patterns in order; a node
no pattern takes is a kernel of its own. Every kernel is then mapped to the :class:`~hwlat.ops.OpSpec`
kinds that can stand for it (:attr:`Kernel.specs`, best first), or says why none can
(:attr:`Kernel.why`): part 2 of "any model" adds kinds for the rest.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from hwlat.graph.core import Graph, GraphError, Node, format_shape
from hwlat.graph.vocab import op_category

__all__ = ["Kernel", "KernelSet", "RuleSet", "detect_kernels", "rule_set", "rule_set_for"]


# ------------------------------------------------------------------ rules (data)
@dataclass(frozen=True)
class Step:
    ops: frozenset[str]
    categories: frozenset[str]
    optional: bool

    @classmethod
    def parse(cls, text: str) -> Step:
        text = text.strip()
        optional = text.endswith("?")
        names = [p.strip() for p in text.rstrip("?").split("|") if p.strip()]
        if not names:
            raise GraphError(f"kernel rules: empty step {text!r}")
        ops = frozenset(n for n in names if not n.startswith("@"))
        cats = frozenset(n[1:] for n in names if n.startswith("@"))
        return cls(ops, cats, optional)

    def accepts(self, node: Node) -> bool:
        return node.op in self.ops or op_category(node.op) in self.categories


@dataclass(frozen=True)
class Pattern:
    name: str
    steps: tuple[Step, ...]
    closes_head_input: bool = False
    region: bool = False  # closes: region (see _region)

    @classmethod
    def parse(cls, data: dict[str, Any], where: str) -> Pattern:
        if not isinstance(data, dict) or "name" not in data or not data.get("steps"):
            raise GraphError(f"kernel rules ({where}): each pattern needs a name and steps, got {data!r}")
        closes = data.get("closes")
        if closes not in (None, "head_input", "region"):
            raise GraphError(f"kernel rules ({where}): closes must be head_input or region, not {closes!r}")
        steps = tuple(Step.parse(s) for s in data["steps"])
        if steps[0].optional:
            raise GraphError(f"kernel rules ({where}): pattern {data['name']}'s first step cannot be optional")
        return cls(str(data["name"]), steps, closes == "head_input", closes == "region")


@dataclass(frozen=True)
class RuleSet:
    """One runtime's kernel rules: free ops, composites and kernel patterns; ``layout`` is the layout the
    runtime keeps image tensors in ("NHWC" for LiteRT, whatever layout the graph it is given has), or ""
    (the graph's own)."""

    name: str
    free: frozenset[str]
    composites: tuple[Pattern, ...]
    kernels: tuple[Pattern, ...]
    layout: str = ""

    def describe(self) -> str:
        lines = [f"rule set {self.name}", f"  free: {', '.join(sorted(self.free))}"]
        if self.layout:
            lines.append(f"  layout: {self.layout} (image tensors, whatever the graph's layout)")
        for title, pats in (("composites", self.composites), ("kernels", self.kernels)):
            lines.append(f"  {title}:")
            for p in pats:
                steps = " -> ".join(
                    "|".join(sorted(s.ops) + [f"@{c}" for c in sorted(s.categories)]) + ("?" if s.optional else "")
                    for s in p.steps
                )
                closes = " (closes on the first node's input)" if p.closes_head_input else ""
                closes = (
                    " (a region: these nodes in any order, reading only the first one's input)" if p.region else closes
                )
                lines.append(f"    {p.name}: {steps}{closes}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def _rules_file() -> dict[str, Any]:
    import yaml

    text = resources.files("hwlat").joinpath("data/kernel_rules.yaml").read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or data.get("format") != "hwlat.kernel-rules/1":
        raise GraphError("hwlat/data/kernel_rules.yaml: not a kernel-rules file (format hwlat.kernel-rules/1)")
    return data


def parse_rule_sets(data: dict[str, Any]) -> dict[str, RuleSet]:
    """Rule sets of a kernel-rules document (``extends`` resolved)."""
    raw = data.get("rulesets") or {}
    out: dict[str, RuleSet] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        if name not in raw:
            raise GraphError(f"kernel rules: unknown rule set {name!r} (known: {', '.join(raw)})")
        if name in seen:
            raise GraphError(f"kernel rules: rule set {name!r} extends itself")
        body = dict(raw[name] or {})
        parent = body.pop("extends", None)
        return {**(resolve(parent, (*seen, name)) if parent else {}), **body}

    for name in raw:
        body = resolve(name)
        layout = body.get("layout") or ""
        if layout not in ("", "NCHW", "NHWC"):
            raise GraphError(f"kernel rules ({name}): layout must be NCHW or NHWC, not {layout!r}")
        kernels = tuple(Pattern.parse(p, name) for p in body.get("kernels") or ())
        if any(p.region for p in kernels):
            raise GraphError(f"kernel rules ({name}): closes: region is for composites, not kernels")
        out[name] = RuleSet(
            name,
            frozenset(body.get("free") or ()),
            tuple(Pattern.parse(p, name) for p in body.get("composites") or ()),
            kernels,
            layout,
        )
    return out


@functools.lru_cache(maxsize=1)
def _rule_sets() -> dict[str, RuleSet]:
    return parse_rule_sets(_rules_file())


def rule_set(name: str = "default") -> RuleSet:
    sets = _rule_sets()
    if name not in sets:
        raise GraphError(f"Unknown kernel rule set {name!r}; known: {', '.join(sets)}")
    return sets[name]


def rule_set_for(device: str | None) -> RuleSet:
    """The rule set of a device string or key (``litert-cpu/t1`` -> litert; unknown or None -> default)."""
    if not device:
        return rule_set("default")
    backend = device.partition("/")[0].partition(":")[0].partition("@")[0]
    return rule_set(_rules_file().get("backends", {}).get(backend, "default"))


# ------------------------------------------------------------------ kernels
@dataclass(frozen=True)
class Kernel:
    """One unit a runtime executes: its nodes, counters, and the op kinds that can stand for it."""

    name: str
    type: str
    nodes: tuple[Node, ...]
    macs: int
    params: int
    bytes: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    specs: tuple[Any, ...] = ()  # OpSpecs, best first
    why: str = ""  # why no OpSpec stands for it
    note: str = ""  # what the OpSpec leaves out (a fused residual add, ...)

    @property
    def ops(self) -> str:
        return "+".join(n.source_op or n.op for n in self.nodes)

    @property
    def signature(self) -> str:
        """Type and shapes: kernels with the same signature cost the same."""
        if self.specs:
            return self.specs[0].key
        return f"{self.type}:{format_shape(self.input_shape)}->{format_shape(self.output_shape)}:{self.macs}"


@dataclass
class KernelSet:
    """A graph's kernels under one rule set, and its free nodes."""

    graph: Graph
    rules: RuleSet
    kernels: list[Kernel]
    free: list[Node] = field(default_factory=list)

    def __iter__(self):
        return iter(self.kernels)

    def __len__(self) -> int:
        return len(self.kernels)

    @property
    def macs(self) -> int:
        return sum(k.macs for k in self.kernels)

    def type_counts(self) -> Counter[str]:
        return Counter(k.type for k in self.kernels)

    def unmapped(self) -> list[Kernel]:
        return [k for k in self.kernels if not k.specs]

    def table(self, limit: int | None = None) -> str:
        """A plain-text table: one line per kernel, in graph order."""
        rows = [("kernel", "type", "nodes", "in", "out", "MMACs", "op kind")]
        for k in self.kernels[:limit]:
            kind = k.specs[0].key if k.specs else f"- ({k.why})"
            rows.append(
                (
                    k.name,
                    k.type,
                    k.ops,
                    format_shape(k.input_shape),
                    format_shape(k.output_shape),
                    f"{k.macs / 1e6:.2f}",
                    kind,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        lines = ["  ".join(f"{c:{w}}" for c, w in zip(r[:6], widths)) + "  " + r[6] for r in rows]
        if limit is not None and len(self.kernels) > limit:
            lines.append(f"... {len(self.kernels) - limit} more")
        return "\n".join(lines)


def _chain(graph: Graph, head: Node, pattern: Pattern, taken: set[str], free: frozenset[str]) -> list[Node] | None:
    """The nodes of ``pattern`` starting at ``head`` along single-consumer edges.

    A free node (a view, shape arithmetic) between two steps is taken along unless the step wants it.
    """
    if not pattern.steps[0].accepts(head):
        return None
    nodes = [head]
    cur = head
    for step in pattern.steps[1:]:
        through: list[Node] = []
        cand = _next(graph, cur, taken)
        while cand is not None and not step.accepts(cand) and (cand.op in free or cand.attr("shape_only")):
            through.append(cand)
            cand = _next(graph, cand, taken) if len(through) < 8 else None
        if cand is not None and step.accepts(cand):
            nodes += [*through, cand]
            cur = cand
        elif not step.optional:
            return None
    if pattern.closes_head_input:
        head_in = {t for t in head.inputs if t and not graph.tensors[t].const}
        if not any(head_in & set(n.inputs) for n in nodes[1:]):
            return None
    return nodes


def _next(graph: Graph, node: Node, taken: set[str]) -> Node | None:
    """The only consumer of ``node``'s only output; None where it branches or leaves the graph."""
    if len(node.outputs) != 1 or node.outputs[0] in graph.outputs:
        return None
    cons = graph.consumers.get(node.outputs[0], ())
    if len(cons) != 1 or cons[0].name in taken:
        return None
    return cons[0]


_REGION_MAX = 24  # nodes a region may hold (a written-out LayerNorm has 9 to 12)


def _region(graph: Graph, head: Node, pattern: Pattern, taken: set[str], free: frozenset[str]) -> list[Node] | None:
    """A composite that is no chain (``closes: region``): ``head`` and the nodes after it that the pattern's
    steps (or free ops) accept, in any order, each reading only ``head``'s one activation input, constants
    and each other, up to the one tensor (of that input's shape) the rest of the graph reads. Every step
    that is not optional is matched by a node of its own. A LayerNorm written out: mean, (x - mean)^2,
    mean, + eps, sqrt, divide, scale, shift, with x read three times."""
    if not pattern.steps[0].accepts(head) or len(head.outputs) != 1:
        return None
    acts = [t for t in head.inputs if t and not graph.tensors[t].const]
    if len(acts) != 1:
        return None
    x = acts[0]

    def allowed(n: Node) -> bool:
        return n.op in free or bool(n.attr("shape_only")) or any(s.accepts(n) for s in pattern.steps)

    region = {head.name: head}
    frontier = [head]
    while frontier and len(region) < _REGION_MAX:
        for t in frontier.pop().outputs:
            for c in graph.consumers.get(t, ()):
                if c.name not in region and c.name not in taken and allowed(c):
                    region[c.name] = c
                    frontier.append(c)
    while True:  # drop the nodes that read an activation from outside (x itself excepted), until none does
        made = {t for n in region.values() for t in n.outputs}
        bad = [
            name
            for name, n in region.items()
            if name != head.name
            and any(t and t != x and not graph.tensors[t].const and t not in made for t in n.inputs)
        ]
        if not bad:
            break
        for name in bad:
            del region[name]
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    for last in sorted(region.values(), key=lambda n: -position[n.name]):
        if len(last.outputs) != 1 or graph.tensors[last.outputs[0]].shape != graph.tensors[x].shape:
            continue
        inside, todo = {last.name: last}, [last]  # last's ancestors in the region
        while todo:
            for t in todo.pop().inputs:
                p = graph.producer.get(t)
                if p is not None and p.name in region and p.name not in inside:
                    inside[p.name] = p
                    todo.append(p)
        if head.name not in inside:
            continue
        read_out = {
            t
            for n in inside.values()
            for t in n.outputs
            if t in graph.outputs or any(c.name not in inside for c in graph.consumers.get(t, ()))
        }
        nodes = sorted(inside.values(), key=lambda n: position[n.name])
        if read_out == {last.outputs[0]} and _steps_matched(pattern, nodes):
            return nodes
    return None


def _steps_matched(pattern: Pattern, nodes: Sequence[Node]) -> bool:
    """Each step that is not optional takes a node of its own (the first unused one it accepts)."""
    used: set[str] = set()
    for step in pattern.steps:
        if step.optional:
            continue
        found = next((n for n in nodes if n.name not in used and step.accepts(n)), None)
        if found is None:
            return False
        used.add(found.name)
    return True


def _collapse(graph: Graph, rules: RuleSet) -> tuple[list[Node], dict[str, tuple[Node, ...]]]:
    """Nodes with composites collapsed; ``parts[name]`` holds a composite's original nodes."""
    if not rules.composites:
        return list(graph.nodes), {}
    taken: set[str] = set()
    parts: dict[str, tuple[Node, ...]] = {}
    replaced: dict[str, Node] = {}
    for node in graph.nodes:
        if node.name in taken:
            continue
        for pat in rules.composites:
            if pat.region:
                chain = _region(graph, node, pat, taken, rules.free)
            else:
                chain = _chain(graph, node, pat, taken, frozenset())
            if chain:
                names = {n.name for n in chain}
                outside = [t for n in chain for t in n.inputs if t and t not in {o for m in chain for o in m.outputs}]
                comp = Node(node.name, pat.name, tuple(dict.fromkeys(outside)), chain[-1].outputs, (), pat.name)
                taken |= names
                parts[node.name] = tuple(chain)
                replaced[node.name] = comp
                for n in chain[1:]:
                    replaced[n.name] = None  # type: ignore[assignment]
                break
    out = [replaced.get(n.name, n) if n.name in replaced else n for n in graph.nodes]
    return [n for n in out if n is not None], parts


def detect_kernels(graph: Graph, rules: RuleSet | str | None = None, *, device: str | None = None) -> KernelSet:
    """Group ``graph``'s nodes into kernels with ``rules`` (a RuleSet, its name, or the device's)."""
    if rules is None:
        rules = rule_set_for(device)
    elif isinstance(rules, str):
        rules = rule_set(rules)
    nodes, parts = _collapse(graph, rules)
    view = Graph(graph.name, tuple(nodes), graph.tensors, graph.inputs, graph.outputs, graph.layout, graph.source)
    taken: set[str] = set()
    kernels: list[Kernel] = []
    free: list[Node] = []
    for node in view.nodes:
        if node.name in taken:
            continue
        chain = None
        name = op_category(node.op)
        for pat in rules.kernels:  # before the free test: a channel shuffle starts with a (free) reshape
            chain = _chain(view, node, pat, taken, rules.free)
            if chain:
                name = pat.name
                break
        if chain is None and (node.op in rules.free or node.attr("shape_only")):
            taken.add(node.name)
            free.append(node)
            continue
        chain = chain or [node]
        taken.update(n.name for n in chain)
        originals = tuple(p for n in chain for p in parts.get(n.name, (n,)))
        kernels.append(_kernel(graph, name, chain, originals, rules.layout))
    return KernelSet(graph, rules, kernels, free)


def _kernel(graph: Graph, rule: str, chain: Sequence[Node], originals: tuple[Node, ...], layout: str = "") -> Kernel:
    from hwlat.graph.mapping import describe_kernel, vocab_spec

    inside = {t for n in originals for t in n.outputs}
    acts_in = [t for n in originals for t in n.inputs if t and t not in inside and not graph.tensors[t].const]
    first_in = graph.tensors[acts_in[0]].shape if acts_in else ()
    out_shape = graph.tensors[chain[-1].outputs[0]].shape if chain[-1].outputs else ()
    macs = sum(graph.node_macs(n) for n in originals)
    consts = {t for n in originals for t in n.inputs if t and graph.tensors[t].const}
    params = sum(graph.tensors[t].size for t in consts if graph.tensors[t].is_weight)
    nbytes = (
        sum(graph.tensors[t].nbytes for t in dict.fromkeys(acts_in))
        + sum(graph.tensors[t].nbytes for t in chain[-1].outputs)
        + sum(graph.tensors[t].nbytes for t in consts)
    )
    ktype, specs, why, note = describe_kernel(graph, rule, chain, originals, first_in)
    if not specs:  # the kernel vocabulary of real models: se, add, concat, resize, attention, ...
        k = Kernel(chain[0].name, ktype, originals, macs, params, nbytes, tuple(first_in), tuple(out_shape))
        spec, why2 = vocab_spec(graph, k, chain, layout=layout)
        if spec is not None:
            specs, why = (spec,), ""
        elif why2:
            why = why2
    return Kernel(
        chain[0].name, ktype, originals, macs, params, nbytes, tuple(first_in), tuple(out_shape), specs, why, note
    )


def distinct(kernels: Iterable[Kernel]) -> dict[str, list[Kernel]]:
    """Kernels grouped by signature (same type and shapes), in first-seen order."""
    out: dict[str, list[Kernel]] = {}
    for k in kernels:
        out.setdefault(k.signature, []).append(k)
    return out
