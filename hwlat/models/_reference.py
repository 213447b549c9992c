"""Published parameter and MAC counts of the reference variants, to check the builds against.

``params`` is exact where the source gives an exact count (torchvision's model cards, ``num_params``),
else ``None`` with the rounded figure in ``params_m``; ``macs_m`` is the published multiply-accumulates
in millions (torchvision's "GFLOPS" column counts MACs; papers say "MAdds" or "FLOPs" for the same).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Reference", "REFERENCES"]


class Reference(NamedTuple):
    params: int | None  # exact count, where published
    params_m: float  # millions, as published
    macs_m: float  # millions of multiply-accumulates, as published
    source: str


_TV = "torchvision model card"
REFERENCES: dict[str, Reference] = {
    "mobilenetv1-w1.0-r224": Reference(4_231_976, 4.2, 569, "Howard et al. 2017, Table 8; Keras (trainable)"),
    "mobilenetv2-w1.0-r224": Reference(3_504_872, 3.5, 300, f"{_TV}; Sandler et al. 2018, Table 4"),
    "mobilenetv3-large-w1.0-r224": Reference(5_483_032, 5.4, 219, f"{_TV}; Howard et al. 2019, Table 3"),
    "mobilenetv3-small-w1.0-r224": Reference(2_542_856, 2.5, 56, f"{_TV}; Howard et al. 2019, Table 3"),
    "resnet18-w1.0-r224": Reference(11_689_512, 11.7, 1820, _TV),
    "resnet34-w1.0-r224": Reference(21_797_672, 21.8, 3660, _TV),
    "resnet50-w1.0-r224": Reference(25_557_032, 25.6, 4090, _TV),
    "resnext50-32x4d-w1.0-r224": Reference(25_028_904, 25.0, 4230, _TV),
    "shufflenetv2-w0.5-r224": Reference(1_366_792, 1.4, 41, f"{_TV}; Ma et al. 2018, Table 5"),
    "shufflenetv2-w1.0-r224": Reference(2_278_604, 2.3, 146, f"{_TV}; Ma et al. 2018, Table 5"),
    "shufflenetv2-w1.5-r224": Reference(3_503_624, 3.5, 299, f"{_TV}; Ma et al. 2018, Table 5"),
    "shufflenetv2-w2.0-r224": Reference(7_393_996, 7.4, 591, f"{_TV}; Ma et al. 2018, Table 5"),
    "squeezenet1.0-w1.0-r224": Reference(1_248_424, 1.2, 820, _TV),
    "squeezenet1.1-w1.0-r224": Reference(1_235_496, 1.2, 350, _TV),
    "mnasnet-a1-w1.0-r224": Reference(None, 3.9, 312, "Tan et al. 2019, Table 1"),
    "mnasnet-b1-w0.5-r224": Reference(2_218_512, 2.2, 100, f"{_TV} (mnasnet0_5)"),
    "mnasnet-b1-w0.75-r224": Reference(3_170_208, 3.2, 210, f"{_TV} (mnasnet0_75)"),
    "mnasnet-b1-w1.0-r224": Reference(4_383_312, 4.4, 315, f"{_TV} (mnasnet1_0); Tan et al. 2019"),
    "mnasnet-b1-w1.3-r224": Reference(6_282_256, 6.3, 530, f"{_TV} (mnasnet1_3)"),
    "efficientnet-b0-r224": Reference(5_288_548, 5.3, 390, f"{_TV}; Tan & Le 2019, Table 2"),
    "efficientnet-b1-r240": Reference(7_794_184, 7.8, 700, f"{_TV}; Tan & Le 2019, Table 2"),
    "efficientnet-b2-r260": Reference(9_109_994, 9.2, 1000, f"{_TV}; Tan & Le 2019, Table 2"),
    "efficientnet-b3-r300": Reference(12_233_232, 12.0, 1800, f"{_TV}; Tan & Le 2019, Table 2"),
    "densenet121-w1.0-r224": Reference(7_978_856, 8.0, 2830, _TV),
    "googlenet-w1.0-r224": Reference(6_624_904, 6.6, 1500, _TV),
    "deit-tiny-r224": Reference(5_717_416, 5.7, 1300, "Touvron et al. 2021, Table 1 (timm deit_tiny_patch16_224)"),
    "deit-small-r224": Reference(22_050_664, 22.1, 4600, "Touvron et al. 2021, Table 1 (timm deit_small_patch16_224)"),
    "regnetx-200mf-r224": Reference(None, 2.7, 200, "Radosavovic et al. 2020, Table 4"),
    "regnetx-400mf-r224": Reference(5_495_976, 5.5, 410, _TV),
    "regnetx-800mf-r224": Reference(7_259_656, 7.3, 800, _TV),
    "regnetx-1.6gf-r224": Reference(9_190_136, 9.2, 1600, _TV),
    "regnety-200mf-r224": Reference(None, 3.2, 200, "Radosavovic et al. 2020, Table 4"),
    "regnety-400mf-r224": Reference(4_344_144, 4.3, 400, _TV),
    "regnety-800mf-r224": Reference(6_432_512, 6.4, 830, _TV),
    "regnety-1.6gf-r224": Reference(11_202_430, 11.2, 1610, _TV),
}
