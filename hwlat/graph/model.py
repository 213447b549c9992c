"""A model a user brings, as something hwlat can measure, inspect and predict: :class:`Model`.

:func:`load_model` takes an ``.onnx`` or ``.tflite`` file, a saved exported program (``.pt2``), a
``pkg.module:factory`` that returns a ``torch.nn.Module``, or a ``torch.nn.Module`` itself (Python);
hwlat's own network names are :class:`~hwlat.network.Network` items and go through
:func:`item_graph` the same way. A Model's key names the model, the SHA-256 of its file (of its
structure, for a module) and its input shape, so a table row says exactly what was measured, and
measuring again resumes. Provenance (``model_sha256``, ``input_shape``, ``model_format``,
``model_source``) is stored in every row's ``extra``.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwlat.cache import file_sha256
from hwlat.graph.core import Graph, GraphError, format_shape

__all__ = ["MODEL_SUFFIXES", "Model", "item_graph", "load_model", "max_model_mb"]

MODEL_SUFFIXES = (".onnx", ".tflite", ".pt2")
DEFAULT_MAX_MODEL_MB = 2048.0


def max_model_mb() -> float:
    """The largest model file hwlat reads: ``HWLAT_MAX_MODEL_MB`` (default 2048)."""
    text = os.environ.get("HWLAT_MAX_MODEL_MB", "")
    if not text.strip():
        return DEFAULT_MAX_MODEL_MB
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise GraphError(f"Invalid HWLAT_MAX_MODEL_MB={text!r}: must be a number of MB > 0")
    return value


def module_digest(module: Any, shape: tuple[int, ...]) -> str:
    """A module's structure: its repr and its parameters' and buffers' names and shapes (not values)."""
    h = hashlib.sha256(repr(module).encode())
    for name, t in (*module.named_parameters(), *module.named_buffers()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
    h.update(format_shape(shape).encode())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Model:
    """A user's model: what the measurement loop, kernel detection and predictors take.

    ``format`` is ``onnx``, ``tflite``, ``torch`` (a module or factory) or ``exported`` (``.pt2``);
    ``input_shape`` is the first input's shape at batch 1 (a device's batch replaces dimension 0);
    ``inputs`` lists every input as (name, shape, dtype).
    """

    name: str
    format: str
    source: str
    sha256: str
    input_shape: tuple[int, ...]
    inputs: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    path: Path | None = None
    factory: Callable[[], Any] | None = field(default=None, repr=False)
    _graphs: dict = field(default_factory=dict, repr=False, compare=False)

    kind = "model"

    @property
    def key(self) -> str:
        return f"model:{self.name}:{self.sha256[:12]}:{format_shape(self.input_shape[1:])}"

    @property
    def provenance(self) -> tuple[tuple[str, str], ...]:
        return (
            ("model_sha256", self.sha256),
            ("input_shape", format_shape(self.input_shape)),
            ("model_format", self.format),
            ("model_source", self.source),
        )

    def build(self):
        """The ``nn.Module`` (eval mode) of a torch model; file models are not modules."""
        if self.factory is None:
            runtime = {"onnx": "onnxruntime-cpu (or onnxruntime-cuda)", "tflite": "litert-cpu or a phone (adb)"}
            raise GraphError(
                f"{self.name} is a .{self.format} file: it runs on {runtime.get(self.format, 'its own runtime')}, "
                "not through torch"
            )
        module = self.factory()
        if self.format == "exported":  # ep.module() is already in inference form and refuses eval()
            return module
        return module.eval() if hasattr(module, "eval") else module

    def graph(self, batch: int = 1) -> Graph:
        """The model's graph at ``batch`` (cached per batch)."""
        if batch not in self._graphs:
            self._graphs[batch] = _graph_of(self, batch)
        return self._graphs[batch]

    @property
    def flops(self) -> int:
        return self.graph().macs

    @property
    def bytes(self) -> int:
        return self.graph().bytes

    @property
    def output_shape(self) -> tuple[int, ...]:
        g = self.graph()
        return g.tensors[g.outputs[0]].shape if g.outputs else ()

    @property
    def params(self) -> int:
        return self.graph().params

    def check_batch(self, batch: int) -> None:
        """Raise a GraphError when the model cannot run at ``batch`` (a file with a fixed batch)."""
        if batch == self.input_shape[0]:
            return
        if self.format == "tflite":
            raise GraphError(
                f"{self.name}: a .tflite file's batch is fixed at {self.input_shape[0]}; "
                f"use a device with /b{self.input_shape[0]}"
            )
        try:
            self.graph(batch)
        except GraphError as exc:
            raise GraphError(f"{self.name} cannot run at batch {batch}: {exc}") from None

    def feeds(self, batch: int = 1, seed: int = 0) -> dict[str, Any]:
        """Fixed random inputs for every input at ``batch``: {name: numpy array}."""
        import numpy as np

        rng = np.random.default_rng(seed)
        out = {}
        for name, shape, dtype in self.inputs:
            shape = (batch, *shape[1:]) if shape else shape
            if dtype.startswith("float"):
                out[name] = (rng.random(shape, dtype=np.float32) - 0.5).astype(dtype)
            elif dtype == "bool":
                out[name] = np.zeros(shape, dtype=bool)
            else:
                info = np.iinfo(dtype)
                out[name] = rng.integers(max(info.min, 0), min(info.max, 127), size=shape, dtype=dtype)
        return out

    def __reduce__(self):  # picklable for --jobs N (the graph cache is not sent)
        return (
            _rebuild,
            (self.name, self.format, self.source, self.sha256, self.input_shape, self.inputs, self.path, self.factory),
        )


def _rebuild(*args) -> Model:
    return Model(*args)


def _graph_of(model: Model, batch: int) -> Graph:
    src = dict(model.provenance)
    src["format"] = model.format
    if model.format == "onnx":
        from hwlat.graph.onnx_import import graph_from_onnx

        named = {n: (batch, *s[1:]) for n, s, _ in model.inputs}
        return graph_from_onnx(model.path, input_shape=named, batch=batch, name=model.name, source=src)
    if model.format == "tflite":
        from hwlat.graph.tflite_import import graph_from_tflite

        return graph_from_tflite(model.path, name=model.name, batch=batch, source=src)
    return _exported_graph(model, batch, model.name, src)  # torch: the exporter's graph


def _exported_graph(item: Any, batch: int, name: str, source: dict) -> Graph:
    """The graph of ``item`` exported to ONNX at ``batch`` (the export is cached like every export)."""
    from hwlat.devices.onnxruntime import export_onnx
    from hwlat.graph.onnx_import import graph_from_onnx

    shape = (batch, *item.input_shape[1:]) if isinstance(item, Model) else None  # ops/networks export static shapes
    label = f"{name} (exported with torch.onnx)"
    return graph_from_onnx(
        export_onnx(item, batch), input_shape=shape, batch=batch, name=name, source=source, label=label
    )


def item_graph(item: Any, batch: int = 1) -> Graph:
    """The graph of any measurable item: a Model, a Network or an OpSpec (the last two through ONNX export)."""
    if isinstance(item, Model):
        return item.graph(batch)
    name = getattr(item, "name", None) or item.key
    src = {"format": "network" if item.kind == "network" else "op", "input_shape": format_shape(item.input_shape)}
    return _exported_graph(item, batch, name, src)


# ------------------------------------------------------------------ loading
def _check_file(path: Path) -> None:
    if not path.exists():
        raise GraphError(f"{path}: no such file")
    if path.is_dir():
        raise GraphError(f"{path}: is a folder; give a model file ({', '.join(MODEL_SUFFIXES)})")
    size_mb = path.stat().st_size / 2**20
    limit = max_model_mb()
    if size_mb > limit:
        raise GraphError(f"{path}: {size_mb:.3g} MB is over the {limit:g} MB limit (raise HWLAT_MAX_MODEL_MB)")
    if path.stat().st_size == 0:
        raise GraphError(f"{path}: the file is empty")


def _parse_shapes(input_shape: Any) -> dict[str | None, tuple[int, ...]]:
    from hwlat.graph.core import parse_shape

    if input_shape is None:
        return {}
    if isinstance(input_shape, dict):
        return {k: tuple(v) for k, v in input_shape.items()}
    if isinstance(input_shape, (tuple, list)):
        return {None: tuple(int(d) for d in input_shape)}
    out: dict[str | None, tuple[int, ...]] = {}
    for part in str(input_shape).split(";" if ";" in str(input_shape) else ","):
        part = part.strip()
        if not part:
            continue
        name, sep, dims = part.rpartition(":")
        out[name if sep else None] = parse_shape(dims)
    return out


def load_model(spec: Any, *, input_shape: Any = None, name: str | None = None, batch: int = 1) -> Model:
    """A :class:`Model` from a file path, ``pkg.module:factory``, or a ``torch.nn.Module``.

    ``input_shape`` (``"1x3x224x224"``, a tuple, or ``{input: shape}``; ``"NAME:SHAPE,..."`` on the
    command line) fixes dynamic dimensions; it is required for modules and for files whose
    inputs are dynamic. The file is read, its SHA-256 taken and its graph imported once here, so a
    model that cannot be imported fails before anything is measured.
    """
    shapes = _parse_shapes(input_shape)
    if hasattr(spec, "forward") and hasattr(spec, "named_parameters"):
        return _from_module(spec, shapes, name or type(spec).__name__.lower(), source=f"<{type(spec).__name__}>")
    text = str(spec)
    path = Path(text)
    if path.suffix.lower() in MODEL_SUFFIXES or path.exists():
        return _from_file(path, shapes, name, batch)
    if ":" in text and not text.startswith(("/", ".")):
        return _from_factory(text, shapes, name)
    raise GraphError(
        f"{text!r} is not a model: give an .onnx, .tflite or .pt2 file, pkg.module:factory, or a zoo name "
        "(see `hwlat measure --help`)"
    )


def _from_file(path: Path, shapes: dict, name: str | None, batch: int) -> Model:
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise GraphError(f"{path}: unknown model format {suffix or '(no suffix)'}; give {', '.join(MODEL_SUFFIXES)}")
    sha = file_sha256(path)
    name = name or path.stem
    if suffix == ".onnx":
        from hwlat.graph.onnx_import import graph_from_onnx

        graph = graph_from_onnx(
            path,
            input_shape=shapes or None,
            batch=batch,
            name=name,
            source={"format": "onnx", "model_sha256": sha, "model_source": str(path)},
        )
        inputs = tuple((t, graph.tensors[t].shape, graph.tensors[t].dtype) for t in graph.inputs)
        model = Model(name, "onnx", str(path), sha, inputs[0][1], inputs, path)
    elif suffix == ".tflite":
        from hwlat.graph.tflite_import import graph_from_tflite

        if shapes:
            raise GraphError(f"{path}: a .tflite file's input shapes are fixed; --input-shape does not apply")
        graph = graph_from_tflite(
            path, name=name, batch=batch, source={"format": "tflite", "model_sha256": sha, "model_source": str(path)}
        )
        inputs = tuple((t, graph.tensors[t].shape, graph.tensors[t].dtype) for t in graph.inputs)
        model = Model(name, "tflite", str(path), sha, inputs[0][1], inputs, path)
    else:
        return _from_exported(path, shapes, name, sha)
    model._graphs[batch] = graph
    return model


def _from_exported(path: Path, shapes: dict, name: str, sha: str) -> Model:
    import torch

    if not zipfile.is_zipfile(path):  # before torch, which logs its own traceback for a bad archive
        raise GraphError(f"{path}: not a readable exported program (torch.export.save): not a zip archive")
    try:
        ep = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001  (torch raises many kinds for a bad archive)
        raise GraphError(f"{path}: not a readable exported program (torch.export.save): {exc}") from None
    args = [a for a in getattr(ep, "example_inputs", ((), {}))[0] if hasattr(a, "shape")]
    shape = shapes.get(None) or (tuple(args[0].shape) if args else None)
    if shape is None:
        raise GraphError(f"{path}: the exported program has no example input; give --input-shape")

    def factory(ep=ep):
        return ep.module()

    model = Model(name, "exported", str(path), sha, tuple(shape), (("x", tuple(shape), "float32"),), path, factory)
    model.graph()  # import now: a model that cannot be imported fails before any measuring
    return model


def _from_factory(text: str, shapes: dict, name: str | None) -> Model:
    from hwlat.registry import load_callable

    attr = text.partition(":")[2]
    try:
        factory = load_callable(text)
    except ValueError as exc:
        raise GraphError(f"{text}: {exc}") from None
    try:
        built = factory()
    except Exception as exc:  # noqa: BLE001  (the user's code)
        raise GraphError(f"{text}: calling {attr}() failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(built, "forward"):
        raise GraphError(f"{text}: {attr}() returned {type(built).__name__}, not a torch.nn.Module")
    return _from_module(built, shapes, name or attr, source=text, factory=factory)


def _from_module(module: Any, shapes: dict, name: str, source: str, factory: Callable | None = None) -> Model:
    shape = shapes.get(None) or (tuple(shapes.values())[0] if shapes else None)
    if shape is None:
        declared = getattr(module, "input_shape", None)
        shape = tuple(declared) if declared else None
    if shape is None:
        raise GraphError(
            f"{name}: a torch module needs an input shape: give --input-shape 1x3x224x224 (or input_shape=)"
        )
    shape = tuple(int(d) for d in shape)
    module.eval()
    if factory is None:

        def factory(module=module):
            return module

    model = Model(name, "torch", source, module_digest(module, shape), shape, (("x", shape, "float32"),), None, factory)
    try:
        model.graph()
    except GraphError:
        raise
    except Exception as exc:  # noqa: BLE001  (the exporter's errors on the user's module)
        raise GraphError(
            f"{name}: torch.onnx export failed at input {format_shape(shape)}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return model
