"""LiteSeg: DASPP context module and a light decoder on MobileNetV2, ShuffleNet or DarkNet19.

Paper: Emara, Abd El Munim and Abbas, "LiteSeg: A Novel Lightweight ConvNet for
Semantic Segmentation", DICTA 2019 (arXiv 1912.06683). Official code:
github.com/tahaemara/LiteSeg.

One :class:`LiteSeg` class serves the three encoders; each variant is an
:class:`EncoderConfig` literal. Submodule names follow the official models/ files
so that state_dict keys are those of the official checkpoints (minus the unused
ImageNet classifiers and ShuffleNet's ``DataParallel`` level; see
:mod:`architectures.liteseg_weights`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from architectures._registry import register_model
from architectures.backbones.darknet import DarkNet19
from architectures.backbones.mobilenetv2 import MobileNetV2
from architectures.backbones.shufflenet import ShuffleNet
from architectures.layers import SeparableConv2d

Context = Literal["daspp", "aspp"]
CONTEXTS: tuple[str, ...] = ("daspp", "aspp")
_RATES = (1, 3, 6, 9)
_CHANNELS = 96


@dataclass(frozen=True)
class EncoderConfig:
    """What distinguishes the LiteSeg variants.

    Args:
        attribute: attribute name of the encoder in the official model; it prefixes the
            encoder's state_dict keys.
        build: builds the encoder; its forward returns ``(features, low_level)``.
        channels: channels of ``features``.
        low_level_channels: channels of ``low_level``.
        low_level_projection: output channels of the sep 1x1 -> BN -> ReLU applied to
            ``low_level`` before the concat, or ``None`` to use it raw.
        decoder_stride: stride of ``low_level``; the context output is upsampled to
            ``ceil(H / decoder_stride), ceil(W / decoder_stride)``.
    """

    attribute: str
    build: Callable[[], nn.Module]
    channels: int
    low_level_channels: int
    low_level_projection: int | None
    decoder_stride: int


MOBILENETV2 = EncoderConfig(
    attribute="mobile_features",
    build=MobileNetV2,
    channels=1280,
    low_level_channels=24,
    low_level_projection=None,
    decoder_stride=4,
)
SHUFFLENET = EncoderConfig(
    attribute="shuffle_features",
    build=ShuffleNet,
    channels=1536,
    low_level_channels=384,
    low_level_projection=48,
    decoder_stride=8,
)
DARKNET19 = EncoderConfig(
    attribute="resnet_features",
    build=DarkNet19,
    channels=1024,
    low_level_channels=128,
    low_level_projection=32,
    decoder_stride=4,
)


class AtrousBranch(nn.Module):
    """One atrous branch of (D)ASPP.

    Rate 1: sep 1x1 -> BN, with no ReLU (as the official code). Other rates: sep 3x3
    with that dilation -> BN -> [sep 3x3 -> BN] -> ReLU, where the bracketed part
    (``conv1``, ``bn1``) is what makes DASPP "deeper" and is left out for ASPP.

    Args:
        in_channels: channels of the encoder output.
        out_channels: channels of the branch.
        rate: dilation rate.
        deeper: add the extra sep 3x3 conv of DASPP (ignored for rate 1).
    """

    def __init__(self, in_channels: int, out_channels: int, rate: int, deeper: bool) -> None:
        super().__init__()
        self.rate = rate
        self.deeper = deeper and rate != 1
        # Declared before atrous_convolution to keep the official state_dict order.
        if self.deeper:
            self.conv1 = SeparableConv2d(out_channels, out_channels, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(out_channels)
        kernel_size = 1 if rate == 1 else 3
        self.atrous_convolution = SeparableConv2d(
            in_channels, out_channels, kernel_size, padding=rate if rate != 1 else 0, dilation=rate
        )
        self.bn = nn.BatchNorm2d(out_channels)
        # The official ASPP initialises its convs He-normal (fan-in); the rest of the head
        # keeps PyTorch's defaults.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.atrous_convolution(x))
        if self.rate == 1:
            return x
        if self.deeper:
            x = self.bn1(self.conv1(x))
        return F.relu(x)


class LiteSeg(nn.Module):
    """LiteSeg semantic segmentation network.

    Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
    Segmentation", DICTA 2019 (arXiv 1912.06683).

    Encoder -> (D)ASPP with rates 1, 3, 6, 9 and image pooling, 96 channels per
    branch -> concat (with the encoder output: short residual) -> sep 1x1 -> 96,
    BN, ReLU -> bilinear upsample to the low-level stride -> concat with the
    (projected) low-level feature (long residual) -> sep 3x3, BN, ReLU, sep 3x3,
    BN, ReLU, 1x1 conv -> bilinear upsample to the input size. All resizes use
    ``align_corners=True``.

    The official code upsamples the context to ``ceil(H / s), ceil(W / s)``. That
    is the low-level map's size for every input the official code accepts, so with
    the long residual we upsample to the low-level map's size, which also lets
    DarkNet19 (whose max pools floor) take sizes not divisible by 4.

    Args:
        encoder: the variant's :class:`EncoderConfig`.
        num_classes: number of output classes.
        context: ``"daspp"`` (paper) or ``"aspp"`` (ablation: atrous branches without
            the extra sep 3x3 conv).
        short_residual: concat the encoder output with the context branches.
        long_residual: concat the (projected) low-level feature in the decoder; without
            it the projection is not built either.

    Returns:
        In eval mode logits ``(N, num_classes, H, W)``; in train mode the tuple
        ``(logits,)`` (LiteSeg has no auxiliary heads).
    """

    def __init__(
        self,
        encoder: EncoderConfig,
        *,
        num_classes: int,
        context: Context = "daspp",
        short_residual: bool = True,
        long_residual: bool = True,
    ) -> None:
        super().__init__()
        _check_switches(num_classes, context, short_residual, long_residual)
        self.encoder_attribute = encoder.attribute
        self.decoder_stride = encoder.decoder_stride
        self.short_residual = short_residual
        self.long_residual = long_residual
        self.add_module(encoder.attribute, encoder.build())

        deeper = context == "daspp"
        self.aspp1 = AtrousBranch(encoder.channels, _CHANNELS, _RATES[0], deeper)
        self.aspp2 = AtrousBranch(encoder.channels, _CHANNELS, _RATES[1], deeper)
        self.aspp3 = AtrousBranch(encoder.channels, _CHANNELS, _RATES[2], deeper)
        self.aspp4 = AtrousBranch(encoder.channels, _CHANNELS, _RATES[3], deeper)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(encoder.channels, _CHANNELS, 1, bias=False),
            nn.BatchNorm2d(_CHANNELS),
            nn.ReLU(),
        )
        fuse_channels = 5 * _CHANNELS + (encoder.channels if short_residual else 0)
        self.conv1 = SeparableConv2d(fuse_channels, _CHANNELS, 1)
        self.bn1 = nn.BatchNorm2d(_CHANNELS)

        decoder_channels = _CHANNELS
        self.project_low_level = long_residual and encoder.low_level_projection is not None
        if self.project_low_level:
            self.conv2 = SeparableConv2d(
                encoder.low_level_channels, encoder.low_level_projection, 1
            )
            self.bn2 = nn.BatchNorm2d(encoder.low_level_projection)
            decoder_channels += encoder.low_level_projection
        elif long_residual:
            decoder_channels += encoder.low_level_channels
        self.last_conv = nn.Sequential(
            SeparableConv2d(decoder_channels, _CHANNELS, 3, padding=1),
            nn.BatchNorm2d(_CHANNELS),
            nn.ReLU(),
            SeparableConv2d(_CHANNELS, _CHANNELS, 3, padding=1),
            nn.BatchNorm2d(_CHANNELS),
            nn.ReLU(),
            nn.Conv2d(_CHANNELS, num_classes, 1),
        )

    @property
    def encoder(self) -> nn.Module:
        """The encoder module (registered under its official attribute name)."""
        return getattr(self, self.encoder_attribute)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor]:
        height, width = images.shape[-2:]
        features, low_level = self.encoder(images)

        pooled = self.global_avg_pool(features)
        branches = [
            self.aspp1(features),
            self.aspp2(features),
            self.aspp3(features),
            self.aspp4(features),
            F.interpolate(pooled, size=features.shape[-2:], mode="bilinear", align_corners=True),
        ]
        if self.short_residual:
            branches.insert(0, features)
        x = F.relu(self.bn1(self.conv1(torch.cat(branches, dim=1))))

        if self.long_residual:
            if self.project_low_level:
                low_level = F.relu(self.bn2(self.conv2(low_level)))
            x = F.interpolate(x, size=low_level.shape[-2:], mode="bilinear", align_corners=True)
            x = torch.cat((x, low_level), dim=1)
        else:
            size = (math.ceil(height / self.decoder_stride), math.ceil(width / self.decoder_stride))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)

        logits = self.last_conv(x)
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        if self.training:
            return (logits,)
        return logits


def _check_switches(
    num_classes: object, context: object, short_residual: object, long_residual: object
) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
    for name, value in (("short_residual", short_residual), ("long_residual", long_residual)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")


@register_model
def liteseg_mobilenetv2(
    *,
    num_classes: int,
    context: Context = "daspp",
    short_residual: bool = True,
    long_residual: bool = True,
) -> LiteSeg:
    """LiteSeg-MobileNet: MobileNetV2 encoder (OS 32), raw 24-ch low-level feature at stride 4.

    Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
    Segmentation", DICTA 2019 (arXiv 1912.06683).

    Args:
        num_classes: number of output classes.
        context: ``"daspp"`` (paper) or ``"aspp"`` (ablation).
        short_residual: concat the encoder output with the context branches.
        long_residual: concat the low-level feature in the decoder.
    """
    return LiteSeg(
        MOBILENETV2,
        num_classes=num_classes,
        context=context,
        short_residual=short_residual,
        long_residual=long_residual,
    )


@register_model
def liteseg_shufflenet(
    *,
    num_classes: int,
    context: Context = "daspp",
    short_residual: bool = True,
    long_residual: bool = True,
) -> LiteSeg:
    """LiteSeg-ShuffleNet: ShuffleNet v1 g=8 encoder (OS 32), low-level 384 -> 48 ch at stride 8.

    Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
    Segmentation", DICTA 2019 (arXiv 1912.06683).

    Args:
        num_classes: number of output classes.
        context: ``"daspp"`` (paper) or ``"aspp"`` (ablation).
        short_residual: concat the encoder output with the context branches.
        long_residual: concat the projected low-level feature in the decoder.
    """
    return LiteSeg(
        SHUFFLENET,
        num_classes=num_classes,
        context=context,
        short_residual=short_residual,
        long_residual=long_residual,
    )


@register_model
def liteseg_darknet19(
    *,
    num_classes: int,
    context: Context = "daspp",
    short_residual: bool = True,
    long_residual: bool = True,
) -> LiteSeg:
    """LiteSeg-DarkNet19: DarkNet19 encoder (OS 16, dilated), low-level 128 -> 32 ch at stride 4.

    Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
    Segmentation", DICTA 2019 (arXiv 1912.06683).

    Args:
        num_classes: number of output classes.
        context: ``"daspp"`` (paper) or ``"aspp"`` (ablation).
        short_residual: concat the encoder output with the context branches.
        long_residual: concat the projected low-level feature in the decoder.
    """
    return LiteSeg(
        DARKNET19,
        num_classes=num_classes,
        context=context,
        short_residual=short_residual,
        long_residual=long_residual,
    )
