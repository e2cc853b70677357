"""Official checkpoint loading without Paddle: safe unpickling, key mapping, strictness.

The files here are fabricated from our own models, renamed to the official PaddleSeg
layout by an inverse mapping written independently of architectures.weights; the real
PaddleSeg files are exercised in tests/parity.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from architectures import create_model
from architectures.backbones.stdc import STDC_IMAGENET_UNUSED_PREFIXES
from architectures.weights import (
    WeightLoadError,
    key_mismatch,
    load_official,
    read_pdparams,
)

from miniatures import paddle_state, stdc_imagenet_state, write_pdparams


def _randomized(name: str, num_classes: int = 19, **overrides) -> torch.nn.Module:
    torch.manual_seed(1)
    model = create_model(name, num_classes, **overrides)
    with torch.no_grad():
        for key, buffer in model.state_dict().items():
            if "running" in key:
                buffer.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def source_t() -> torch.nn.Module:
    return _randomized("pp_liteseg_t")


def _assert_same_state(loaded: torch.nn.Module, source: torch.nn.Module, prefix: str = "") -> None:
    expected = source.state_dict()
    for key, value in loaded.state_dict().items():
        if key.startswith(prefix) and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("protocol", [2, 4])
def test_full_pdparams_round_trip(tmp_path, source_t, protocol):
    path = write_pdparams(tmp_path / "t.pdparams", paddle_state(source_t), protocol)
    loaded = load_official("pp_liteseg_t", path)
    _assert_same_state(loaded, source_t)


def test_channel_fusion_and_b_variant_round_trip(tmp_path):
    source = _randomized("pp_liteseg_b", 11, fusion="channel")
    path = write_pdparams(tmp_path / "b.pdparams", paddle_state(source, scale=None))
    _assert_same_state(
        load_official("pp_liteseg_b", path, num_classes=11, fusion="channel"), source
    )


def test_read_pdparams_drops_the_structure_key(tmp_path, source_t):
    state = paddle_state(source_t)
    loaded = read_pdparams(write_pdparams(tmp_path / "t.pdparams", state))
    assert set(loaded) == set(state)
    assert all(isinstance(value, torch.Tensor) for value in loaded.values())


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"backbone.x": _Exploit(marker)}))
    assert b"system" in path.read_bytes()
    with pytest.raises(WeightLoadError, match=r"refusing to unpickle global (posix|nt|os)\.system"):
        read_pdparams(path)
    with pytest.raises(WeightLoadError, match="system"):
        load_official("pp_liteseg_t", path)
    assert not marker.exists()


def test_unpickler_refuses_other_globals(tmp_path):
    path = tmp_path / "eval.pdparams"
    path.write_bytes(pickle.dumps({"a": np.float32(1.0)}))  # numpy scalars are not arrays
    with pytest.raises(WeightLoadError, match=r"numpy\..*scalar"):
        read_pdparams(path)


def test_missing_unexpected_and_misshaped_keys_are_all_reported(tmp_path, source_t):
    state = paddle_state(source_t)
    del state["backbone.features.3.conv_list.2.bn._variance"]
    del state["ppseg_head.cm.conv_out._conv.bias"]
    state["ppseg_head.extra.weight"] = np.zeros(3, np.float32)
    state["seg_heads.0.conv_out.weight"] = np.zeros((7, 32, 1, 1), np.float32)
    path = write_pdparams(tmp_path / "bad.pdparams", state)
    with pytest.raises(WeightLoadError) as error:
        load_official("pp_liteseg_t", path)
    message = str(error.value)
    assert str(path) in message
    assert (
        "2 missing: backbone.features.3.conv_list.2.bn.running_var, context.conv_out.conv.bias"
        in (message)
    )
    assert "1 unexpected: ppseg_head.extra.weight" in message
    assert (
        "1 mis-shaped: heads.0.conv_out.weight (checkpoint (7, 32, 1, 1), model (19, 32, 1, 1))"
        in (message)
    )


def test_wrong_num_classes_is_reported_as_misshaped(tmp_path, source_t):
    path = write_pdparams(tmp_path / "t.pdparams", paddle_state(source_t))
    with pytest.raises(WeightLoadError, match=r"3 mis-shaped: heads\.0\.conv_out\.weight"):
        load_official("pp_liteseg_t", path, num_classes=11)


def test_wrong_variant_is_rejected(tmp_path, source_t):
    path = write_pdparams(tmp_path / "t.pdparams", paddle_state(source_t))
    with pytest.raises(WeightLoadError, match="missing"):
        load_official("pp_liteseg_b", path)
    with pytest.raises(WeightLoadError, match="unexpected"):
        load_official("pp_liteseg_t", path, fusion="add")


def test_a_long_key_mismatch_names_five_keys_of_each_kind_and_counts_the_rest(tmp_path, source_t):
    path = write_pdparams(tmp_path / "t.pdparams", paddle_state(source_t))
    with pytest.raises(WeightLoadError) as error:
        load_official("pp_liteseg_b", path)
    message = str(error.value)
    assert len(message) < 1500
    missing = re.search(r"(\d+) missing: ((?:[\w.]+, ){4}[\w.]+) and (\d+) more;", message)
    assert missing is not None, message
    assert int(missing[1]) == 5 + int(missing[3]) > 5
    assert missing[2].split(", ") == sorted(missing[2].split(", "))
    assert re.search(r"\d+ mis-shaped: .* and \d+ more$", message), message


def test_key_mismatch_summary():
    expected = {f"layer{i:02}.weight": torch.zeros(2) for i in range(7)}
    assert key_mismatch(expected, expected) == ""
    assert key_mismatch(expected, {}) == (
        "7 missing: layer00.weight, layer01.weight, layer02.weight, layer03.weight, "
        "layer04.weight and 2 more"
    )
    other = {"b.weight": torch.zeros(1), "a.weight": torch.zeros(1)}
    assert key_mismatch(expected, other, optional=lambda key: key != "layer03.weight") == (
        "no key in common (a checkpoint of another model?); "
        "1 missing: layer03.weight; 2 unexpected: a.weight, b.weight"
    )
    given = {**expected, "layer05.weight": torch.zeros(3)}
    assert key_mismatch(expected, given) == (
        "1 mis-shaped: layer05.weight (checkpoint (3,), model (2,))"
    )


def test_scale_other_than_one_is_rejected(tmp_path, source_t):
    path = write_pdparams(tmp_path / "t.pdparams", paddle_state(source_t, scale=0.5))
    with pytest.raises(WeightLoadError, match=r"_scale.*\[0\.5\].*only for _scale == 1"):
        load_official("pp_liteseg_t", path)


def test_imagenet_backbone_file_fills_the_encoder_only(tmp_path):
    source = _randomized("pp_liteseg_b")
    state = stdc_imagenet_state(source)
    classifier = {
        "conv_last.conv.weight": np.zeros((1024, 1024, 1, 1), np.float32),
        "conv_last.bn._mean": np.zeros(1024, np.float32),
        "fc.weight": np.zeros((1024, 1024), np.float32),
        "bn.weight": np.zeros(1024, np.float32),
        "linear.weight": np.zeros((1024, 1000), np.float32),
    }
    assert all(key.startswith(STDC_IMAGENET_UNUSED_PREFIXES) for key in classifier)
    path = write_pdparams(tmp_path / "PP_STDCNet2.pdparams", {**state, **classifier})
    torch.manual_seed(5)
    fresh = create_model("pp_liteseg_b", 19).state_dict()
    torch.manual_seed(5)
    loaded = load_official("pp_liteseg_b", path)
    _assert_same_state(loaded, source, prefix="backbone.")
    for key, value in loaded.state_dict().items():
        if not key.startswith("backbone."):
            torch.testing.assert_close(value, fresh[key], rtol=0, atol=0, msg=key)


def test_imagenet_backbone_file_is_strict_over_the_encoder(tmp_path):
    state = stdc_imagenet_state(_randomized("pp_liteseg_t"))
    del state["features.5.conv_list.1.conv.weight"]
    state["x2.0.0.conv.weight"] = np.zeros((32, 3, 3, 3), np.float32)
    path = write_pdparams(tmp_path / "PP_STDCNet1.pdparams", state)
    with pytest.raises(WeightLoadError) as error:
        load_official("pp_liteseg_t", path)
    assert "1 missing: backbone.features.5.conv_list.1.conv.weight" in str(error.value)
    assert "1 unexpected: backbone.x2.0.0.conv.weight" in str(error.value)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.pdparams"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_official("pp_liteseg_t", path)


@pytest.mark.parametrize("suffix", [".pdparams", ".pth"])
def test_file_that_is_no_checkpoint_names_the_path(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightLoadError, match=re.escape(str(path))):
        load_official("pp_liteseg_t", path)


def test_pth_is_read_with_weights_only(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"weight": _Exploit(marker)}, path)
    with pytest.raises(WeightLoadError, match=re.escape(str(path))):
        load_official("pp_liteseg_t", path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["pp_liteseg_t", "liteseg_stdc1"])
def test_stdc_imagenet_file_loads_into_any_model_on_stdc1(tmp_path, name):
    """ImageNet files are read by the encoder, whatever decoder the model puts on it."""
    source = _randomized("pp_liteseg_t")
    path = write_pdparams(tmp_path / "PP_STDCNet1.pdparams", stdc_imagenet_state(source))
    loaded = load_official(name, path)
    for key, value in loaded.state_dict().items():
        if key.startswith("backbone.") and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, source.state_dict()[key], rtol=0, atol=0, msg=key)


def test_model_without_official_checkpoints_says_what_it_takes(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(
        WeightLoadError,
        match=r"no official checkpoint format is known for model 'pp_liteseg_mobilenetv2'; "
        r"it takes ImageNet weights: torchvision MobileNet_V2",
    ):
        load_official("pp_liteseg_mobilenetv2", path)
