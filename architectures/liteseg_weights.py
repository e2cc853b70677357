"""Official LiteSeg release checkpoints onto our keys.

Paper: Emara et al., "LiteSeg: A Novel Lightweight ConvNet for Semantic
Segmentation", DICTA 2019 (arXiv 1912.06683). Official code and checkpoints:
github.com/tahaemara/LiteSeg (pretrained_models/liteseg-*-cityscapes.pth).

Our models keep the official key layout, so a converter only drops what our models do not
build (the encoders' ImageNet classifiers) and strips ShuffleNet's ``DataParallel`` level.
Keys it does not recognise are passed through unchanged, so a strict load reports them.
Each LiteSeg model's metadata holds its :class:`OfficialLayout` as its converter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OfficialLayout:
    """How an official LiteSeg state dict differs from our model's; call it to convert one.

    Args:
        unused_keys: official keys our model does not have: the encoder's ImageNet
            classifier, kept in the official state_dict but never run.
        renamed_prefix: ``(official, ours)`` for an encoder that the official model wraps
            (``torch.nn.DataParallel`` adds ``module.``).
    """

    unused_keys: tuple[str, ...] = ()
    renamed_prefix: tuple[str, str] | None = None

    def __call__(
        self, state_dict: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Map an official state dict (e.g. of ``liteseg-mobilenet-cityscapes.pth``) onto ours.

        Returns:
            ``(converted, unused)``: the state_dict in our layout, and the keys of
            ``unused_keys`` that were present and left out. Keys neither known nor unused
            are kept as they are, so a strict load reports them.
        """
        old, new = self.renamed_prefix or ("", "")
        converted: dict[str, torch.Tensor] = {}
        unused: list[str] = []
        for key, tensor in state_dict.items():
            if key in self.unused_keys:
                unused.append(key)
            elif old and key.startswith(old):
                converted[new + key.removeprefix(old)] = tensor
            else:
                converted[key] = tensor
        return converted, unused
