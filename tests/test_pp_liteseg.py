"""PP-LiteSeg and its STDC encoder: shapes, gradients, parameter counts, ablation switches.

Equality with the official PaddleSeg code is proven in tests/parity (needs Paddle); these
tests pin the structure without it.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from architectures import UnknownOverrideError, create_model, list_models, model_overrides
from architectures.backbones.stdc import STDC_CONFIGS, CatBottleneck, STDCNet
from architectures.layers import ConvBNAct
from architectures.pp_liteseg import (
    PP_LITESEG_B,
    PP_LITESEG_T,
    SPPM,
    UAFM,
    ChannelUAFM,
    PPLiteSeg,
    SpatialUAFM,
)


@pytest.fixture(scope="module")
def tiny_t() -> PPLiteSeg:
    torch.manual_seed(0)
    return create_model("pp_liteseg_t", num_classes=5)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_variants_are_registered_with_their_config_as_defaults():
    assert {"pp_liteseg_t", "pp_liteseg_b"} <= set(list_models())
    for name, config in (("pp_liteseg_t", PP_LITESEG_T), ("pp_liteseg_b", PP_LITESEG_B)):
        assert model_overrides(name) == {
            "sppm": True,
            "fusion": "spatial",
            "decoder_channels": config.decoder_channels,
            "head_channels": config.head_channels,
            "context_channels": 128,
        }
    assert PP_LITESEG_T.backbone == "stdc1"
    assert PP_LITESEG_T.decoder_channels == (32, 64, 128)
    assert PP_LITESEG_T.head_channels == (32, 64, 64)
    assert PP_LITESEG_B.backbone == "stdc2"
    assert PP_LITESEG_B.decoder_channels == (64, 96, 128)
    assert PP_LITESEG_B.head_channels == (64, 64, 64)


@pytest.mark.parametrize(
    ("name", "total", "inference"),
    [("pp_liteseg_t", 8_141_600, 8_028_320), ("pp_liteseg_b", 12_366_464, 12_234_752)],
)
def test_trainable_parameters_match_the_official_counts(name, total, inference):
    model = create_model(name, num_classes=19)
    auxiliary = sum(_trainable(head) for head in model.heads[1:])
    assert _trainable(model) == total
    assert _trainable(model) - auxiliary == inference


@pytest.mark.parametrize("size", [(64, 96), (97, 131), (35, 61)])
def test_output_shapes_eval_and_train_at_any_size(tiny_t, size):
    images = torch.randn(2, 3, *size)
    tiny_t.eval()
    with torch.no_grad():
        logits = tiny_t(images)
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (2, 5, *size)
    tiny_t.train()
    with torch.no_grad():
        outputs = tiny_t(images)
    assert isinstance(outputs, tuple)
    assert [tuple(o.shape) for o in outputs] == [(2, 5, *size)] * 3


def test_eval_output_is_the_first_training_head(tiny_t):
    images = torch.randn(1, 3, 64, 64)
    tiny_t.eval()
    with torch.no_grad():
        logits = tiny_t(images)
        tiny_t.training = True  # only the head selection, BN keeps its running statistics
        main, *_ = tiny_t(images)
    tiny_t.eval()
    torch.testing.assert_close(logits, main)


def test_b_variant_runs_on_an_odd_size():
    model = create_model("pp_liteseg_b", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 77)).shape == (1, 3, 45, 77)


@pytest.mark.parametrize("overrides", [{}, {"fusion": "channel"}, {"fusion": "add", "sppm": False}])
def test_every_trainable_parameter_gets_a_gradient(overrides):
    torch.manual_seed(0)
    model = create_model("pp_liteseg_t", num_classes=3, **overrides).train()
    outputs = model(torch.randn(2, 3, 64, 96))
    sum(output.square().mean() for output in outputs).backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert without == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_stdc_features_have_the_documented_channels_and_strides():
    for name, blocks in (("stdc1", 2 + 6), ("stdc2", 2 + 12)):
        encoder = STDCNet(STDC_CONFIGS[name]).eval()
        assert len(encoder.features) == blocks
        with torch.no_grad():
            features = encoder(torch.randn(1, 3, 64, 96))
        assert [f.shape[1] for f in features] == [32, 64, 256, 512, 1024]
        assert [tuple(f.shape[2:]) for f in features] == [
            (32, 48),
            (16, 24),
            (8, 12),
            (4, 6),
            (2, 3),
        ]


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


def test_lists_are_accepted_as_channel_overrides():
    model = create_model("pp_liteseg_t", num_classes=3, decoder_channels=[16, 32, 64])
    assert model.config.decoder_channels == (16, 32, 64)


def test_unknown_override_is_rejected():
    with pytest.raises(UnknownOverrideError, match="fusion"):
        create_model("pp_liteseg_t", num_classes=3, fuson="add")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fusion": "sum"}, "unknown fusion 'sum'; valid: add, channel, spatial"),
        ({"fusion": ["add"]}, "unknown fusion ['add']; valid: add, channel, spatial"),
        ({"decoder_channels": (32, 64)}, "decoder_channels must be a tuple of 3 ints"),
        ({"head_channels": (32, 64, 64, 64)}, "head_channels must be a tuple of 3 ints"),
        ({"decoder_channels": (32, 0, 128)}, "decoder_channels must hold positive ints"),
        ({"decoder_channels": 96}, "decoder_channels must be a tuple of 3 ints"),
        ({"context_channels": -1}, "context_channels must hold positive ints"),
        ({"sppm": "no"}, "sppm must be True or False"),
    ],
)
def test_bad_values_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        create_model("pp_liteseg_t", num_classes=3, **overrides)


def test_bad_num_classes_is_rejected():
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        create_model("pp_liteseg_t", num_classes=0)
