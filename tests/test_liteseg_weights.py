"""LiteSeg converters: official checkpoint layout and torchvision's MobileNetV2."""

from __future__ import annotations

import pytest
import torch
import torchvision

from architectures import create_model
from architectures.liteseg_weights import (
    OFFICIAL_UNUSED_KEYS,
    convert_official_liteseg,
    convert_torchvision_mobilenet_v2,
    is_torchvision_mobilenet_v2,
)

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_bn(conv: str, bn: str) -> list[str]:
    return [f"{conv}.weight", *(f"{bn}.{suffix}" for suffix in _BN)]


def _sep(prefix: str) -> list[str]:
    return [f"{prefix}.conv1.weight", f"{prefix}.pointwise.weight"]


def _bn(prefix: str) -> list[str]:
    return [f"{prefix}.{suffix}" for suffix in _BN]


def official_mobilenet_keys() -> list[str]:
    """The official LiteSeg-MobileNet state_dict keys, written from the official layout.

    Independent of our modules: MobileNetV2 ``features.0`` and ``features.18`` are
    (conv, BN, ReLU6) Sequentials; block 1 (t = 1) has convs/BNs at conv.0/1, 3/4;
    blocks 2-17 at conv.0/1, 3/4, 6/7; the classifier is ``classifier.1`` (Linear).
    """
    encoder = "mobile_features.features"
    keys = _conv_bn(f"{encoder}.0.0", f"{encoder}.0.1")
    keys += _conv_bn(f"{encoder}.1.conv.0", f"{encoder}.1.conv.1")
    keys += _conv_bn(f"{encoder}.1.conv.3", f"{encoder}.1.conv.4")
    for block in range(2, 18):
        for conv, bn in ((0, 1), (3, 4), (6, 7)):
            keys += _conv_bn(f"{encoder}.{block}.conv.{conv}", f"{encoder}.{block}.conv.{bn}")
    keys += _conv_bn(f"{encoder}.18.0", f"{encoder}.18.1")
    keys += ["mobile_features.classifier.1.weight", "mobile_features.classifier.1.bias"]
    for branch in range(1, 5):
        if branch > 1:
            keys += _sep(f"aspp{branch}.conv1") + _bn(f"aspp{branch}.bn1")
        keys += _sep(f"aspp{branch}.atrous_convolution") + _bn(f"aspp{branch}.bn")
    keys += _conv_bn("global_avg_pool.1", "global_avg_pool.2")
    keys += _sep("conv1") + _bn("bn1")
    keys += _sep("last_conv.0") + _bn("last_conv.1")
    keys += _sep("last_conv.3") + _bn("last_conv.4")
    keys += ["last_conv.6.weight", "last_conv.6.bias"]
    return keys


def _official_state_dict(ours: dict[str, torch.Tensor], keys: list[str]) -> dict:
    return {key: ours.get(key, torch.zeros(1)) for key in keys}


def test_official_mobilenet_keys_convert_onto_exactly_ours():
    keys = official_mobilenet_keys()
    assert len(keys) == len(set(keys)) == 392
    model = create_model("liteseg_mobilenetv2", num_classes=19)
    ours = model.state_dict()
    converted, unused = convert_official_liteseg(
        _official_state_dict(ours, keys), "liteseg_mobilenetv2"
    )
    assert unused == list(OFFICIAL_UNUSED_KEYS["liteseg_mobilenetv2"])
    assert sorted(converted) == sorted(ours)
    model.load_state_dict(converted, strict=True)


def test_official_shufflenet_dataparallel_prefix_is_stripped():
    model = create_model("liteseg_shufflenet", num_classes=19)
    ours = model.state_dict()
    official = {
        key.replace("shuffle_features.", "shuffle_features.module.", 1): value
        for key, value in ours.items()
    }
    official["shuffle_features.module.fc.weight"] = torch.zeros(1000, 1536)
    official["shuffle_features.module.fc.bias"] = torch.zeros(1000)
    # The official LiteSeg-ShuffleNet state_dict has 425 entries.
    assert len(official) == 425
    assert (
        "shuffle_features.module.stage2.ShuffleUnit_Stage2_0.g_conv_1x1_compress.conv1x1.bias"
        in official
    )
    converted, unused = convert_official_liteseg(official, "liteseg_shufflenet")
    assert unused == ["shuffle_features.module.fc.weight", "shuffle_features.module.fc.bias"]
    model.load_state_dict(converted, strict=True)


def test_official_darknet_keys_are_ours():
    ours = create_model("liteseg_darknet19", num_classes=19).state_dict()
    # The official LiteSeg-DarkNet19 state_dict has 193 entries and no classifier.
    assert len(ours) == 193
    assert ours["resnet_features.layers.1_convbatch.layers.0.weight"].shape == (32, 3, 3, 3)
    assert ours["resnet_features.layers.23_convbatch.layers.1.running_var"].shape == (1024,)
    assert ours["conv2.pointwise.weight"].shape == (32, 128, 1, 1)
    converted, unused = convert_official_liteseg(ours, "liteseg_darknet19")
    assert unused == []
    assert list(converted) == list(ours)


def test_unknown_keys_are_surfaced_not_dropped():
    model = create_model("liteseg_mobilenetv2", num_classes=19)
    official = dict(model.state_dict())
    official["decoder.extra.weight"] = torch.zeros(1)
    converted, unused = convert_official_liteseg(official, "liteseg_mobilenetv2")
    assert "decoder.extra.weight" in converted
    assert unused == []
    with pytest.raises(RuntimeError, match=r"decoder\.extra\.weight"):
        model.load_state_dict(converted, strict=True)


def test_unknown_model_name_raises():
    with pytest.raises(ValueError, match="liteseg_mobilenetv2"):
        convert_official_liteseg({}, "pp_liteseg_t")


def _random_torchvision_mobilenet_v2() -> torch.nn.Module:
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2(weights=None)
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return reference.eval()


def test_torchvision_mobilenet_v2_converts_onto_our_encoder():
    reference = _random_torchvision_mobilenet_v2()
    model = create_model("liteseg_mobilenetv2", num_classes=19).eval()
    ours = model.state_dict()
    assert is_torchvision_mobilenet_v2(reference.state_dict())
    assert not is_torchvision_mobilenet_v2(ours)

    converted, unused = convert_torchvision_mobilenet_v2(reference.state_dict())
    assert unused == ["classifier.1.weight", "classifier.1.bias"]
    encoder_keys = {key for key in ours if key.startswith("mobile_features.")}
    assert set(converted) == encoder_keys
    assert all(converted[key].shape == ours[key].shape for key in converted)
    assert converted["mobile_features.features.1.conv.3.weight"].shape == (16, 32, 1, 1)
    assert converted["mobile_features.features.2.conv.7.running_var"].shape == (24,)

    incompatible = model.load_state_dict(converted, strict=False)
    assert incompatible.unexpected_keys == []
    assert not any(key.startswith("mobile_features.") for key in incompatible.missing_keys)

    images = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        expected = reference.features(images)
        features, low_level = model.mobile_features(images)
        expected_low_level = reference.features[:4](images)
    assert features.shape == expected.shape == (1, 1280, 4, 5)
    torch.testing.assert_close(features, expected)
    torch.testing.assert_close(low_level, expected_low_level)


def test_torchvision_unknown_keys_pass_through():
    state_dict = dict(_random_torchvision_mobilenet_v2().state_dict())
    state_dict["features.1.conv.5.weight"] = torch.zeros(1)
    converted, _ = convert_torchvision_mobilenet_v2(state_dict)
    assert "features.1.conv.5.weight" in converted
