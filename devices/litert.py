"""LiteRT (TFLite) on the CPU: convert with ``litert-torch``, run with XNNPACK.

Ops are converted with NHWC inputs/outputs (``litert_torch.to_channel_last_io``)
so the layout change does not add TRANSPOSE ops to the timed graph; prepare()
checks the converted graph and refuses one with transposes at its boundary.
Converted files are cached by op key, batch and library versions (:mod:`hwlat.cache`:
written atomically, checked against their size and SHA-256 on use).
"""

from __future__ import annotations

import importlib.util
import logging
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np

from hwlat.cache import cached_file
from hwlat.devices._base import (
    Backend,
    DeviceInfo,
    Item,
    Runnable,
    cache_path,
    cpu_model,
    model_file,
    quiet_fds,
    torch_threads,
)
from hwlat.devices._registry import register_backend

log = logging.getLogger(__name__)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def convert_tflite(item: Item, batch: int) -> Path:
    """Convert ``item`` to a .tflite file with channel-last I/O (cached)."""
    twin = getattr(item, "has_nhwc_twin", False)  # OpSpecs whose channel-last module converts without TRANSPOSEs
    salt = ("nhwc", "twin") if twin else ("nhwc",)
    path = cache_path("tflite", item, ".tflite", f"b{batch}", _version("litert-torch"), _version("torch"), *salt)

    def build(tmp: Path) -> None:
        import torch

        with quiet_fds():  # its import logs torchao/absl noise on stderr
            import litert_torch

        module = item.build()
        shape = (batch, *item.input_shape[1:])
        out_rank = len(item.ops[-1].output_shape) if hasattr(item, "ops") else len(item.output_shape)
        if len(shape) == 4 and twin:  # a channel-last module of its own: no layout TRANSPOSEs to anchor
            module, shape = item.build_nhwc(), (shape[0], shape[2], shape[3], shape[1])
        elif len(shape) == 4:
            module = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if out_rank == 4 else [])
            shape = (shape[0], shape[2], shape[3], shape[1])
        x = torch.rand(shape) - 0.5
        with torch_threads(1), quiet_fds():
            litert_torch.convert(module, (x,)).export(str(tmp))

    # Atomic, recorded and checked on every use: a corrupted file is converted again, with a warning.
    return cached_file(path, build, what=f"{item.key} b{batch} LiteRT")


def graph_ops(interpreter) -> list[str]:
    """Op names of the (delegated) graph, e.g. ['CONV_2D', 'DELEGATE']."""
    return [op["op_name"] for op in interpreter._get_ops_details()]


@register_backend
class LiteRTCPUBackend(Backend):
    name: ClassVar[str] = "litert-cpu"
    description: ClassVar[str] = "LiteRT interpreter, XNNPACK delegate, fixed threads"
    install_hint: ClassVar[str] = "pip install 'hwlat[tflite]' (ai-edge-litert and litert-torch)"
    MODEL_FORMATS: ClassVar[tuple[str, ...]] = ("tflite", "torch", "exported")

    @classmethod
    def check(cls) -> str | None:
        # find_spec, not import: importing litert_torch takes seconds and logs a lot.
        for mod, dist in (("ai_edge_litert", "ai-edge-litert"), ("litert_torch", "litert-torch")):
            if importlib.util.find_spec(mod) is None:
                return f"{dist} is not installed: {cls.install_hint}"
        return None

    def describe(self) -> DeviceInfo:
        return DeviceInfo(
            self.name,
            self.spec.key,
            cpu_model(),
            "ai-edge-litert",
            _version("ai-edge-litert"),
            self.spec.threads,
            extra=(("converter", f"litert-torch {_version('litert-torch')}"), ("delegate", "XNNPACK (default)")),
        )

    def convert(self, item: Item) -> Path:
        return model_file(item, "tflite") or convert_tflite(item, self.spec.batch)

    def prepare(self, item: Item) -> Runnable:
        from ai_edge_litert.interpreter import Interpreter

        path = self.convert(item)
        with quiet_fds():  # "INFO: Created TensorFlow Lite XNNPACK delegate" on every interpreter
            interp = Interpreter(model_path=str(path), num_threads=self.spec.threads)
            try:
                interp.allocate_tensors()
            except RuntimeError as exc:  # a custom op the application links in, and LiteRT does not
                first = next((line for line in str(exc).splitlines() if line.strip()), str(exc))
                raise RuntimeError(f"{item.key}: LiteRT cannot run it: {first}") from None
        if model_file(item, "tflite"):  # the user's file, as it is: every input set
            for detail, value in zip(interp.get_input_details(), item.feeds(self.spec.batch).values()):
                interp.set_tensor(detail["index"], value.astype(detail["dtype"]))
            return Runnable(item, interp.invoke)
        ops = graph_ops(interp)
        if ops and item.kind != "transpose" and (ops[0] == "TRANSPOSE" or ops[-1] == "TRANSPOSE"):  # the op itself
            raise RuntimeError(f"{item.key}: the converted graph has layout TRANSPOSEs at its boundary: {ops}")
        inp = interp.get_input_details()[0]
        rng = np.random.default_rng(0)
        interp.set_tensor(inp["index"], (rng.random(inp["shape"]) - 0.5).astype(inp["dtype"]))
        return Runnable(item, interp.invoke)
