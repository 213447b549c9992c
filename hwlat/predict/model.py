"""Predicting a whole model a user brings, kernel by kernel: :func:`predict_model`.

The model's graph is split into kernels with the predictor's runtime's rules
(:mod:`hwlat.graph.kernels`); each kernel is predicted through the op kind that stands for it,
a block kind (``mbconv``, ``head``, ...) where the predictor knows the block but not its parts.
The total is ``scale_ · Σ kernels + overhead_ms_``, as for networks
(:func:`hwlat.predict.calibration.network_ms`); a predictor fitted on a table with models measured
whole (``composition_``) predicts each kernel's share of a whole model instead of its time alone
(per-kind scales, a per-kernel and a per-MB term: :mod:`hwlat.predict.calibration`, ``kinds``).
A kernel with no op kind, or whose kind the predictor has no data for, never costs a silent 0 ms:
:class:`MissingKernelsError` names the kernels with their counts and share of MACs, and the command that measures them;
``allow_missing=True`` predicts the known part and lists what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MissingKernelsError", "ModelPrediction", "Unit", "assign_kernels", "predict_model"]


class MissingKernelsError(ValueError):
    """The predictor cannot cover every kernel of a model; the message says which and how to fill them."""

    def __init__(self, message: str, prediction: ModelPrediction) -> None:
        super().__init__(message)
        self.prediction = prediction


@dataclass(frozen=True)
class Unit:
    """What is predicted as one: kernels (one, or a block of several) and the OpSpec that stands for them."""

    kernels: tuple[Any, ...]
    spec: Any | None
    ms: float = float("nan")
    why: str = ""

    @property
    def name(self) -> str:
        return self.kernels[0].name

    @property
    def type(self) -> str:
        return self.spec.kind if self.spec is not None and len(self.kernels) > 1 else self.kernels[0].type

    @property
    def macs(self) -> int:
        return sum(k.macs for k in self.kernels)


@dataclass
class ModelPrediction:
    """A model's predicted latency on one device and where it goes."""

    name: str
    device_key: str
    units: list[Unit]
    scale: float
    overhead_ms: float
    kernels: Any = field(repr=False, default=None)

    @property
    def known(self) -> list[Unit]:
        return [u for u in self.units if u.spec is not None and np.isfinite(u.ms)]

    @property
    def missing(self) -> list[Unit]:
        return [u for u in self.units if u.spec is None or not np.isfinite(u.ms)]

    @property
    def kernels_ms(self) -> float:
        return float(sum(u.ms for u in self.known))

    @property
    def total_ms(self) -> float:
        """Calibrated total of the known kernels (the whole model when nothing is missing)."""
        return self.scale * self.kernels_ms + self.overhead_ms

    @property
    def macs(self) -> int:
        return sum(u.macs for u in self.units)

    def missing_summary(self) -> list[tuple[str, int, float, str]]:
        """(kernel type, count, share of the model's MACs, why) of what is missing, largest share first."""
        total = max(1, self.macs)
        groups: dict[tuple[str, str], list[Unit]] = {}
        for u in self.missing:
            groups.setdefault((u.type, u.why), []).append(u)
        rows = [(t, len(us), sum(u.macs for u in us) / total, why) for (t, why), us in groups.items()]
        return sorted(rows, key=lambda r: (-r[2], -r[1], r[0]))

    def breakdown(self, limit: int | None = None) -> str:
        """Per-kernel table, slowest first: latency, share of latency, share of MACs."""
        total_ms = max(self.kernels_ms, 1e-12)
        total_macs = max(1, self.macs)
        rows = [("kernel", "type", "op kind", "ms", "% time", "% MACs")]
        for u in sorted(self.known, key=lambda u: -u.ms)[:limit]:
            rows.append(
                (
                    u.name,
                    u.type,
                    u.spec.key,
                    f"{u.ms:.3f}",
                    f"{100 * u.ms / total_ms:.1f}",
                    f"{100 * u.macs / total_macs:.1f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows
        ]
        if limit is not None and len(self.known) > limit:
            lines.append(f"... {len(self.known) - limit} more kernels")
        return "\n".join(lines)


def _known_kinds(model: Any) -> set[str] | None:
    kinds = getattr(model, "kinds_", None)
    if kinds is None and hasattr(model, "predictor"):
        kinds = getattr(model.predictor, "kinds_", None)
    return set(kinds) if kinds is not None else None


def _knows(model: Any, kinds: set[str] | None, spec: Any) -> bool:
    if kinds is not None:
        return spec.kind in kinds
    try:
        return bool(np.isfinite(model.predict([spec])[0]))
    except (ValueError, KeyError):
        return False


def assign_kernels(kernel_set: Any, model: Any) -> list[Unit]:
    """Units of a KernelSet for ``model``: blocks whose kind it knows, else each kernel's first known kind."""
    from hwlat.graph.mapping import compose_blocks

    kinds = _known_kinds(model)
    kernels = list(kernel_set.kernels)
    taken: set[int] = set()
    units_at: dict[int, Unit] = {}
    index = {id(k): i for i, k in enumerate(kernels)}
    for parts, spec in compose_blocks(kernels, kernel_set.graph):
        ids = [index[id(k)] for k in parts]
        if any(i in taken for i in ids) or not _knows(model, kinds, spec):
            continue
        if all(any(_knows(model, kinds, s) for s in k.specs) for k in parts) and spec.kind not in ("head",):
            continue  # the parts are known: predict them one by one
        taken.update(ids)
        units_at[ids[0]] = Unit(tuple(parts), spec)
    for i, k in enumerate(kernels):
        if i in taken:
            continue
        spec = next((s for s in k.specs if _knows(model, kinds, s)), None)
        if spec is not None:
            units_at[i] = Unit((k,), spec)
        elif k.specs:
            units_at[i] = Unit((k,), None, why=f"no data for op kind {k.specs[0].kind}")
        else:
            units_at[i] = Unit((k,), None, why=k.why or "no op kind")
    return [units_at[i] for i in sorted(units_at)]


def predict_model(
    model: Any,
    item: Any,
    *,
    device: str | None = None,
    allow_missing: bool = False,
    batch: int = 1,
    measure_hint: str | None = None,
) -> ModelPrediction:
    """Predict ``item`` (a Graph, a :class:`hwlat.graph.Model`, a Network or an OpSpec) with ``model``.

    Kernels are detected with the rules of ``device`` (default: the predictor's own device).
    Raises :class:`MissingKernelsError` when a kernel cannot be predicted, unless ``allow_missing``.
    """
    from hwlat.graph import Graph, detect_kernels, item_graph

    graph = item if isinstance(item, Graph) else item_graph(item, batch)
    device_key = device or getattr(model, "device_key_", "") or ""
    kset = detect_kernels(graph, learned_rules(model) or None, device=device_key or None)
    composition = model.composition() if hasattr(model, "composition") else None
    if composition is not None:  # each kernel's share of a whole model on this device, not its time alone
        from hwlat.predict.calibration import CalibratedPredictor

        model = CalibratedPredictor(model, composition)
    units = assign_kernels(kset, model)
    specs = [u.spec for u in units if u.spec is not None]
    if specs:
        ms = iter(np.asarray(model.predict(specs), dtype=float))
        units = [Unit(u.kernels, u.spec, float(next(ms))) if u.spec is not None else u for u in units]
    pred = ModelPrediction(graph.name, device_key, units, float(model.scale_), float(model.overhead_ms_), kset)
    if pred.missing and not allow_missing:
        raise MissingKernelsError(_missing_message(pred, graph, measure_hint), pred)
    return pred


def learned_rules(model: Any):
    """The RuleSet of the fusion rules a predictor was fitted with (``hwlat fusion-rules``), or None."""
    text = getattr(model, "fusion_rules_", None)
    if text is None and hasattr(model, "predictor"):
        text = getattr(model.predictor, "fusion_rules_", None)
    if not text:
        return None
    from hwlat.graph.fusion import FusionRules

    return FusionRules.from_json(text).rule_set()


def _missing_message(pred: ModelPrediction, graph: Any, hint: str | None) -> str:
    rows = pred.missing_summary()
    share = sum(r[2] for r in rows)
    n = sum(r[1] for r in rows)
    parts = "; ".join(f"{t} x{c} ({100 * s:.1f} % of MACs: {why})" for t, c, s, why in rows[:8])
    more = f"; and {len(rows) - 8} more types" if len(rows) > 8 else ""
    source = graph.source.get("model_source") or graph.name
    backend = (pred.device_key or "DEVICE").partition("/")[0]
    measurable = [r for r in rows if r[3].startswith("no data for op kind")]
    fix = (
        f"measure them with `hwlat measure --model {source} --kernels --device {backend} --db TABLE` and re-fit"
        if measurable
        else "they have no op kind yet, so no table can cover them"
    )
    if hint:
        fix = hint
    return (
        f"{graph.name}: the predictor for {pred.device_key or 'this device'} cannot predict {n} of {len(pred.units)} "
        f"kernels ({100 * share:.1f} % of MACs): {parts}{more}; {fix}; --allow-missing predicts the rest"
    )


def kernel_specs(kernel_set: Any) -> list[Any]:
    """The distinct OpSpecs standing for a KernelSet's kernels (what ``hwlat measure --kernels`` measures)."""
    seen: dict[str, Any] = {}
    for k in kernel_set.kernels:
        if k.specs:
            seen.setdefault(k.specs[0].key, k.specs[0])
    return list(seen.values())
