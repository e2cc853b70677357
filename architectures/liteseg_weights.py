"""State-dict converters for LiteSeg: official release checkpoints and torchvision's MobileNetV2.

Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
Segmentation", DICTA 2019 (arXiv 1912.06683). Official code and checkpoints:
github.com/tahaemara/LiteSeg (pretrained_models/liteseg-*-cityscapes.pth).

Our models keep the official key layout, so the converters only drop what our
models do not build (the ImageNet classifiers, listed in :data:`OFFICIAL_UNUSED_KEYS`)
and strip ShuffleNet's ``DataParallel`` level. Keys they do not recognise are
passed through unchanged, so a strict ``load_state_dict`` reports them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

#: Keys of the official checkpoints that our models intentionally do not have: the
#: encoders' ImageNet classifiers, kept in the official state_dict but never run.
OFFICIAL_UNUSED_KEYS: dict[str, tuple[str, ...]] = {
    "liteseg_mobilenetv2": (
        "mobile_features.classifier.1.weight",
        "mobile_features.classifier.1.bias",
    ),
    "liteseg_shufflenet": (
        "shuffle_features.module.fc.weight",
        "shuffle_features.module.fc.bias",
    ),
    "liteseg_darknet19": (),
}

# The official LiteSeg-ShuffleNet wraps its encoder in torch.nn.DataParallel.
_OFFICIAL_PREFIX_RENAMES = {
    "liteseg_shufflenet": ("shuffle_features.module.", "shuffle_features."),
}

#: Keys of torchvision's ImageNet mobilenet_v2 that have no counterpart in our encoder.
TORCHVISION_MOBILENET_V2_UNUSED_KEYS: tuple[str, ...] = ("classifier.1.weight", "classifier.1.bias")

_OUR_MOBILENET_PREFIX = "mobile_features."
# torchvision nests each (conv, BN, ReLU6) triple in a Conv2dNormActivation; the official
# port (and ours) keeps one flat Sequential per block, where every third index is a ReLU6.
# features.1 is the only block with expand ratio 1 (no expansion triple).
_TV_EXPAND_1_BLOCK = "1"
_TV_BLOCK_INDICES_EXPAND_1 = {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
_TV_BLOCK_INDICES = {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
_TV_BLOCK_KEY = re.compile(r"^features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.([^.]+)$")
_TV_PLAIN_KEY = re.compile(r"^features\.(0|18)\.[01]\.[^.]+$")


def convert_official_liteseg(
    state_dict: Mapping[str, torch.Tensor], name: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map an official LiteSeg checkpoint onto the keys of our model ``name``.

    Args:
        state_dict: the official ``RT`` model's state_dict, e.g. loaded from
            ``liteseg-mobilenet-cityscapes.pth``.
        name: our model name: ``"liteseg_mobilenetv2"``, ``"liteseg_shufflenet"`` or
            ``"liteseg_darknet19"``.

    Returns:
        ``(converted, unused)``: the state_dict in our layout, and the keys of
        :data:`OFFICIAL_UNUSED_KEYS` that were present and left out. Keys neither
        known nor unused are kept as they are, so a strict load reports them.

    Raises:
        ValueError: ``name`` is not a LiteSeg model.
    """
    if name not in OFFICIAL_UNUSED_KEYS:
        raise ValueError(
            f"no official LiteSeg checkpoint layout for model {name!r}; "
            f"expected one of {sorted(OFFICIAL_UNUSED_KEYS)}"
        )
    unused_names = set(OFFICIAL_UNUSED_KEYS[name])
    old_prefix, new_prefix = _OFFICIAL_PREFIX_RENAMES.get(name, ("", ""))
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, tensor in state_dict.items():
        if key in unused_names:
            unused.append(key)
        elif old_prefix and key.startswith(old_prefix):
            converted[new_prefix + key[len(old_prefix) :]] = tensor
        else:
            converted[key] = tensor
    return converted, unused


def is_torchvision_mobilenet_v2(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` has torchvision's mobilenet_v2 layout.

    Only torchvision nests the convs of its blocks (``features.1.conv.0.0.weight``);
    the official port's key is ``features.1.conv.0.weight``.
    """
    return "features.1.conv.0.0.weight" in state_dict


def convert_torchvision_mobilenet_v2(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map torchvision's ImageNet ``mobilenet_v2`` state_dict onto our ``mobile_features.*`` keys.

    The shapes are identical; only the nesting differs. In the block with expand ratio 1
    (``features.1``) ``conv.0.0, conv.0.1, conv.1, conv.2`` become ``conv.0, 1, 3, 4``;
    in the others ``conv.0.0, 0.1, 1.0, 1.1, 2, 3`` become ``conv.0, 1, 3, 4, 6, 7``.
    ``features.0.{0,1}.*`` and ``features.18.{0,1}.*`` keep their names.

    Args:
        state_dict: e.g. ``torchvision.models.mobilenet_v2(weights=...).state_dict()``.

    Returns:
        ``(converted, unused)``: the encoder weights under ``mobile_features.``, and the
        keys of :data:`TORCHVISION_MOBILENET_V2_UNUSED_KEYS` that were present and left
        out. Unrecognised keys are passed through unchanged so a strict load reports them.
    """
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, tensor in state_dict.items():
        if key in TORCHVISION_MOBILENET_V2_UNUSED_KEYS:
            unused.append(key)
        else:
            converted[_torchvision_key(key)] = tensor
    return converted, unused


def _torchvision_key(key: str) -> str:
    if _TV_PLAIN_KEY.match(key):
        return _OUR_MOBILENET_PREFIX + key
    match = _TV_BLOCK_KEY.match(key)
    if match is None:
        return key
    block, inner, parameter = match.groups()
    indices = _TV_BLOCK_INDICES_EXPAND_1 if block == _TV_EXPAND_1_BLOCK else _TV_BLOCK_INDICES
    if inner not in indices:
        return key
    return f"{_OUR_MOBILENET_PREFIX}features.{block}.conv.{indices[inner]}.{parameter}"
