"""The encoder contract: features by stride, channels declared once per stride.

As segmentation_models.pytorch's encoders and torchvision's feature extraction do, every
backbone returns the output of each of its stages keyed by the stage's stride (2, 4, 8, ...),
and declares ``out_channels`` (stride -> channels) once; decoders pick the features they need
by stride. The stages are slices of the encoder's existing layer list, so the state-dict keys
(and with them the official checkpoint layouts) stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

ImageNetConversion = tuple[dict[str, torch.Tensor], list[str]]


class Encoder(nn.Module):
    """Base of every backbone.

    Subclasses set, in increasing stride order:

    - ``out_channels``: ``{stride: channels}`` of the features ``forward`` returns;
    - ``stage_ends``: ``{stride: n}``, the feature at that stride being the output of the
      first ``n`` modules of :meth:`layer_sequence`.

    ``forward(images)`` runs :meth:`layer_sequence` once and returns ``{stride: feature}``
    with exactly the keys of ``out_channels``; a feature at stride ``s`` has about ``H / s``
    rows (each encoder's docstring says whether sizes round up or down).
    """

    out_channels: Mapping[int, int]
    stage_ends: Mapping[int, int]

    def layer_sequence(self) -> Sequence[nn.Module]:
        """The modules applied in turn to the images."""
        raise NotImplementedError

    def channels_at(self, *strides: int) -> list[int]:
        """The channels of the features at ``strides``, for a decoder picking them.

        Raises:
            ValueError: a stride has no feature (the message lists the encoder's strides).
        """
        missing = [stride for stride in strides if stride not in self.out_channels]
        if missing:
            raise ValueError(
                f"{type(self).__name__} has no feature at stride(s) {missing}; "
                f"its strides: {list(self.out_channels)}"
            )
        return [self.out_channels[stride] for stride in strides]

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        stride_after = {end - 1: stride for stride, end in self.stage_ends.items()}
        features: dict[int, torch.Tensor] = {}
        x = images
        for index, layer in enumerate(self.layer_sequence()):
            x = layer(x)
            if index in stride_after:
                features[stride_after[index]] = x
        return features

    @staticmethod
    def convert_imagenet(state_dict: Mapping[str, torch.Tensor]) -> ImageNetConversion | None:
        """Map this encoder's ImageNet checkpoint onto the encoder's own keys.

        Returns:
            ``(converted, unused)`` with keys relative to the encoder, or ``None`` when
            ``state_dict`` is not in this encoder's ImageNet format (the base knows none).
        """
        return None
