"""LiteSeg models: output contract, gradients, parameter counts, ablation switches, encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from architectures import UnknownOverrideError, create_model, model_overrides
from architectures.backbones.darknet import DarkNet19
from architectures.backbones.mobilenetv2 import MobileNetV2
from architectures.backbones.shufflenet import ShuffleNet, channel_shuffle
from architectures.liteseg import AtrousBranch, LiteSeg

NAMES = ("liteseg_mobilenetv2", "liteseg_shufflenet", "liteseg_darknet19")
NUM_CLASSES = 19

# Parameters at 19 classes. The official models also hold the encoders' ImageNet
# classifiers, which are never run and which our models leave out:
#   MobileNetV2: official 4,382,707 = ours + Linear(1280, 1000) 1,281,000;
#   ShuffleNet:  official 3,508,451 = ours + fc Linear(1536, 1000) 1,537,000;
#   DarkNet19:   official 20,545,459 = ours (the official encoder has no classifier).
OFFICIAL_PARAMS = {
    "liteseg_mobilenetv2": 4_382_707,
    "liteseg_shufflenet": 3_508_451,
    "liteseg_darknet19": 20_545_459,
}
OFFICIAL_CLASSIFIER_PARAMS = {
    "liteseg_mobilenetv2": 1280 * 1000 + 1000,
    "liteseg_shufflenet": 1536 * 1000 + 1000,
    "liteseg_darknet19": 0,
}
PARAMS = {
    "liteseg_mobilenetv2": 3_101_707,
    "liteseg_shufflenet": 1_971_451,
    "liteseg_darknet19": 20_545_459,
}

# What each ablation removes, by hand from the layer shapes (96-ch branches):
# - aspp: the extra sep 3x3 96->96 (864 + 9216) and its BN (192) in each of the
#   three dilated branches: 3 * 10,272.
# - short_residual=False: the fuse sep 1x1 loses the C encoder channels at its input:
#   C (depthwise) + 96 * C (pointwise) = 97 * C, C = 1280 / 1536 / 1024.
# - long_residual=False: the first decoder sep 3x3 loses the L low-level channels at
#   its input (9 * L + 96 * L), and the projection sep 1x1 (C_low + C_low * L) + BN (2 * L)
#   goes too: L = 24 (raw, no projection) / 48 from 384 / 32 from 128.
ASPP_REMOVES = 3 * (96 * 9 + 96 * 96 + 2 * 96)
SHORT_RESIDUAL_REMOVES = {
    "liteseg_mobilenetv2": 97 * 1280,
    "liteseg_shufflenet": 97 * 1536,
    "liteseg_darknet19": 97 * 1024,
}
LONG_RESIDUAL_REMOVES = {
    "liteseg_mobilenetv2": 105 * 24,
    "liteseg_shufflenet": 105 * 48 + 384 + 384 * 48 + 2 * 48,
    "liteseg_darknet19": 105 * 32 + 128 + 128 * 32 + 2 * 32,
}


def _params(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module", params=NAMES)
def model(request) -> LiteSeg:
    torch.manual_seed(0)
    return create_model(request.param, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("size", [(97, 131), (360, 481), (64, 96)])
def test_eval_returns_logits_at_input_size(model, size):
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *size))
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (1, NUM_CLASSES, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("size", [(97, 131), (360, 481)])
def test_train_returns_tuple_with_main_logits(model, size):
    # Batch 2: the image-pooling BN sees one value per channel and image.
    model.train()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, *size))
    assert isinstance(outputs, tuple)
    assert len(outputs) == 1
    assert outputs[0].shape == (2, NUM_CLASSES, *size)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        *((name, {}) for name in NAMES),
        # The head code is shared, so the ablated graph is checked on the cheapest encoder.
        ("liteseg_mobilenetv2", {"context": "aspp", "short_residual": False}),
        ("liteseg_mobilenetv2", {"long_residual": False}),
    ],
)
def test_every_parameter_gets_a_gradient(name, overrides):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **overrides).train()
    (logits,) = model(torch.randn(2, 3, 32, 48))
    logits.square().mean().backward()
    without = [
        key
        for key, parameter in model.named_parameters()
        if parameter.requires_grad and (parameter.grad is None or not parameter.grad.any())
    ]
    assert without == []


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_official_without_classifier(name):
    model = create_model(name, num_classes=NUM_CLASSES)
    assert _params(model) == PARAMS[name]
    assert PARAMS[name] + OFFICIAL_CLASSIFIER_PARAMS[name] == OFFICIAL_PARAMS[name]
    assert not any(isinstance(module, nn.Linear) for module in model.modules())


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


@pytest.mark.parametrize("name", NAMES)
def test_registered_overrides(name):
    assert model_overrides(name) == {
        "context": "daspp",
        "short_residual": True,
        "long_residual": True,
    }
    with pytest.raises(UnknownOverrideError):
        create_model(name, num_classes=NUM_CLASSES, sppm=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"context": "dasp"}, "context must be one of"),
        ({"short_residual": "false"}, "short_residual must be True or False"),
        ({"long_residual": 0}, "long_residual must be True or False"),
        ({"num_classes": 0}, "num_classes must be a positive int"),
    ],
)
def test_invalid_switches_raise_value_error(overrides, message):
    arguments = {"num_classes": NUM_CLASSES, **overrides}
    with pytest.raises(ValueError, match=message):
        create_model("liteseg_mobilenetv2", **arguments)


@pytest.mark.parametrize(
    ("encoder", "features_shape", "low_level_shape"),
    [
        # ceil at every stride-2 conv / pool with padding 1.
        (MobileNetV2, (1280, 4, 5), (24, 25, 33)),
        (ShuffleNet, (1536, 4, 5), (384, 13, 17)),
        # The max pools floor: 97 -> 48 -> 24 -> 12 -> 6, 131 -> 65 -> 32 -> 16 -> 8.
        (DarkNet19, (1024, 6, 8), (128, 24, 32)),
    ],
)
def test_encoder_feature_contract(encoder, features_shape, low_level_shape):
    backbone = encoder().eval()
    with torch.no_grad():
        features, low_level = backbone(torch.randn(1, 3, 97, 131))
    assert features.shape[1:] == features_shape
    assert low_level.shape[1:] == low_level_shape
    assert (backbone.out_channels, backbone.low_level_channels) == (
        features_shape[0],
        low_level_shape[0],
    )


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
