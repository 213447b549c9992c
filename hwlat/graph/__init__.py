"""Any model a user brings: the graph type, importers, kernels and the measurable Model.

>>> from hwlat.graph import load_model, detect_kernels            # doctest: +SKIP
>>> model = load_model("det.onnx", input_shape="1x3x640x640")      # doctest: +SKIP
>>> print(detect_kernels(model.graph(), device="onnxruntime-cpu").table())  # doctest: +SKIP

Importing this package imports neither onnx, torch nor LiteRT; the importers do, when called.
"""

from hwlat.graph.core import Graph, GraphError, Node, Tensor, format_shape, parse_shape
from hwlat.graph.kernels import Kernel, KernelSet, RuleSet, detect_kernels, rule_set, rule_set_for
from hwlat.graph.model import MODEL_SUFFIXES, Model, item_graph, load_model

__all__ = [
    "MODEL_SUFFIXES",
    "Graph",
    "GraphError",
    "Kernel",
    "KernelSet",
    "Model",
    "Node",
    "RuleSet",
    "Tensor",
    "detect_kernels",
    "format_shape",
    "item_graph",
    "load_model",
    "parse_shape",
    "rule_set",
    "rule_set_for",
]
