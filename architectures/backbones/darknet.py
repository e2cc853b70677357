"""DarkNet19 encoder as LiteSeg uses it (output stride 16 through dilation).

Paper: Redmon and Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017
(arXiv 1612.08242); layer list of LiteSeg's official
models/backbone_networks/darknet.py.

The official encoder is built from ``Conv2dBatchReLU`` of the author's private
fork of lightnet, which adds a ``dilation`` keyword to public lightnet 1.1.0.
We assume the fork passes ``dilation`` to the ``Conv2d`` and otherwise equals
1.1.0: ``layers = Sequential(Conv2d(bias=False), BatchNorm2d(momentum=0.01),
LeakyReLU(0.1))``, so state_dict keys read ``layers.<name>.layers.0.weight``.

The layer list is reproduced exactly, quirks included: the 1x1 convs of layers
14, 16 and 20 have padding 1 and grow the map by 2 px, the dilated 3x3 convs of
layers 19, 21 and 23 have padding 1 (not 2) and shrink it by 2 px, and
``18_max`` is a no-op ``MaxPool2d(1, 1)``; the net change is zero, so the output
is ``floor`` of the stride-16 size. The stride-2 max pools floor odd sizes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from architectures.backbones.base import Encoder


class Conv2dBatchLeaky(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (momentum 0.01) -> LeakyReLU(0.1), as lightnet's layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels, momentum=0.01),
            nn.LeakyReLU(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DarkNet19(Encoder):
    """DarkNet19 encoder (OS 16); features at strides 2, 4, 8 and 16 (sizes round down).

    Paper: Redmon and Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017.

    Each feature is the output of the last conv before the next max pool: ``layers[:3]``
    (64 channels), ``[:7]`` (128), ``[:11]`` (256) and all 23 layers (1024, dilated). All convs
    have stride 1 and the 2x2 pools floor, so sizes round down at every pool
    (97 -> 48 -> 24 -> 12 -> 6).
    """

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = {2: 64, 4: 128, 8: 256, 16: 1024}
        self.stage_ends = {2: 3, 4: 7, 8: 11, 16: 23}
        conv = Conv2dBatchLeaky
        self.layers = nn.Sequential(
            OrderedDict(
                [
                    ("1_convbatch", conv(3, 32, 3, padding=1)),
                    ("2_max", nn.MaxPool2d(2, 2)),
                    ("3_convbatch", conv(32, 64, 3, padding=1)),
                    ("4_max", nn.MaxPool2d(2, 2)),
                    ("5_convbatch", conv(64, 128, 3, padding=1)),
                    ("6_convbatch", conv(128, 64, 1, padding=0)),
                    ("7_convbatch", conv(64, 128, 3, padding=1)),
                    ("8_max", nn.MaxPool2d(2, 2)),
                    ("9_convbatch", conv(128, 256, 3, padding=1)),
                    ("10_convbatch", conv(256, 128, 1, padding=0)),
                    ("11_convbatch", conv(128, 256, 3, padding=1)),
                    ("12_max", nn.MaxPool2d(2, 2)),
                    ("13_convbatch", conv(256, 512, 3, padding=1)),
                    ("14_convbatch", conv(512, 256, 1, padding=1)),
                    ("15_convbatch", conv(256, 512, 3, padding=1)),
                    ("16_convbatch", conv(512, 256, 1, padding=1)),
                    ("17_convbatch", conv(256, 512, 3, padding=1)),
                    ("18_max", nn.MaxPool2d(1, 1)),
                    ("19_convbatch", conv(512, 1024, 3, padding=1, dilation=2)),
                    ("20_convbatch", conv(1024, 512, 1, padding=1, dilation=2)),
                    ("21_convbatch", conv(512, 1024, 3, padding=1, dilation=2)),
                    ("22_convbatch", conv(1024, 512, 1, padding=0, dilation=2)),
                    ("23_convbatch", conv(512, 1024, 3, padding=1, dilation=2)),
                ]
            )
        )

    def layer_sequence(self) -> Sequence[nn.Module]:
        return self.layers
