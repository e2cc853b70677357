"""LiteSeg: DASPP context module and a light decoder on MobileNetV2, ShuffleNet or DarkNet19.

Paper: Emara, Abd El Munim and Abbas, "LiteSeg: A Novel Lightweight ConvNet for
Semantic Segmentation", DICTA 2019 (arXiv 1912.06683). Official code:
github.com/tahaemara/LiteSeg.

One :class:`LiteSeg` class serves every encoder; each variant is a :class:`LiteSegConfig`
literal registered with its :class:`ModelMeta` at the end of this module. Submodule names
follow the official models/ files so that state_dict keys are those of the official
checkpoints (minus the unused ImageNet classifiers and ShuffleNet's ``DataParallel`` level;
see :mod:`architectures.liteseg_weights`). ``liteseg_stdc1`` puts the same decoder on
PP-LiteSeg's STDC1 encoder (an experiment neither paper ran).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from architectures._registry import register_model
from architectures.backbones import ENCODERS, build_encoder
from architectures.layers import SeparableConv2d
from architectures.liteseg_weights import OfficialLayout
from architectures.meta import Gmacs, ModelMeta, Paper, PaperResult, ParamCounts
from architectures.variants import VariantConfig

Context = Literal["daspp", "aspp"]
_RATES = (1, 3, 6, 9)
_CHANNELS = 96


@dataclass(frozen=True)
class LiteSegConfig(VariantConfig):
    """What distinguishes the LiteSeg variants and ablations.

    The context module runs on the encoder's deepest feature; the decoder concatenates the
    feature at ``low_level_stride``.

    Args:
        encoder: a key of :data:`architectures.backbones.ENCODERS`, e.g. ``"mobilenetv2"``.
        encoder_attribute: attribute name of the encoder in the official model; it prefixes
            the encoder's state_dict keys.
        low_level_stride: stride of the low-level feature; without the long residual the
            context output is upsampled to ``ceil(H / low_level_stride)`` instead.
        low_level_projection: output channels of the sep 1x1 -> BN -> ReLU applied to the
            low-level feature before the concat, or ``None`` to use it raw.
        context: ``"daspp"`` (paper) or ``"aspp"`` (ablation: atrous branches without the
            extra sep 3x3 conv).
        short_residual: concat the encoder output with the context branches.
        long_residual: concat the (projected) low-level feature in the decoder; without it
            the projection is not built either.
    """

    encoder: str
    encoder_attribute: str
    low_level_stride: int
    low_level_projection: int | None
    context: Context = "daspp"
    short_residual: bool = True
    long_residual: bool = True

    OVERRIDES = ("context", "short_residual", "long_residual")


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
        config: the variant, e.g. ``LITESEG_MOBILENETV2``.
        num_classes: number of output classes.

    Returns:
        In eval mode logits ``(N, num_classes, H, W)``; in train mode the tuple
        ``(logits,)`` (LiteSeg has no auxiliary heads).
    """

    def __init__(self, config: LiteSegConfig, *, num_classes: int) -> None:
        super().__init__()
        self.config = config
        encoder = build_encoder(config.encoder)
        self.add_module(config.encoder_attribute, encoder)
        channels, low_level_channels = encoder.channels_at(
            max(encoder.out_channels), config.low_level_stride
        )

        deeper = config.context == "daspp"
        self.aspp1 = AtrousBranch(channels, _CHANNELS, _RATES[0], deeper)
        self.aspp2 = AtrousBranch(channels, _CHANNELS, _RATES[1], deeper)
        self.aspp3 = AtrousBranch(channels, _CHANNELS, _RATES[2], deeper)
        self.aspp4 = AtrousBranch(channels, _CHANNELS, _RATES[3], deeper)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, _CHANNELS, 1, bias=False),
            nn.BatchNorm2d(_CHANNELS),
            nn.ReLU(),
        )
        fuse_channels = 5 * _CHANNELS + (channels if config.short_residual else 0)
        self.conv1 = SeparableConv2d(fuse_channels, _CHANNELS, 1)
        self.bn1 = nn.BatchNorm2d(_CHANNELS)

        decoder_channels = _CHANNELS
        projection = config.low_level_projection
        self.project_low_level = config.long_residual and projection is not None
        if self.project_low_level:
            self.conv2 = SeparableConv2d(low_level_channels, projection, 1)
            self.bn2 = nn.BatchNorm2d(projection)
            decoder_channels += projection
        elif config.long_residual:
            decoder_channels += low_level_channels
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
        return getattr(self, self.config.encoder_attribute)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor]:
        height, width = images.shape[-2:]
        encoded = self.encoder(images)
        features = encoded[max(encoded)]

        pooled = self.global_avg_pool(features)
        branches = [
            self.aspp1(features),
            self.aspp2(features),
            self.aspp3(features),
            self.aspp4(features),
            F.interpolate(pooled, size=features.shape[-2:], mode="bilinear", align_corners=True),
        ]
        if self.config.short_residual:
            branches.insert(0, features)
        x = F.relu(self.bn1(self.conv1(torch.cat(branches, dim=1))))

        if self.config.long_residual:
            low_level = encoded[self.config.low_level_stride]
            if self.project_low_level:
                low_level = F.relu(self.bn2(self.conv2(low_level)))
            x = F.interpolate(x, size=low_level.shape[-2:], mode="bilinear", align_corners=True)
            x = torch.cat((x, low_level), dim=1)
        else:
            stride = self.config.low_level_stride
            size = (math.ceil(height / stride), math.ceil(width / stride))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)

        logits = self.last_conv(x)
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        if self.training:
            return (logits,)
        return logits


LITESEG_MOBILENETV2 = LiteSegConfig(
    encoder="mobilenetv2",
    encoder_attribute="mobile_features",
    low_level_stride=4,
    low_level_projection=None,
)
LITESEG_SHUFFLENET = LiteSegConfig(
    encoder="shufflenet",
    encoder_attribute="shuffle_features",
    low_level_stride=8,
    low_level_projection=48,
)
LITESEG_DARKNET19 = LiteSegConfig(
    encoder="darknet19",
    encoder_attribute="resnet_features",
    low_level_stride=4,
    low_level_projection=32,
)
LITESEG_STDC1 = LiteSegConfig(
    encoder="stdc1",
    encoder_attribute="backbone",
    low_level_stride=8,
    low_level_projection=48,
)
"""LiteSeg's decoder on STDC1 (no official model). Context on the stride-32 feature (1024
ch). Low-level feature: the stride-8 output of STDC1's first stage (256 ch), projected by sep
1x1 -> 48 ch, BN, ReLU, as LiteSeg-ShuffleNet does with its stride-8 stage. Stride 8 rather
than 4 because STDC's stride-4 map is only the two-conv stem (64 ch), while stride 8 is the
first STDC stage, the finest feature PP-LiteSeg's own decoder fuses: both decoders then
decode from the same encoder features at the same finest stride, so comparing them on STDC1
compares the decoders, not their output resolution. Encoder attribute ``backbone`` as in
PaddleSeg, so STDC's ImageNet files map as for PP-LiteSeg."""

PAPER = Paper(
    title="LiteSeg",
    citation="Emara et al., LiteSeg: A Novel Lightweight ConvNet for Semantic Segmentation, "
    "DICTA 2019",
    arxiv="1912.06683",
    code="tahaemara/LiteSeg",
)


def _register(name: str, config: LiteSegConfig, **facts: Any) -> None:
    """Register a variant; its metadata gets this paper and its encoder's ImageNet weights."""
    imagenet = ENCODERS[config.encoder].imagenet
    register_model(name, LiteSeg, config, ModelMeta(paper=PAPER, imagenet=imagenet, **facts))


_TRAINING = "ImageNet-pretrained encoder, Cityscapes coarse then fine, 100 epochs (train.py)"


def _cityscapes_test(
    *, miou: float, fps: float, gflops: float, params_m: float, fps_full: float, training: str = ""
) -> tuple[PaperResult]:
    """The paper's one result per encoder: Cityscapes test, speed on a GTX 1080Ti."""
    return (
        PaperResult(
            key="cityscapes-test",
            dataset="Cityscapes test (class mIoU)",
            resolution=None,
            miou=miou,
            fps=fps,
            fps_resolution=(360, 640),
            hardware="NVIDIA GTX 1080Ti",
            method="eager PyTorch fp32, batch 1, random input, 200 warm-up then 200 timed "
            "calls with CUDA synchronisation, FPS = 200 / total; GFLOPs from the authors' own "
            "counter at 512x1024 (conv multiply-adds + BN, ReLU, pooling; not comparable with "
            "fvcore's)",
            training=f"{_TRAINING}; {training}" if training else _TRAINING,
            gflops=gflops,
            params_m=params_m,
            note=f"{fps_full:g} FPS at 1024x2048",
        ),
    )


_register(
    "liteseg_mobilenetv2",
    LITESEG_MOBILENETV2,
    display_name="LiteSeg-MobileNetV2",
    description="MobileNetV2 encoder (OS 32), DASPP, raw 24-ch low-level feature at stride 4",
    params=ParamCounts(
        train=4_382_707, inference=3_101_707, official=True, not_ported=1280 * 1000 + 1000
    ),
    gmacs=Gmacs(4.305),
    results=_cityscapes_test(miou=67.81, fps=161, gflops=4.9, params_m=4.38, fps_full=22),
    converter=OfficialLayout(
        unused_keys=("mobile_features.classifier.1.weight", "mobile_features.classifier.1.bias")
    ),
)
_register(
    "liteseg_shufflenet",
    LITESEG_SHUFFLENET,
    display_name="LiteSeg-ShuffleNet",
    description="ShuffleNet v1 g=8 encoder (OS 32), DASPP, low-level 384 -> 48 ch at stride 8",
    params=ParamCounts(
        train=3_508_451, inference=1_971_451, official=True, not_ported=1536 * 1000 + 1000
    ),
    gmacs=Gmacs(2.245),
    results=_cityscapes_test(miou=65.17, fps=133, gflops=2.75, params_m=3.51, fps_full=31),
    converter=OfficialLayout(
        unused_keys=("shuffle_features.module.fc.weight", "shuffle_features.module.fc.bias"),
        renamed_prefix=("shuffle_features.module.", "shuffle_features."),
    ),
)
_register(
    "liteseg_darknet19",
    LITESEG_DARKNET19,
    display_name="LiteSeg-DarkNet19",
    description="DarkNet19 encoder (OS 16, dilated), DASPP, low-level 128 -> 32 ch at stride 4",
    params=ParamCounts(train=20_545_459, inference=20_545_459, official=True),
    gmacs=Gmacs(57.130),
    results=_cityscapes_test(
        miou=70.75,
        fps=98,
        gflops=103.09,
        params_m=20.55,
        fps_full=15,
        training="lr 1e-8, 10x below the other encoders",
    ),
    converter=OfficialLayout(),
)
_register(
    "liteseg_stdc1",
    LITESEG_STDC1,
    display_name="LiteSeg decoder on STDC1",
    description="LiteSeg's decoder (DASPP, short and long residuals) on PP-LiteSeg's STDC1 "
    "encoder, low-level stride-8 feature 256 -> 48 ch",
    params=ParamCounts(train=6_056_419, inference=6_056_419, official=False),
    gmacs=Gmacs(8.494),
)
