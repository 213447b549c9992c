"""Every family's factory in one module, for the ``pkg.module:factory`` form of ``--model``.

Each factory returns an ``nn.Module`` in eval mode, takes keyword arguments with defaults (``width``
or ``variant``, ``resolution``, ``classes``) and records the input it was built for as
``model.input_shape``, e.g. ``--model hwlat.models.families:mobilenet_v2``.

Importing this module imports torch; :mod:`hwlat.models` itself does not.
"""

from __future__ import annotations

from hwlat.models.composed import random_network
from hwlat.models.densenet import densenet121, densenet169
from hwlat.models.efficientnet import efficientnet
from hwlat.models.googlenet import googlenet
from hwlat.models.mnasnet import mnasnet_a1, mnasnet_b1
from hwlat.models.mobilenet import mobilenet_v1, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small
from hwlat.models.regnet import regnet_x, regnet_y
from hwlat.models.resnet import resnet18, resnet34, resnet50, resnext50_32x4d
from hwlat.models.shufflenet import shufflenet_v2
from hwlat.models.squeezenet import squeezenet1_0, squeezenet1_1
from hwlat.models.vit import deit

__all__ = [
    "deit",
    "densenet121",
    "densenet169",
    "efficientnet",
    "googlenet",
    "mnasnet_a1",
    "mnasnet_b1",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "random_network",
    "regnet_x",
    "regnet_y",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "shufflenet_v2",
    "squeezenet1_0",
    "squeezenet1_1",
]
