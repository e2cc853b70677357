"""Building blocks shared by the architectures."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ActFactory = Callable[[], nn.Module]


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation (``act=None`` leaves the activation out).

    Submodules are named ``conv``, ``bn`` and ``act`` so state_dict keys read
    ``<block>.conv.weight``, ``<block>.bn.running_mean``, ...
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        act: ActFactory | None = nn.ReLU,
        bn_momentum: float = 0.1,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.bn = nn.BatchNorm2d(out_channels, momentum=bn_momentum)
        if act is not None:
            self.act = act()


class SeparableConv2d(nn.Module):
    """Depthwise conv followed by a pointwise 1x1 conv, both bias-free, nothing between.

    Matches LiteSeg's ``SeparableConv2d`` (submodules ``conv1`` and ``pointwise``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=False,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))
