"""Encoders behind one contract (:class:`Encoder`: features by stride), by name.

:data:`ENCODERS` is the one table the model families build their encoders from; each entry
also says where the encoder's ImageNet weights come from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from architectures.backbones.base import Encoder
from architectures.backbones.darknet import DarkNet19
from architectures.backbones.mobilenetv2 import TORCHVISION_IMAGENET, MobileNetV2
from architectures.backbones.shufflenet import ShuffleNet
from architectures.backbones.stdc import STDC_CONFIGS, STDC_IMAGENET, STDCNet
from architectures.meta import ImageNetWeights


@dataclass(frozen=True)
class EncoderSpec:
    """How to build an encoder and where its ImageNet weights come from.

    Args:
        build: returns a fresh encoder.
        imagenet: its ImageNet weights (read by the encoder's ``convert_imagenet``), or
            ``None`` when none are known here.
    """

    build: Callable[[], Encoder]
    imagenet: ImageNetWeights | None = None


ENCODERS: dict[str, EncoderSpec] = {
    "stdc1": EncoderSpec(partial(STDCNet, STDC_CONFIGS["stdc1"]), STDC_IMAGENET["stdc1"]),
    "stdc2": EncoderSpec(partial(STDCNet, STDC_CONFIGS["stdc2"]), STDC_IMAGENET["stdc2"]),
    "mobilenetv2": EncoderSpec(MobileNetV2, TORCHVISION_IMAGENET),
    # The official LiteSeg initialised these from ImageNet files that are not published.
    "shufflenet": EncoderSpec(ShuffleNet),
    "darknet19": EncoderSpec(DarkNet19),
}


def build_encoder(name: str) -> Encoder:
    """A fresh encoder ``name`` from :data:`ENCODERS`.

    Raises:
        ValueError: ``name`` is not in :data:`ENCODERS` (the message lists the valid names).
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name].build()


__all__ = ["ENCODERS", "Encoder", "EncoderSpec", "build_encoder"]
