"""MobileNetV2 encoder as LiteSeg uses it.

Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018 (arXiv 1801.04381).

Width 1.0, ReLU6, output stride 32, all 19 feature layers up to the 320 -> 1280
1x1 conv. Submodule names follow LiteSeg's official port
(``features.N.conv.K.*``), which has the same shapes as torchvision's model; the
ImageNet classifier is left out because LiteSeg never runs it.
"""

from __future__ import annotations

import torch
from torch import nn

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
# features[:4] ends at stride 4 with 24 channels: LiteSeg's low-level feature.
_LOW_LEVEL_END = 4


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


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) feature extractor returning ``(features, low_level)``.

    Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.

    ``features`` has 1280 channels at stride 32 (spatial size ``ceil(H / 32)``);
    ``low_level`` is the output of ``features[:4]``, 24 channels at stride 4
    (``ceil(H / 4)``). Weights are initialised as in the official port
    (He normal with fan-out for convs).
    """

    out_channels = _LAST_CHANNELS
    low_level_channels = 24

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, _STEM_CHANNELS, 3, stride=2)]
        in_channels = _STEM_CHANNELS
        for expand_ratio, out_channels, repeats, first_stride in _INVERTED_RESIDUAL_SETTINGS:
            for index in range(repeats):
                stride = first_stride if index == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, stride, expand_ratio))
                in_channels = out_channels
        layers.append(_conv_bn_relu6(in_channels, _LAST_CHANNELS, 1, stride=1))
        self.features = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low_level = self.features[:_LOW_LEVEL_END](images)
        return self.features[_LOW_LEVEL_END:](low_level), low_level
