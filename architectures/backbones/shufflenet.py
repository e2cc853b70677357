"""ShuffleNet v1 (g = 8) encoder as LiteSeg uses it.

Paper: Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices", CVPR 2018 (arXiv 1707.01083).

Follows LiteSeg's official port (models/backbone_networks/ShuffleNet.py) detail
for detail, including what differs from the paper: the stem conv has a bias and
is followed by neither BN nor ReLU, every 1x1 and depthwise conv has a bias, and
stage 4 is not dilated (the official code comments the dilation out), so the
output stride is 32. The ImageNet ``fc`` is left out because LiteSeg never runs it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from architectures.backbones.base import Encoder

_GROUPS = 8
# Output channels of the stem and stages 2-4 for g = 8 (Table 1 of the paper).
_STAGE_CHANNELS = (24, 384, 768, 1536)
_STAGE_REPEATS = (3, 7, 3)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """ShuffleNet unit: grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1, then combine.

    ``downsample=True`` is the stride-2 unit of Fig. 2c: its shortcut is a 3x3
    average pool (stride 2, padding 1, PyTorch defaults) concatenated with the
    branch, whose width is therefore ``out_channels - in_channels``. Otherwise
    the shortcut is added (Fig. 2b). Both end with a ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels of the unit.
        groups: groups of the 1x1 convs and of the channel shuffle.
        grouped_compress: whether the first 1x1 conv is grouped (not in the first
            unit of stage 2, whose input has only 24 channels).
        downsample: stride-2 unit with a concatenated shortcut.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        groups: int,
        grouped_compress: bool,
        downsample: bool,
    ) -> None:
        super().__init__()
        self.groups = groups
        self.downsample = downsample
        bottleneck = out_channels // 4
        branch_out = out_channels - in_channels if downsample else out_channels
        self.g_conv_1x1_compress = nn.Sequential(
            OrderedDict(
                conv1x1=nn.Conv2d(
                    in_channels, bottleneck, 1, groups=groups if grouped_compress else 1
                ),
                batch_norm=nn.BatchNorm2d(bottleneck),
                relu=nn.ReLU(),
            )
        )
        self.depthwise_conv3x3 = nn.Conv2d(
            bottleneck, bottleneck, 3, stride=2 if downsample else 1, padding=1, groups=bottleneck
        )
        self.bn_after_depthwise = nn.BatchNorm2d(bottleneck)
        self.g_conv_1x1_expand = nn.Sequential(
            OrderedDict(
                conv1x1=nn.Conv2d(bottleneck, branch_out, 1, groups=groups),
                batch_norm=nn.BatchNorm2d(branch_out),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.g_conv_1x1_compress(x), self.groups)
        out = self.g_conv_1x1_expand(self.bn_after_depthwise(self.depthwise_conv3x3(out)))
        if self.downsample:
            out = torch.cat((F.avg_pool2d(x, kernel_size=3, stride=2, padding=1), out), dim=1)
        else:
            out = x + out
        return F.relu(out)


class ShuffleNet(Encoder):
    """ShuffleNet v1 (g = 8) encoder; features at strides 2 to 32 (sizes round up).

    Paper: Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural
    Network for Mobile Devices", CVPR 2018.

    The features are the outputs of ``conv1`` (stride 2) and ``maxpool`` (stride 4), 24
    channels each, and of stages 2, 3 and 4: 384, 768 and 1536 channels at strides 8, 16, 32.
    Submodule names follow the official port (``stage2.ShuffleUnit_Stage2_0...``).
    """

    def __init__(self) -> None:
        super().__init__()
        channels = (_STAGE_CHANNELS[0], *_STAGE_CHANNELS)
        self.out_channels = dict(zip((2, 4, 8, 16, 32), channels, strict=True))
        self.stage_ends = {2: 1, 4: 2, 8: 3, 16: 4, 32: 5}
        self.conv1 = nn.Conv2d(3, _STAGE_CHANNELS[0], 3, stride=2, padding=1)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = self._make_stage(2)
        self.stage3 = self._make_stage(3)
        self.stage4 = self._make_stage(4)

    @staticmethod
    def _make_stage(stage: int) -> nn.Sequential:
        in_channels = _STAGE_CHANNELS[stage - 2]
        out_channels = _STAGE_CHANNELS[stage - 1]
        prefix = f"ShuffleUnit_Stage{stage}_"
        units = OrderedDict()
        units[prefix + "0"] = ShuffleUnit(
            in_channels,
            out_channels,
            groups=_GROUPS,
            grouped_compress=stage > 2,
            downsample=True,
        )
        for index in range(1, _STAGE_REPEATS[stage - 2] + 1):
            units[prefix + str(index)] = ShuffleUnit(
                out_channels,
                out_channels,
                groups=_GROUPS,
                grouped_compress=True,
                downsample=False,
            )
        return nn.Sequential(units)

    def layer_sequence(self) -> Sequence[nn.Module]:
        return (self.conv1, self.maxpool, self.stage2, self.stage3, self.stage4)
