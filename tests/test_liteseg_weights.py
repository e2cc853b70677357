"""LiteSeg's official checkpoint layouts and torchvision's MobileNetV2, by model and encoder."""

from __future__ import annotations

import pytest
import torch
import torchvision

from architectures import create_model, model_meta
from architectures.backbones.mobilenetv2 import MobileNetV2
from architectures.weights import load_official


def convert_official(name: str, state_dict: dict) -> tuple[dict, list]:
    """The official-checkpoint converter that the model's metadata names."""
    return model_meta(name).converter(state_dict)


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
    converted, unused = convert_official("liteseg_mobilenetv2", _official_state_dict(ours, keys))
    assert unused == ["mobile_features.classifier.1.weight", "mobile_features.classifier.1.bias"]
    assert sorted(converted) == sorted(ours)
    model.load_state_dict(converted, strict=True)


def test_official_checkpoint_file_loads_strictly(tmp_path):
    torch.manual_seed(2)
    source = create_model("liteseg_mobilenetv2", num_classes=19)
    official = _official_state_dict(source.state_dict(), official_mobilenet_keys())
    official["mobile_features.classifier.1.weight"] = torch.zeros(1000, 1280)
    path = tmp_path / "liteseg-mobilenet-cityscapes.pth"
    torch.save({"state_dict": official}, path)
    loaded = load_official("liteseg_mobilenetv2", path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    del official["aspp1.bn.running_mean"]
    torch.save(official, path)
    with pytest.raises(ValueError, match=r"1 missing: aspp1\.bn\.running_mean"):
        load_official("liteseg_mobilenetv2", path)


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
    converted, unused = convert_official("liteseg_shufflenet", official)
    assert unused == ["shuffle_features.module.fc.weight", "shuffle_features.module.fc.bias"]
    model.load_state_dict(converted, strict=True)


def test_official_darknet_keys_are_ours():
    ours = create_model("liteseg_darknet19", num_classes=19).state_dict()
    # The official LiteSeg-DarkNet19 state_dict has 193 entries and no classifier.
    assert len(ours) == 193
    assert ours["resnet_features.layers.1_convbatch.layers.0.weight"].shape == (32, 3, 3, 3)
    assert ours["resnet_features.layers.23_convbatch.layers.1.running_var"].shape == (1024,)
    assert ours["conv2.pointwise.weight"].shape == (32, 128, 1, 1)
    converted, unused = convert_official("liteseg_darknet19", ours)
    assert unused == []
    assert list(converted) == list(ours)


def test_unknown_keys_are_surfaced_not_dropped():
    model = create_model("liteseg_mobilenetv2", num_classes=19)
    official = dict(model.state_dict())
    official["decoder.extra.weight"] = torch.zeros(1)
    converted, unused = convert_official("liteseg_mobilenetv2", official)
    assert "decoder.extra.weight" in converted
    assert unused == []
    with pytest.raises(RuntimeError, match=r"decoder\.extra\.weight"):
        model.load_state_dict(converted, strict=True)


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
    encoder = MobileNetV2().eval()
    assert MobileNetV2.convert_imagenet(encoder.state_dict()) is None  # the official port's layout

    converted, unused = MobileNetV2.convert_imagenet(reference.state_dict())
    assert unused == ["classifier.1.weight", "classifier.1.bias"]
    assert converted["features.1.conv.3.weight"].shape == (16, 32, 1, 1)
    assert converted["features.2.conv.7.running_var"].shape == (24,)
    encoder.load_state_dict(converted, strict=True)

    images = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        features = encoder(images)
        for stride, end in encoder.stage_ends.items():
            torch.testing.assert_close(features[stride], reference.features[:end](images))
    assert features[32].shape == (1, 1280, 4, 5)


@pytest.mark.parametrize(
    ("name", "encoder"),
    [("liteseg_mobilenetv2", "mobile_features"), ("pp_liteseg_mobilenetv2", "backbone")],
)
def test_torchvision_file_initialises_the_encoder_of_any_model_on_it(tmp_path, name, encoder):
    """ImageNet weights are read by the encoder, whatever decoder the model puts on it."""
    reference = _random_torchvision_mobilenet_v2()
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(reference.state_dict(), path)
    torch.manual_seed(5)
    fresh = create_model(name, 19).state_dict()
    torch.manual_seed(5)
    model = load_official(name, path).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(getattr(model, encoder)(images)[32], reference.features(images))
    for key, value in model.state_dict().items():
        if not key.startswith(encoder + "."):
            torch.testing.assert_close(value, fresh[key], rtol=0, atol=0, msg=key)


def test_torchvision_unknown_keys_pass_through():
    state_dict = dict(_random_torchvision_mobilenet_v2().state_dict())
    state_dict["features.1.conv.5.weight"] = torch.zeros(1)
    converted, _ = MobileNetV2.convert_imagenet(state_dict)
    assert "features.1.conv.5.weight" in converted
