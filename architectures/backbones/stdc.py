"""STDC encoders (STDC1, STDC2) as used by PP-LiteSeg.

Paper: Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR 2021
(arXiv 2104.13188). Structure follows PaddleSeg's ``paddleseg/models/backbones/stdcnet.py``
(the "cat" bottleneck) so that its ImageNet and PP-LiteSeg weights load by renaming only
Paddle's leaf names: ``features`` is indexed exactly like the official ``features``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from architectures.backbones.base import Encoder, ImageNetConversion
from architectures.layers import ConvBNAct
from architectures.meta import HALF, ImageNetWeights
from architectures.weights import PADDLE_LEAF_RENAMES, rename_key


@dataclass(frozen=True)
class STDCConfig:
    """Depth and width of one STDC variant.

    Args:
        blocks_per_stage: CatBottleneck blocks in the stages at strides 8, 16 and 32.
        base_channels: channels at stride 4; the stem has half, the stages 4x, 8x, 16x.
        convs_per_block: convolutions inside each CatBottleneck (at least 2).
    """

    blocks_per_stage: tuple[int, int, int]
    base_channels: int = 64
    convs_per_block: int = 4


STDC_CONFIGS: dict[str, STDCConfig] = {
    "stdc1": STDCConfig(blocks_per_stage=(2, 2, 2)),
    "stdc2": STDCConfig(blocks_per_stage=(4, 5, 3)),
}


class CatBottleneck(nn.Module):
    """STDC block: a chain of convs whose outputs are concatenated (no residual).

    The first conv (1x1) gives ``out/2`` channels, the following 3x3 convs halve the width
    down to ``out/2**(n-1)``, and the last keeps it, so the concatenation has ``out``
    channels. With stride 2 the first output is downsampled twice: by ``avd_layer``
    (depthwise 3x3 stride 2 + BN, no activation) before it feeds the chain, and by an
    average pool (3x3 stride 2, padding excluded from the mean) for its own concat slot.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, num_convs: int = 4, stride: int = 1
    ) -> None:
        super().__init__()
        if num_convs < 2:
            raise ValueError(f"a CatBottleneck needs at least 2 convs, got {num_convs}")
        if stride not in (1, 2):
            raise ValueError(f"CatBottleneck stride must be 1 or 2, got {stride}")
        widths = [out_channels // 2**index for index in range(1, num_convs)]
        widths.append(widths[-1])
        convs = [ConvBNAct(in_channels, widths[0], 1)]
        convs += [ConvBNAct(c_in, c_out, 3) for c_in, c_out in itertools.pairwise(widths)]
        self.conv_list = nn.ModuleList(convs)
        self.stride = stride
        if stride == 2:
            half = out_channels // 2
            self.avd_layer = ConvBNAct(half, half, 3, stride=2, groups=half, act=None)
            self.skip = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv_list[0](x)
        out = self.avd_layer(first) if self.stride == 2 else first
        outputs = []
        for conv in self.conv_list[1:]:
            out = conv(out)
            outputs.append(out)
        if self.stride == 2:
            first = self.skip(first)
        return torch.cat([first, *outputs], dim=1)


class STDCNet(Encoder):
    """STDC encoder; features at strides 2, 4, 8, 16 and 32 (sizes round up).

    Paper: Fan et al., "Rethinking BiSeNet For Real-time Semantic Segmentation", CVPR 2021.

    ``features`` holds the stem (two ConvBNReLU 3x3 stride 2) and then every CatBottleneck,
    in the official order; the first block of each stage has stride 2. Channels are
    ``base/2, base, 4 base, 8 base, 16 base`` (32, 64, 256, 512, 1024 for both variants).
    Convs are bias-free and initialised like the official code (normal, std 0.001; BN weight 1,
    bias 0).

    Args:
        config: depth and width, e.g. ``STDC_CONFIGS["stdc1"]``.
        in_channels: channels of the input image.
    """

    def __init__(self, config: STDCConfig, *, in_channels: int = 3) -> None:
        super().__init__()
        base = config.base_channels
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, base // 2, 3, stride=2),
            ConvBNAct(base // 2, base, 3, stride=2),
        ]
        self.out_channels = {2: base // 2, 4: base}
        self.stage_ends = {2: 1, 4: 2}
        channels = base
        for stage, num_blocks in enumerate(config.blocks_per_stage):
            out_channels = base * 2 ** (stage + 2)
            for block in range(num_blocks):
                stride = 2 if block == 0 else 1
                layers.append(
                    CatBottleneck(
                        channels, out_channels, num_convs=config.convs_per_block, stride=stride
                    )
                )
                channels = out_channels
            self.out_channels[2 ** (stage + 3)] = out_channels
            self.stage_ends[2 ** (stage + 3)] = len(layers)
        self.features = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def layer_sequence(self) -> Sequence[nn.Module]:
        return self.features

    @staticmethod
    def convert_imagenet(state_dict: Mapping[str, torch.Tensor]) -> ImageNetConversion | None:
        """Rename a PaddleSeg ImageNet STDC file (``PP_STDCNet1/2``: ``features.*``) to our keys.

        Its classifier keys (:data:`STDC_IMAGENET_UNUSED_PREFIXES`) are returned as unused.
        Files without top-level ``features.*`` keys are not in this format (``None``).
        """
        if not any(key.startswith("features.") for key in state_dict):
            return None
        converted: dict[str, torch.Tensor] = {}
        unused: list[str] = []
        for key, value in state_dict.items():
            if key.startswith(STDC_IMAGENET_UNUSED_PREFIXES):
                unused.append(key)
            else:
                converted[paddle_stdc_key(key)] = value
        return converted, unused


STDC_IMAGENET_UNUSED_PREFIXES = ("conv_last.", "fc.", "bn.", "linear.")
"""Keys of ImageNet STDC files (``PP_STDCNet1/2``) outside ``features.*`` that are dropped.

They belong to the ImageNet classifier of STDCNet (``conv_last`` 1x1 ConvBN, ``fc``, ``bn``,
``linear``; see STDC-Seg's ``nets/stdcnet.py``), which segmentation never runs. PaddleSeg's
own loader skips them the same way; any other key is an error.
"""

# Paddle's STDC names the avd_layer's conv and BN by position; ours are a ConvBNAct.
_PADDLE_STDC_RENAMES = (
    (r"\.avd_layer\.0\.", ".avd_layer.conv."),
    (r"\.avd_layer\.1\.", ".avd_layer.bn."),
    *PADDLE_LEAF_RENAMES,
)


def paddle_stdc_key(key: str) -> str:
    """A PaddleSeg STDC key (relative to the encoder) -> ours."""
    return rename_key(key, _PADDLE_STDC_RENAMES)


def _paddleseg_imagenet(variant: str) -> ImageNetWeights:
    archive = f"PP_STDCNet{variant[-1]}.tar.gz"
    return ImageNetWeights(
        name=f"PaddleSeg PP_STDCNet{variant[-1]} (ImageNet-1k, SSLD-distilled)",
        encoder=variant,
        filename=archive,
        urls=(f"https://bj.bcebos.com/paddleseg/dygraph/{archive}",),
        sha256=None,  # unknown: the configs give none and the file is not reachable here
        member="model.pdparams",
        mean=HALF,
        std=HALF,
    )


STDC_IMAGENET: dict[str, ImageNetWeights] = {
    name: _paddleseg_imagenet(name) for name in STDC_CONFIGS
}
"""PaddleSeg's ImageNet STDC weights (URLs from ``configs/pp_liteseg/*.yml``), by variant."""
