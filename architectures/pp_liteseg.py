"""PP-LiteSeg: STDC encoder, simple pyramid pooling (SPPM), unified attention fusion (UAFM).

Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
arXiv 2204.02681 (2022). The structure follows the official PaddleSeg code
(``paddleseg/models/pp_liteseg.py``, ``layers/tensor_fusion.py``) rather than the paper
figure: three UAFMs fuse the stride-32, -16 and -8 features top-down, and the spatial
attention weight multiplies the LOW-level feature. Official checkpoints load with
:func:`architectures.weights.load_official`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from architectures._registry import register_model
from architectures.backbones.stdc import STDC_CONFIGS, STDCNet
from architectures.layers import ConvBNAct

# The decoder consumes the encoder features at strides 8, 16 and 32 (indices in [x2..x32]).
_DECODER_FEATURES = (2, 3, 4)


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


class SpatialUAFM(UAFM):
    """UAFM with spatial attention (official ``UAFM_SpAtten``, the PP-LiteSeg default).

    alpha (N,1,H,W) comes from [mean_c(x), max_c(x), mean_c(y), max_c(y)] through
    ConvBNReLU 3x3 4->2, ConvBN 3x3 2->1 and a sigmoid; out = x*alpha + y*(1-alpha).
    The official module also holds a frozen ``_scale`` (always 1) in place of the 1;
    it is not a parameter here (see :func:`architectures.weights.load_official`).
    """

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__(low_channels, high_channels, out_channels)
        self.attention = nn.Sequential(ConvBNAct(4, 2, 3), ConvBNAct(2, 1, 3, act=None))

    def fuse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        stats = torch.cat(
            [
                x.mean(dim=1, keepdim=True),
                x.amax(dim=1, keepdim=True),
                y.mean(dim=1, keepdim=True),
                y.amax(dim=1, keepdim=True),
            ],
            dim=1,
        )
        alpha = torch.sigmoid(self.attention(stats))
        return x * alpha + y * (1 - alpha)


class ChannelUAFM(UAFM):
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

    def fuse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        stats = torch.cat(
            [
                x.mean(dim=(2, 3), keepdim=True),
                y.mean(dim=(2, 3), keepdim=True),
                x.amax(dim=(2, 3), keepdim=True),
                y.amax(dim=(2, 3), keepdim=True),
            ],
            dim=1,
        )
        alpha = torch.sigmoid(self.attention(stats))
        return x * alpha + y * (1 - alpha)


FUSIONS: dict[str, type[UAFM]] = {"spatial": SpatialUAFM, "channel": ChannelUAFM, "add": UAFM}


class SegHead(nn.Module):
    """ConvBNReLU 3x3 (no bias) then a 1x1 classifier conv (no bias)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


def _check_channels(name: str, value: object, length: int | None = None) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if length is not None and (not isinstance(value, tuple) or len(value) != length):
        raise ValueError(f"{name} must be a tuple of {length} ints, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{name} must hold positive ints, got {value!r}")


@dataclass(frozen=True)
class PPLiteSegConfig:
    """Everything that distinguishes one PP-LiteSeg variant or ablation from another.

    Args:
        backbone: STDC encoder, ``"stdc1"`` or ``"stdc2"``.
        decoder_channels: UAFM output widths at strides (8, 16, 32), the official
            ``arm_out_chs``.
        head_channels: middle widths of the three SegHeads, the official ``seg_head_inter_chs``.
        context_channels: width of the context module (SPPM) output.
        sppm: use the SPPM; ``False`` puts a ConvBNReLU 1x1 (encoder width ->
            ``context_channels``, no bias) in its place so every width stays the same.
        fusion: ``"spatial"`` (UAFM_SpAtten), ``"channel"`` (UAFM_ChAtten) or ``"add"``
            (base UAFM, no attention).
        bin_sizes: output sizes of the SPPM's pooling branches.
    """

    backbone: str
    decoder_channels: tuple[int, int, int]
    head_channels: tuple[int, int, int]
    context_channels: int = 128
    sppm: bool = True
    fusion: str = "spatial"
    bin_sizes: tuple[int, ...] = (1, 2, 4)

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or self.backbone not in STDC_CONFIGS:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; valid: {', '.join(sorted(STDC_CONFIGS))}"
            )
        if not isinstance(self.fusion, str) or self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; valid: {', '.join(sorted(FUSIONS))}")
        if not isinstance(self.sppm, bool):
            raise ValueError(f"sppm must be True or False, got {self.sppm!r}")
        _check_channels("decoder_channels", self.decoder_channels, 3)
        _check_channels("head_channels", self.head_channels, 3)
        _check_channels("context_channels", self.context_channels)
        _check_channels("bin_sizes", self.bin_sizes)
        if not self.bin_sizes:
            raise ValueError("bin_sizes must name at least one pooling size")


class PPLiteSeg(nn.Module):
    """PP-LiteSeg semantic segmentation network.

    Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
    arXiv 2204.02681 (2022).

    The context module runs on the stride-32 encoder feature; three UAFMs then fuse it
    top-down with the stride-32, -16 and -8 features (``fusions`` is ordered x8, x16, x32 like
    the official ``arm_list``). One SegHead per UAFM output; at eval only ``heads[0]`` runs.
    Inputs of any size work (not only multiples of 32). BatchNorm uses PyTorch's
    momentum 0.1 (Paddle's 0.9) and eps 1e-5; in training PyTorch updates the running variance
    with the unbiased batch variance, Paddle with the biased one (a factor n/(n-1) on the
    update, n = batch*H*W), so running statistics drift very slightly apart.

    Args:
        config: the variant, e.g. ``PP_LITESEG_T``.
        num_classes: number of output classes.

    Returns (from ``forward``): in eval mode the logits (N, num_classes, H, W) at input size;
    in train mode the tuple (main, aux16, aux32) of logits, all at input size.
    """

    def __init__(self, config: PPLiteSegConfig, *, num_classes: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.config = config
        self.backbone = STDCNet(STDC_CONFIGS[config.backbone])
        encoder_channels = [self.backbone.feature_channels[i] for i in _DECODER_FEATURES]
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
        high = self.context(features[_DECODER_FEATURES[-1]])
        decoded: list[torch.Tensor] = []
        for index, fusion in zip(reversed(_DECODER_FEATURES), reversed(self.fusions), strict=True):
            high = fusion(features[index], high)
            decoded.insert(0, high)
        if not self.training:
            return _upsample(self.heads[0](decoded[0]), size)
        return tuple(_upsample(head(x), size) for head, x in zip(self.heads, decoded, strict=True))


PP_LITESEG_T = PPLiteSegConfig(
    backbone="stdc1",
    decoder_channels=(32, 64, 128),
    head_channels=(32, 64, 64),
    context_channels=128,
)
PP_LITESEG_B = PPLiteSegConfig(
    backbone="stdc2",
    decoder_channels=(64, 96, 128),
    head_channels=(64, 64, 64),
    context_channels=128,
)


def _as_tuple(value: object) -> object:
    # Lists (e.g. from TOML) become tuples; anything else is left for the config to reject.
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(value)
    return value


def _build(
    config: PPLiteSegConfig,
    num_classes: int,
    *,
    sppm: bool,
    fusion: str,
    decoder_channels: Sequence[int],
    head_channels: Sequence[int],
    context_channels: int,
) -> PPLiteSeg:
    config = dataclasses.replace(
        config,
        sppm=sppm,
        fusion=fusion,
        decoder_channels=_as_tuple(decoder_channels),
        head_channels=_as_tuple(head_channels),
        context_channels=context_channels,
    )
    return PPLiteSeg(config, num_classes=num_classes)


@register_model
def pp_liteseg_t(
    *,
    num_classes: int,
    sppm: bool = PP_LITESEG_T.sppm,
    fusion: str = PP_LITESEG_T.fusion,
    decoder_channels: Sequence[int] = PP_LITESEG_T.decoder_channels,
    head_channels: Sequence[int] = PP_LITESEG_T.head_channels,
    context_channels: int = PP_LITESEG_T.context_channels,
) -> PPLiteSeg:
    """PP-LiteSeg-T: STDC1 encoder, decoder (32, 64, 128), heads (32, 64, 64).

    Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
    arXiv 2204.02681; official config ``configs/pp_liteseg/pp_liteseg_stdc1_*.yml``.
    The paper's ablation baseline (constant 96-channel decoder, add fusion, no SPPM) is
    ``decoder_channels=(96, 96, 96), fusion="add", sppm=False, context_channels=96``.

    Args:
        num_classes: number of output classes.
        sppm: use the SPPM context module; ``False`` replaces it by a ConvBNReLU 1x1
            (1024 -> ``context_channels``) so that all widths stay equal.
        fusion: UAFM type: ``"spatial"`` (official default), ``"channel"`` or ``"add"``.
        decoder_channels: UAFM output widths at strides (8, 16, 32).
        head_channels: middle widths of the three SegHeads.
        context_channels: output width of the context module.
    """
    return _build(
        PP_LITESEG_T,
        num_classes,
        sppm=sppm,
        fusion=fusion,
        decoder_channels=decoder_channels,
        head_channels=head_channels,
        context_channels=context_channels,
    )


@register_model
def pp_liteseg_b(
    *,
    num_classes: int,
    sppm: bool = PP_LITESEG_B.sppm,
    fusion: str = PP_LITESEG_B.fusion,
    decoder_channels: Sequence[int] = PP_LITESEG_B.decoder_channels,
    head_channels: Sequence[int] = PP_LITESEG_B.head_channels,
    context_channels: int = PP_LITESEG_B.context_channels,
) -> PPLiteSeg:
    """PP-LiteSeg-B: STDC2 encoder, decoder (64, 96, 128), heads (64, 64, 64).

    Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
    arXiv 2204.02681; official config ``configs/pp_liteseg/pp_liteseg_stdc2_*.yml`` (its
    widths are PaddleSeg's ``PPLiteSeg`` class defaults). The paper's ablation baseline is
    ``decoder_channels=(96, 96, 96), fusion="add", sppm=False, context_channels=96``.

    Args:
        num_classes: number of output classes.
        sppm: use the SPPM context module; ``False`` replaces it by a ConvBNReLU 1x1
            (1024 -> ``context_channels``) so that all widths stay equal.
        fusion: UAFM type: ``"spatial"`` (official default), ``"channel"`` or ``"add"``.
        decoder_channels: UAFM output widths at strides (8, 16, 32).
        head_channels: middle widths of the three SegHeads.
        context_channels: output width of the context module.
    """
    return _build(
        PP_LITESEG_B,
        num_classes,
        sppm=sppm,
        fusion=fusion,
        decoder_channels=decoder_channels,
        head_channels=head_channels,
        context_channels=context_channels,
    )
