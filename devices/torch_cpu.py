"""PyTorch eager on the CPU, under ``torch.inference_mode`` with pinned threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

from hwlat.devices._base import Backend, DeviceInfo, Item, Runnable, cpu_model, example_input, torch_threads
from hwlat.devices._registry import register_backend


@register_backend
class TorchCPUBackend(Backend):
    name: ClassVar[str] = "torch-cpu"
    description: ClassVar[str] = "PyTorch eager, CPU, inference_mode"
    install_hint: ClassVar[str] = "pip install torch==2.13.0 (the CPU build)"

    @classmethod
    def check(cls) -> str | None:
        try:
            import torch  # noqa: F401  (only whether it imports)
        except ImportError:
            return f"PyTorch is not installed: {cls.install_hint}"
        return None

    def describe(self) -> DeviceInfo:
        import torch

        return DeviceInfo(
            self.name,
            self.spec.key,
            cpu_model(),
            "torch",
            torch.__version__,
            self.spec.threads,
            extra=(("mkldnn", str(torch.backends.mkldnn.is_available())),),
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[Backend]:
        import torch

        with super().session(), torch_threads(self.spec.threads), torch.inference_mode():
            yield self

    def prepare(self, item: Item) -> Runnable:
        import torch

        module = item.build()
        x = example_input(self, item)

        def call() -> None:
            with torch.inference_mode():
                module(x)

        return Runnable(item, call)
