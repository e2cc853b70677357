"""PP-LiteSeg and its STDC encoder: what is specific to the family (blocks, fusions, switches).

The call contract, gradients, parameter counts and GMACs are checked for every model in
tests/test_model_contract.py; equality with the official PaddleSeg code is proven in
tests/parity (needs Paddle). These tests pin the structure without it.
"""

from __future__ import annotations

import typing

import torch
from torch import nn

from architectures import create_model
from architectures.backbones.mobilenetv2 import MobileNetV2
from architectures.backbones.stdc import STDC_CONFIGS, CatBottleneck, STDCNet
from architectures.layers import ConvBNAct
from architectures.pp_liteseg import FUSIONS, SPPM, UAFM, ChannelUAFM, Fusion, SpatialUAFM


def test_stdc_variants_have_the_official_depth_and_widths():
    for name, blocks in (("stdc1", 2 + 6), ("stdc2", 2 + 12)):
        encoder = STDCNet(STDC_CONFIGS[name])
        assert len(encoder.features) == blocks
        assert encoder.out_channels == {2: 32, 4: 64, 8: 256, 16: 512, 32: 1024}


def test_cat_bottleneck_follows_the_official_block():
    block = CatBottleneck(64, 256, stride=2)
    widths = [(c.conv.in_channels, c.conv.out_channels) for c in block.conv_list]
    assert widths == [(64, 128), (128, 64), (64, 32), (32, 32)]
    assert [c.conv.kernel_size for c in block.conv_list] == [(1, 1)] + [(3, 3)] * 3
    assert block.avd_layer.conv.groups == 128
    assert block.avd_layer.conv.stride == (2, 2)
    assert not hasattr(block.avd_layer, "act")
    assert block.skip.count_include_pad is False
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))
    assert block(torch.randn(1, 64, 9, 11)).shape == (1, 256, 5, 6)
    assert not hasattr(CatBottleneck(256, 256, stride=1), "avd_layer")


def test_average_pool_excludes_padding():
    block = CatBottleneck(4, 8, stride=2).eval()
    pooled = block.skip(torch.ones(1, 1, 5, 5))
    torch.testing.assert_close(pooled, torch.ones(1, 1, 3, 3))


def test_sppm_keeps_conv_bias_and_sums_the_bins():
    model = create_model("pp_liteseg_t", num_classes=3)
    assert isinstance(model.context, SPPM)
    pools = [stage[0].output_size for stage in model.context.stages]
    assert pools == [1, 2, 4]
    assert all(stage[1].conv.bias is not None for stage in model.context.stages)
    assert model.context.conv_out.conv.bias is not None
    assert model.context.conv_out.conv.kernel_size == (3, 3)


def test_spatial_attention_weighs_the_low_level_feature():
    """alpha multiplies x (low level), as in the official code, not the upsampled y."""
    fusion = SpatialUAFM(8, 8, 8).eval()
    x, y = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        fusion.attention[1].bn.bias.fill_(50.0)  # alpha -> 1
        torch.testing.assert_close(fusion.fuse(x, y), x)
        fusion.attention[1].bn.bias.fill_(-50.0)  # alpha -> 0
        torch.testing.assert_close(fusion.fuse(x, y), y)


def test_channel_attention_structure():
    fusion = ChannelUAFM(256, 64, 32)
    first, second = fusion.attention
    assert (first.conv.in_channels, first.conv.out_channels) == (4 * 64, 32)
    assert isinstance(first.act, nn.LeakyReLU) and first.act.negative_slope == 0.01
    assert (second.conv.in_channels, second.conv.out_channels) == (32, 64)
    assert not hasattr(second, "act")


def test_fusion_switch_selects_the_uafm_type():
    assert set(typing.get_args(Fusion)) == set(FUSIONS)
    for fusion, kind in (("spatial", SpatialUAFM), ("channel", ChannelUAFM), ("add", UAFM)):
        model = create_model("pp_liteseg_t", num_classes=3, fusion=fusion)
        assert all(type(module) is kind for module in model.fusions)
    assert not hasattr(
        create_model("pp_liteseg_t", num_classes=3, fusion="add").fusions[0], "attention"
    )


def test_ablation_baseline_is_expressible():
    model = create_model(
        "pp_liteseg_b",
        num_classes=19,
        decoder_channels=(96, 96, 96),
        fusion="add",
        sppm=False,
        context_channels=96,
    )
    assert isinstance(model.context, ConvBNAct)
    assert model.context.conv.kernel_size == (1, 1)
    assert (model.context.conv.in_channels, model.context.conv.out_channels) == (1024, 96)
    assert [f.conv_out.conv.out_channels for f in model.fusions] == [96, 96, 96]
    assert [f.conv_x.conv.out_channels for f in model.fusions] == [96, 96, 96]
    assert [h.conv.conv.in_channels for h in model.heads] == [96, 96, 96]
    assert all(type(f) is UAFM for f in model.fusions)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


def test_sppm_off_keeps_widths():
    with_sppm = create_model("pp_liteseg_t", num_classes=3)
    without = create_model("pp_liteseg_t", num_classes=3, sppm=False)
    assert isinstance(without.context, ConvBNAct)
    assert without.context.conv.out_channels == 128
    for ours, theirs in zip(with_sppm.fusions, without.fusions, strict=True):
        assert ours.conv_x.conv.out_channels == theirs.conv_x.conv.out_channels


def test_decoder_on_mobilenetv2_fuses_its_stride_8_16_32_features():
    model = create_model("pp_liteseg_mobilenetv2", num_classes=3)
    assert isinstance(model.backbone, MobileNetV2)
    assert [fusion.conv_x.conv.in_channels for fusion in model.fusions] == [32, 96, 1280]
    assert all(stage[1].conv.in_channels == 1280 for stage in model.context.stages)
    assert [fusion.conv_out.conv.out_channels for fusion in model.fusions] == [32, 64, 128]
