"""ONNX Runtime on the CPU: export with ``torch.onnx``, run with fixed threads.

Exported models are cached by op key, batch, and the torch/opset versions.
The session uses full graph optimisation, sequential execution and
``intra_op_num_threads`` = the device's threads (inter-op 1).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import ClassVar

from hwlat.devices._base import Backend, DeviceInfo, Item, Runnable, cache_path, cpu_model, example_input, torch_threads
from hwlat.devices._registry import register_backend

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(item: Item, batch: int) -> Path:
    """Export ``item`` to ONNX (cached); returns the file path."""
    import torch

    path = cache_path("onnx", item, ".onnx", f"b{batch}", torch.__version__, f"opset{OPSET}")
    if path.exists():
        return path
    module = item.build()
    x = torch.rand((batch, *item.input_shape[1:])) - 0.5
    tmp = path.with_suffix(".tmp.onnx")
    # The TorchScript exporter is quiet and fast for these small static graphs.
    with torch_threads(1), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        torch.onnx.export(module, (x,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["y"])  # fmt: skip
    tmp.replace(path)  # atomic: a killed export never leaves a half file in the cache
    return path


@register_backend
class OnnxRuntimeCPUBackend(Backend):
    name: ClassVar[str] = "onnxruntime-cpu"
    description: ClassVar[str] = "ONNX Runtime, CPUExecutionProvider, full graph optimisation"
    install_hint: ClassVar[str] = "pip install onnxruntime onnx onnxscript (included in `pip install hwlat`)"

    @classmethod
    def check(cls) -> str | None:
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"{exc.name} is not installed: {cls.install_hint}"
        return None

    def describe(self) -> DeviceInfo:
        import onnxruntime as ort
        import torch

        return DeviceInfo(
            self.name, self.spec.key, cpu_model(), "onnxruntime", ort.__version__, self.spec.threads,
            extra=(("providers", "CPUExecutionProvider"), ("exporter", f"torch.onnx {torch.__version__} opset {OPSET}")),
        )  # fmt: skip

    def session_options(self):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.spec.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    def convert(self, item: Item) -> Path:
        return export_onnx(item, self.spec.batch)

    def prepare(self, item: Item) -> Runnable:
        import onnxruntime as ort

        path = self.convert(item)
        sess = ort.InferenceSession(str(path), self.session_options(), providers=["CPUExecutionProvider"])
        # Trivial graphs (identity, zero) can export with no input at all.
        feed = {i.name: example_input(self, item).numpy() for i in sess.get_inputs()[:1]}
        run = sess.run
        return Runnable(item, lambda: run(None, feed))
