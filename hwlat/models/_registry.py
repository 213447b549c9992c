"""The model registry: families, their variants (``ModelSpec``), and looking them up. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwlat.registry import Registry

__all__ = ["Family", "ModelSpec", "MODELS", "FAMILIES", "variant_name", "load_factory"]

FACTORIES = "hwlat.models.families"


def load_factory(path: str):
    """The callable named by ``"pkg.module:factory"``; ``ValueError`` naming the fix when it is not one."""
    from hwlat.registry import load_callable

    try:
        return load_callable(path)
    except ValueError as exc:
        raise ValueError(f"Invalid factory {path!r}: {exc}") from None


@dataclass(frozen=True)
class ModelSpec:
    """One registered variant: what to build and the input it takes.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``mobilenetv2-w0.75-r160``.
    family : str
        Family name, e.g. ``mobilenetv2``.
    factory : str
        ``"pkg.module:factory"`` of the builder.
    kwargs : tuple of (str, value)
        Keyword arguments of the builder besides ``resolution`` and ``classes``.
    resolution, classes : int
        Input height/width and number of classes.
    """

    name: str
    family: str
    factory: str
    kwargs: tuple[tuple[str, Any], ...]
    resolution: int
    classes: int = 1000

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)

    @property
    def options(self) -> dict[str, Any]:
        """All the builder's keyword arguments."""
        return {**dict(self.kwargs), "resolution": self.resolution, "classes": self.classes}

    def build(self):
        """A fresh ``torch.nn.Module`` in eval mode (randomly initialised: latency needs no trained weights)."""
        return load_factory(self.factory)(**self.options).eval()


@dataclass(frozen=True)
class Family:
    """A family of variants: one builder, a grid of levels (widths or named variants) x resolutions.

    Attributes
    ----------
    name : str
        Family name, the prefix of its variants' names.
    factory : str
        Name of the builder in :mod:`hwlat.models.families`.
    level : str
        The builder's keyword the levels go to: ``"width"`` or ``"variant"``.
    grid : tuple of (level, resolutions)
        Each level with the resolutions it is registered at.
    paper : str
        Where the configuration comes from.
    kernels : str
        The kernels the family brings to a latency table.
    """

    name: str
    factory: str
    level: str
    grid: tuple[tuple[Any, tuple[int, ...]], ...]
    paper: str
    kernels: str

    @property
    def factory_path(self) -> str:
        return f"{FACTORIES}:{self.factory}"

    def variants(self) -> list[ModelSpec]:
        return [
            ModelSpec(variant_name(self.name, level, r), self.name, self.factory_path, ((self.level, level),), r)
            for level, resolutions in self.grid
            for r in resolutions
        ]


def variant_name(family: str, level: Any, resolution: int) -> str:
    """``mobilenetv2-w0.75-r160`` for a width, ``efficientnet-b0-r224`` for a named variant."""
    if isinstance(level, str):
        return f"{family}-{level}-r{resolution}"
    width = f"{level:.1f}" if float(level).is_integer() else f"{level:g}"
    return f"{family}-w{width}-r{resolution}"


MODELS: Registry[ModelSpec] = Registry("model")
FAMILIES: Registry[Family] = Registry("model family", "model families")


def _grid(levels, resolutions) -> tuple[tuple[Any, tuple[int, ...]], ...]:
    return tuple((level, tuple(resolutions)) for level in levels)


_FAMILIES = (
    Family(
        "mobilenetv1",
        "mobilenet_v1",
        "width",
        _grid((0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
        "Howard et al. 2017, MobileNets, Table 1",
        "3x3 depthwise s1/s2, 1x1 pointwise, ReLU",
    ),
    Family(
        "mobilenetv2",
        "mobilenet_v2",
        "width",
        _grid((0.35, 0.5, 0.75, 1.0, 1.3, 1.4), (96, 128, 160, 192, 224)),
        "Sandler et al. 2018, MobileNetV2, Table 2",
        "inverted residuals, ReLU6, residual add",
    ),
    Family(
        "mobilenetv3-large",
        "mobilenet_v3_large",
        "width",
        _grid((0.5, 0.75, 1.0, 1.25), (160, 192, 224, 256)),
        "Howard et al. 2019, Searching for MobileNetV3, Table 1",
        "5x5 depthwise, SE with h-sigmoid, h-swish, linear head",
    ),
    Family(
        "mobilenetv3-small",
        "mobilenet_v3_small",
        "width",
        _grid((0.5, 0.75, 1.0, 1.25), (128, 160, 192, 224)),
        "Howard et al. 2019, Searching for MobileNetV3, Table 2",
        "SE at stride 2, h-swish, h-sigmoid",
    ),
    Family(
        "resnet18",
        "resnet18",
        "width",
        _grid((0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
        "He et al. 2016, Table 1",
        "7x7 s2 stem, 3x3 max pool, dense 3x3 convs, residual add + ReLU",
    ),
    Family(
        "resnet34",
        "resnet34",
        "width",
        _grid((0.5, 1.0), (160, 224)),
        "He et al. 2016, Table 1",
        "deeper basic blocks",
    ),
    Family(
        "resnet50",
        "resnet50",
        "width",
        _grid((0.5, 0.75, 1.0), (160, 192, 224)),
        "He et al. 2016, Table 1 (v1.5: stride on the 3x3)",
        "bottlenecks: wide 1x1 convs, strided 1x1 projections",
    ),
    Family(
        "resnext50-32x4d",
        "resnext50_32x4d",
        "width",
        _grid((0.5, 1.0), (160, 224)),
        "Xie et al. 2017, ResNeXt, Table 1",
        "grouped 3x3 convs (32 groups)",
    ),
    Family(
        "shufflenetv2",
        "shufflenet_v2",
        "width",
        _grid((0.5, 1.0, 1.5, 2.0), (160, 192, 224, 256)),
        "Ma et al. 2018, ShuffleNet V2, Table 5",
        "channel split, concat, channel shuffle (reshape/transpose), depthwise without activation",
    ),
    Family(
        "squeezenet1.0",
        "squeezenet1_0",
        "width",
        _grid((0.5, 1.0), (160, 224)),
        "Iandola et al. 2016, SqueezeNet, Table 1",
        "fire modules: 1x1/3x3 expand concat, 7x7 stem, ceil-mode max pool",
    ),
    Family(
        "squeezenet1.1",
        "squeezenet1_1",
        "width",
        _grid((0.5, 0.75, 1.0, 1.25), (128, 160, 192, 224)),
        "SqueezeNet v1.1 (the reference repository's release notes)",
        "fire modules: concat, convs with biases, classifier conv + ReLU before the pool",
    ),
    Family(
        "mnasnet-a1",
        "mnasnet_a1",
        "width",
        _grid((0.5, 0.75, 1.0, 1.4), (160, 192, 224)),
        "Tan et al. 2019, MnasNet, Figure 7",
        "SE with sigmoid gates, expansion 3 and 6, 5x5 depthwise",
    ),
    Family(
        "mnasnet-b1",
        "mnasnet_b1",
        "width",
        _grid((0.5, 0.75, 1.0, 1.3), (160, 192, 224)),
        "Tan et al. 2019, MnasNet (torchvision's mnasnet1_0)",
        "inverted residuals without SE, ReLU",
    ),
    Family(
        "efficientnet",
        "efficientnet",
        "variant",
        (("b0", (160, 192, 224, 256)), ("b1", (200, 240)), ("b2", (260,)), ("b3", (300,))),
        "Tan & Le 2019, EfficientNet, Table 1 and the compound coefficients",
        "SiLU (sigmoid x mul), SE, 5x5 depthwise",
    ),
    Family(
        "densenet121",
        "densenet121",
        "width",
        _grid((0.5, 0.75, 1.0), (160, 224)),
        "Huang et al. 2017, DenseNet, Table 1 (width scales the growth rate 32)",
        "dense concats of up to 64 inputs, pre-activation BN that does not fold, 2x2 average pool",
    ),
    Family(
        "googlenet",
        "googlenet",
        "width",
        _grid((0.5, 0.75, 1.0), (160, 192, 224)),
        "Szegedy et al. 2015, Going Deeper with Convolutions, Table 1",
        "four-branch inception concat, 3x3 s1 max pool branch, 7x7 stem",
    ),
    Family(
        "deit",
        "deit",
        "variant",
        _grid(("tiny", "small"), (160, 192, 224)),
        "Touvron et al. 2021, DeiT, Table 1",
        "16x16 s16 patch conv, LayerNorm, attention matmuls, softmax, GELU MLP, token concat",
    ),
    Family(
        "regnetx",
        "regnet_x",
        "variant",
        _grid(("200mf", "400mf", "800mf", "1.6gf"), (160, 224)),
        "Radosavovic et al. 2020, Designing Network Design Spaces, Appendix",
        "grouped 3x3 convs with group widths 8-24",
    ),
    Family(
        "regnety",
        "regnet_y",
        "variant",
        _grid(("200mf", "400mf", "800mf", "1.6gf"), (160, 224)),
        "Radosavovic et al. 2020, Designing Network Design Spaces, Appendix",
        "grouped 3x3 convs with SE (sigmoid)",
    ),
)

for _family in _FAMILIES:
    FAMILIES.register(_family.name, _family)
    for _spec in _family.variants():
        MODELS.register(_spec.name, _spec)
