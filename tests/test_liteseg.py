"""LiteSeg: what is specific to the family (ablation costs, low-level picks, encoder quirks).

The call contract, gradients, parameter counts and GMACs are checked for every model in
tests/test_model_contract.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from architectures import create_model
from architectures.backbones.darknet import DarkNet19
from architectures.backbones.shufflenet import channel_shuffle
from architectures.liteseg import AtrousBranch

NAMES = ("liteseg_mobilenetv2", "liteseg_shufflenet", "liteseg_darknet19", "liteseg_stdc1")
NUM_CLASSES = 19

# What each ablation removes, by hand from the layer shapes (96-ch branches):
# - aspp: the extra sep 3x3 96->96 (864 + 9216) and its BN (192) in each of the
#   three dilated branches: 3 * 10,272.
# - short_residual=False: the fuse sep 1x1 loses the C encoder channels at its input:
#   C (depthwise) + 96 * C (pointwise) = 97 * C, C = 1280 / 1536 / 1024 / 1024.
# - long_residual=False: the first decoder sep 3x3 loses the L low-level channels at
#   its input (9 * L + 96 * L), and the projection sep 1x1 (C_low + C_low * L) + BN (2 * L)
#   goes too: L = 24 (raw, no projection) / 48 from 384 / 32 from 128 / 48 from 256.
ASPP_REMOVES = 3 * (96 * 9 + 96 * 96 + 2 * 96)
SHORT_RESIDUAL_REMOVES = {
    "liteseg_mobilenetv2": 97 * 1280,
    "liteseg_shufflenet": 97 * 1536,
    "liteseg_darknet19": 97 * 1024,
    "liteseg_stdc1": 97 * 1024,
}
LONG_RESIDUAL_REMOVES = {
    "liteseg_mobilenetv2": 105 * 24,
    "liteseg_shufflenet": 105 * 48 + 384 + 384 * 48 + 2 * 48,
    "liteseg_darknet19": 105 * 32 + 128 + 128 * 32 + 2 * 32,
    "liteseg_stdc1": 105 * 48 + 256 + 256 * 48 + 2 * 48,
}


def _params(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_ablations_remove_the_documented_parameters(name):
    paper = _params(create_model(name, num_classes=NUM_CLASSES))
    aspp = _params(create_model(name, num_classes=NUM_CLASSES, context="aspp"))
    no_short = _params(create_model(name, num_classes=NUM_CLASSES, short_residual=False))
    no_long = _params(create_model(name, num_classes=NUM_CLASSES, long_residual=False))
    assert paper - aspp == ASPP_REMOVES == 30_816
    assert paper - no_short == SHORT_RESIDUAL_REMOVES[name]
    assert paper - no_long == LONG_RESIDUAL_REMOVES[name]


def test_ablations_change_the_graph():
    torch.manual_seed(0)
    paper = create_model("liteseg_shufflenet", num_classes=3)
    assert paper.conv1.conv1.in_channels == 1536 + 5 * 96
    assert paper.last_conv[0].conv1.in_channels == 96 + 48
    assert paper.aspp2.deeper and not paper.aspp1.deeper
    no_short = create_model("liteseg_shufflenet", num_classes=3, short_residual=False)
    assert no_short.conv1.conv1.in_channels == 5 * 96
    no_long = create_model("liteseg_shufflenet", num_classes=3, long_residual=False)
    assert no_long.last_conv[0].conv1.in_channels == 96
    assert not hasattr(no_long, "conv2")
    aspp = create_model("liteseg_shufflenet", num_classes=3, context="aspp")
    assert not any(hasattr(getattr(aspp, f"aspp{index}"), "conv1") for index in range(1, 5))


@pytest.mark.parametrize(
    ("encoder", "deepest", "low_level"),
    [
        # ceil at every stride-2 conv / pool with padding 1.
        ("mobilenetv2", (32, 1280, 4, 5), (4, 24, 25, 33)),
        ("shufflenet", (32, 1536, 4, 5), (8, 384, 13, 17)),
        ("stdc1", (32, 1024, 4, 5), (8, 256, 13, 17)),
        # The max pools floor: 97 -> 48 -> 24 -> 12 -> 6, 131 -> 65 -> 32 -> 16 -> 8.
        ("darknet19", (16, 1024, 6, 8), (4, 128, 24, 32)),
    ],
)
def test_context_and_low_level_features_of_each_encoder(encoder, deepest, low_level):
    """LiteSeg runs its context on the deepest feature and picks the low-level one by stride."""
    model = create_model(f"liteseg_{encoder}", num_classes=3).eval()
    assert model.config.low_level_stride == low_level[0]
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 97, 131))
    assert (max(features), *features[max(features)].shape[1:]) == deepest
    assert (low_level[0], *features[low_level[0]].shape[1:]) == low_level


def test_darknet_keeps_official_padding_quirks():
    # 64 px in: four 2x2 pools -> 4 px; the 1x1 convs with padding 1 (layers 14, 16, 20)
    # add 2 px, the dilation-2 3x3 convs with padding 1 (19, 21, 23) remove 2 px.
    expected = [64, 32, 32, 16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 6, 6, 8, 8, 8, 6, 8, 6, 6, 4]
    x = torch.randn(1, 3, 64, 64)
    sizes = []
    with torch.no_grad():
        for layer in DarkNet19().eval().layers:
            x = layer(x)
            sizes.append(x.shape[-1])
    assert sizes == expected
    assert x.shape[1] == 1024


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_rate_one_branch_has_no_relu_and_dilated_branches_do():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 9, 9)
    for deeper in (True, False):
        rate_one = AtrousBranch(8, 4, rate=1, deeper=deeper).train()
        dilated = AtrousBranch(8, 4, rate=3, deeper=deeper).train()
        assert rate_one(x).min() < 0
        assert dilated(x).min() >= 0
        assert dilated(x).shape == rate_one(x).shape == (2, 4, 9, 9)
