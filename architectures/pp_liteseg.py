"""PP-LiteSeg: STDC encoder, simple pyramid pooling (SPPM), unified attention fusion (UAFM).

Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
arXiv 2204.02681 (2022). The structure follows the official PaddleSeg code
(``paddleseg/models/pp_liteseg.py``, ``layers/tensor_fusion.py``) rather than the paper
figure: three UAFMs fuse the stride-32, -16 and -8 features top-down, and the spatial
attention weight multiplies the LOW-level feature. Official checkpoints load with
:func:`architectures.weights.load_official`.

Each variant is a :class:`PPLiteSegConfig` literal registered with its :class:`ModelMeta`
at the end of this module; ``pp_liteseg_mobilenetv2`` puts the same decoder on LiteSeg's
MobileNetV2 encoder (an experiment neither paper ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from architectures._registry import register_model
from architectures.backbones import ENCODERS, build_encoder
from architectures.layers import ConvBNAct
from architectures.meta import Gmacs, ModelMeta, Paper, PaperResult, ParamCounts
from architectures.pp_liteseg_weights import convert_official_pp_liteseg
from architectures.variants import VariantConfig


def _upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class SPPM(nn.Module):
    """Simple pyramid pooling module: pooled branches are summed, then a 3x3 ConvBNReLU.

    Each branch is AdaptiveAvgPool(bin) -> ConvBNReLU 1x1, upsampled bilinearly to the input
    size. Unlike the rest of the network, both convs keep their bias, as in the official code.
    """

    def __init__(
        self, in_channels: int, inter_channels: int, out_channels: int, bin_sizes: Sequence[int]
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(size), ConvBNAct(in_channels, inter_channels, 1, bias=True)
            )
            for size in bin_sizes
        )
        self.conv_out = ConvBNAct(inter_channels, out_channels, 3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out = _upsample(self.stages[0](x), size)
        for stage in self.stages[1:]:
            out = out + _upsample(stage(x), size)
        return self.conv_out(out)


class UAFM(nn.Module):
    """Fusion of a low-level feature ``x`` with the upsampled high-level ``y`` by addition.

    This is the official base ``UAFM`` (the paper's ablation baseline); the attention variants
    only override :meth:`fuse`. ``conv_x`` maps ``x`` to the width of ``y``; ``conv_out``
    maps the fused feature to ``out_channels``.
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_x = ConvBNAct(low_channels, high_channels, 3)
        self.conv_out = ConvBNAct(high_channels, out_channels, 3)

    def fuse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.conv_x(low)
        y = _upsample(high, x.shape[-2:])
        return self.conv_out(self.fuse(x, y))


class _AttentionUAFM(UAFM):
    """UAFM mixing ``x*alpha + y*(1-alpha)``, alpha = sigmoid(attention(statistics(x, y)))."""

    attention: nn.Module

    def statistics(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fuse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.attention(self.statistics(x, y)))
        return x * alpha + y * (1 - alpha)


class SpatialUAFM(_AttentionUAFM):
    """UAFM with spatial attention (official ``UAFM_SpAtten``, the PP-LiteSeg default).

    alpha (N,1,H,W) comes from [mean_c(x), max_c(x), mean_c(y), max_c(y)] through
    ConvBNReLU 3x3 4->2, ConvBN 3x3 2->1 and a sigmoid; out = x*alpha + y*(1-alpha).
    The official module also holds a frozen ``_scale`` (always 1) in place of the 1;
    it is not a parameter here (see :mod:`architectures.pp_liteseg_weights`).
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__(low_channels, high_channels, out_channels)
        self.attention = nn.Sequential(ConvBNAct(4, 2, 3), ConvBNAct(2, 1, 3, act=None))

    def statistics(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                x.mean(dim=1, keepdim=True),
                x.amax(dim=1, keepdim=True),
                y.mean(dim=1, keepdim=True),
                y.amax(dim=1, keepdim=True),
            ],
            dim=1,
        )


class ChannelUAFM(_AttentionUAFM):
    """UAFM with channel attention (official ``UAFM_ChAtten``).

    alpha (N,C,1,1) comes from the global [avg(x), avg(y), max(x), max(y)] (4C channels, in
    that order) through ConvBN+LeakyReLU(0.01) 1x1 4C->C/2, ConvBN 1x1 C/2->C and a sigmoid;
    out = x*alpha + y*(1-alpha).
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__(low_channels, high_channels, out_channels)
        hidden = high_channels // 2
        self.attention = nn.Sequential(
            ConvBNAct(4 * high_channels, hidden, 1, act=partial(nn.LeakyReLU, 0.01)),
            ConvBNAct(hidden, high_channels, 1, act=None),
        )

    def statistics(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                x.mean(dim=(2, 3), keepdim=True),
                y.mean(dim=(2, 3), keepdim=True),
                x.amax(dim=(2, 3), keepdim=True),
                y.amax(dim=(2, 3), keepdim=True),
            ],
            dim=1,
        )


Fusion = Literal["spatial", "channel", "add"]
FUSIONS: dict[str, type[UAFM]] = {"spatial": SpatialUAFM, "channel": ChannelUAFM, "add": UAFM}


class SegHead(nn.Module):
    """ConvBNReLU 3x3 (no bias) then a 1x1 classifier conv (no bias)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


@dataclass(frozen=True)
class PPLiteSegConfig(VariantConfig):
    """Everything that distinguishes one PP-LiteSeg variant or ablation from another.

    Args:
        encoder: a key of :data:`architectures.backbones.ENCODERS` with features at
            ``feature_strides``, e.g. ``"stdc1"``.
        decoder_channels: UAFM output widths at strides (8, 16, 32), the official
            ``arm_out_chs``.
        head_channels: middle widths of the three SegHeads, the official ``seg_head_inter_chs``.
        context_channels: width of the context module (SPPM) output.
        sppm: use the SPPM; ``False`` puts a ConvBNReLU 1x1 (encoder width ->
            ``context_channels``, no bias) in its place so every width stays the same.
        fusion: ``"spatial"`` (UAFM_SpAtten), ``"channel"`` (UAFM_ChAtten) or ``"add"``
            (base UAFM, no attention).
        bin_sizes: output sizes of the SPPM's pooling branches.
        feature_strides: the encoder strides the three UAFMs fuse, finest first.
    """

    encoder: str
    decoder_channels: tuple[int, int, int]
    head_channels: tuple[int, int, int]
    context_channels: int = 128
    sppm: bool = True
    fusion: Fusion = "spatial"
    bin_sizes: tuple[int, ...] = (1, 2, 4)
    feature_strides: tuple[int, int, int] = (8, 16, 32)

    OVERRIDES = ("sppm", "fusion", "decoder_channels", "head_channels", "context_channels")


class PPLiteSeg(nn.Module):
    """PP-LiteSeg semantic segmentation network.

    Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
    arXiv 2204.02681 (2022).

    The context module runs on the deepest encoder feature used (stride 32); three UAFMs then
    fuse it top-down with the stride-32, -16 and -8 features (``fusions`` is ordered x8, x16,
    x32 like the official ``arm_list``). One SegHead per UAFM output; at eval only ``heads[0]``
    runs. Inputs of any size work (not only multiples of 32). BatchNorm uses PyTorch's
    momentum 0.1 (Paddle's 0.9) and eps 1e-5; in training PyTorch updates the running variance
    with the unbiased batch variance, Paddle with the biased one (a factor n/(n-1) on the
    update, n = batch*H*W), so running statistics drift very slightly apart.

    The paper's ablation baseline (constant 96-channel decoder, add fusion, no SPPM) is
    ``decoder_channels=(96, 96, 96), fusion="add", sppm=False, context_channels=96``.

    Args:
        config: the variant, e.g. ``PP_LITESEG_T``.
        num_classes: number of output classes.

    Returns (from ``forward``): in eval mode the logits (N, num_classes, H, W) at input size;
    in train mode the tuple (main, aux16, aux32) of logits, all at input size.
    """

    def __init__(self, config: PPLiteSegConfig, *, num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_encoder(config.encoder)
        encoder_channels = self.backbone.channels_at(*config.feature_strides)
        if config.sppm:
            self.context: nn.Module = SPPM(
                encoder_channels[-1],
                config.context_channels,
                config.context_channels,
                config.bin_sizes,
            )
        else:
            self.context = ConvBNAct(encoder_channels[-1], config.context_channels, 1)
        fusion = FUSIONS[config.fusion]
        high_channels = (*config.decoder_channels[1:], config.context_channels)
        self.fusions = nn.ModuleList(
            fusion(low, high, out)
            for low, high, out in zip(
                encoder_channels, high_channels, config.decoder_channels, strict=True
            )
        )
        self.heads = nn.ModuleList(
            SegHead(in_channels, mid_channels, num_classes)
            for in_channels, mid_channels in zip(
                config.decoder_channels, config.head_channels, strict=True
            )
        )
        self._init_decoder()

    def _init_decoder(self) -> None:
        # Paddle's default Conv2D init (normal, std sqrt(2/fan_in), bias 0); BN weight 1, bias 0.
        for name, module in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        size = images.shape[-2:]
        features = self.backbone(images)
        strides = self.config.feature_strides
        high = self.context(features[strides[-1]])
        decoded: list[torch.Tensor] = []
        for stride, fusion in zip(reversed(strides), reversed(self.fusions), strict=True):
            high = fusion(features[stride], high)
            decoded.insert(0, high)
        if not self.training:
            return _upsample(self.heads[0](decoded[0]), size)
        return tuple(_upsample(head(x), size) for head, x in zip(self.heads, decoded, strict=True))


# Variants: the official T and B (configs/pp_liteseg/pp_liteseg_stdc{1,2}_*.yml; B's widths
# are PaddleSeg's PPLiteSeg class defaults) and T's decoder on LiteSeg's MobileNetV2 encoder.
PP_LITESEG_T = PPLiteSegConfig(
    encoder="stdc1", decoder_channels=(32, 64, 128), head_channels=(32, 64, 64)
)
PP_LITESEG_B = PPLiteSegConfig(
    encoder="stdc2", decoder_channels=(64, 96, 128), head_channels=(64, 64, 64)
)
PP_LITESEG_MOBILENETV2 = PPLiteSegConfig(
    encoder="mobilenetv2", decoder_channels=(32, 64, 128), head_channels=(32, 64, 64)
)

PAPER = Paper(
    title="PP-LiteSeg",
    citation="Peng et al., PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model, 2022",
    arxiv="2204.02681",
    code="PaddlePaddle/PaddleSeg",
)
_SPEED = {
    "hardware": "NVIDIA GTX 1080Ti",
    "method": "ONNX -> TensorRT FP32 engine, batch 1, no host/device copies",
}


def _register(name: str, config: PPLiteSegConfig, **facts: Any) -> None:
    """Register a variant; its metadata gets this paper and its encoder's ImageNet weights."""
    imagenet = ENCODERS[config.encoder].imagenet
    register_model(name, PPLiteSeg, config, ModelMeta(paper=PAPER, imagenet=imagenet, **facts))


def _paper_results(
    variant: str,
    encoder: str,
    *,
    cityscapes_val: tuple[float, float],
    cityscapes_test: tuple[float, float],
    cityscapes_fps: tuple[float, float],
    camvid: tuple[float, float],
) -> tuple[PaperResult, ...]:
    """The paper's results of one variant: Cityscapes at 512x1024 ("1") and 768x1536 ("2"),
    val and test, and CamVid test at 960x720 (mIoU, FPS)."""
    results = []
    sizes = ((512, 1024), (768, 1536))
    for index, (size, fps) in enumerate(zip(sizes, cityscapes_fps, strict=True)):
        for split, mious in (("val", cityscapes_val), ("test", cityscapes_test)):
            results.append(
                PaperResult(
                    key=f"cityscapes-{split}-{size[0]}x{size[1]}",
                    dataset=f"Cityscapes {split}",
                    resolution=size,
                    miou=mious[index],
                    fps=fps,
                    fps_resolution=size,
                    training=f"ImageNet-pretrained {encoder}, 160k iterations at batch 16 "
                    "(PaddleSeg's Cityscapes config)",
                    note=f"the paper's {variant}{index + 1}",
                    **_SPEED,
                )
            )
    results.append(
        PaperResult(
            key="camvid-test-960x720",
            dataset="CamVid test",
            resolution=(720, 960),
            miou=camvid[0],
            fps=camvid[1],
            fps_resolution=(720, 960),
            training=f"ImageNet-pretrained {encoder}, 10k iterations at batch 24 "
            "(PaddleSeg's CamVid config)",
            **_SPEED,
        )
    )
    return tuple(results)


_register(
    "pp_liteseg_t",
    PP_LITESEG_T,
    display_name="PP-LiteSeg-T",
    description="STDC1 encoder, SPPM, three spatial-attention UAFMs, decoder (32, 64, 128)",
    params=ParamCounts(train=8_141_600, inference=8_028_320, official=True),
    gmacs=Gmacs(11.421),
    results=_paper_results(
        "PP-LiteSeg-T",
        "STDC1",
        cityscapes_val=(73.1, 76.0),
        cityscapes_test=(72.0, 74.9),
        cityscapes_fps=(273.6, 143.6),
        camvid=(73.3, 222.3),
    ),
    converter=convert_official_pp_liteseg,
)
_register(
    "pp_liteseg_b",
    PP_LITESEG_B,
    display_name="PP-LiteSeg-B",
    description="STDC2 encoder, SPPM, three spatial-attention UAFMs, decoder (64, 96, 128)",
    params=ParamCounts(train=12_366_464, inference=12_234_752, official=True),
    gmacs=Gmacs(19.228),
    results=(
        *_paper_results(
            "PP-LiteSeg-B",
            "STDC2",
            cityscapes_val=(75.3, 78.2),
            cityscapes_test=(73.9, 77.5),
            cityscapes_fps=(195.3, 102.6),
            camvid=(75.0, 154.8),
        ),
        PaperResult(
            key="voc-sbd-seed",
            dataset="VOC2012 val minus SBD-train",
            resolution=None,
            miou=67.84,
            training="ImageNet init, 121 epochs, batch 32, crop 320x320 (the seed's protocol)",
            source="the seed's own result, not from the paper",
        ),
    ),
    converter=convert_official_pp_liteseg,
)
_register(
    "pp_liteseg_mobilenetv2",
    PP_LITESEG_MOBILENETV2,
    display_name="PP-LiteSeg decoder on MobileNetV2",
    description="PP-LiteSeg-T's decoder (SPPM, three spatial UAFMs) on LiteSeg's "
    "MobileNetV2 encoder, fusing its stride-8/16/32 features (32/96/1280 ch)",
    params=ParamCounts(train=4_832_128, inference=4_718_848, official=False),
    gmacs=Gmacs(4.800),
)
