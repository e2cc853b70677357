"""PaddleSeg's PP-LiteSeg checkpoints (``.pdparams``) onto our keys.

Paper: Peng et al., "PP-LiteSeg: A Superior Real-Time Semantic Segmentation Model",
arXiv 2204.02681. Official code: PaddlePaddle/PaddleSeg (``paddleseg/models/pp_liteseg.py``).
Encoder keys (``backbone.*``) are mapped by the STDC encoder's own renames; the decoder's
containers and Paddle's leaf names are renamed here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from architectures.backbones.stdc import paddle_stdc_key
from architectures.weights import PADDLE_LEAF_RENAMES, WeightLoadError, rename_key

_ENCODER_PREFIX = "backbone."
_SCALE_KEY = re.compile(r"^ppseg_head\.arm_list\.\d+\._scale$")
# Official decoder key -> ours, applied in order: containers, then Paddle's leaf names.
_DECODER_RENAMES = (
    (r"^ppseg_head\.cm\.", "context."),
    (r"^ppseg_head\.arm_list\.", "fusions."),
    (r"^seg_heads\.", "heads."),
    (r"\.conv_xy_atten\.", ".attention."),
    *PADDLE_LEAF_RENAMES,
)


def convert_official_pp_liteseg(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a PaddleSeg PP-LiteSeg state dict (``backbone.*``, ``ppseg_head.*``,
    ``seg_heads.*``) to the keys of :class:`architectures.pp_liteseg.PPLiteSeg`.

    UAFM_SpAtten's ``_scale`` (a frozen 1 standing in for the 1 of ``1 - alpha``, added to
    PaddleSeg after the release) has no counterpart in our model: it is accepted only when
    it is exactly 1 and then returned as unused.

    Returns:
        ``(converted, unused)``: the renamed tensors and the official keys dropped on purpose.

    Raises:
        WeightLoadError: a ``_scale`` entry differs from 1.
    """
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, value in state_dict.items():
        if _SCALE_KEY.match(key):
            if value.numel() != 1 or float(value.reshape(-1)[0]) != 1.0:
                raise WeightLoadError(
                    f"{key} is {value.tolist()}; our UAFM computes y*(1-alpha), which equals "
                    "the official y*(_scale-alpha) only for _scale == 1"
                )
            unused.append(key)
        elif key.startswith(_ENCODER_PREFIX):
            converted[_ENCODER_PREFIX + paddle_stdc_key(key.removeprefix(_ENCODER_PREFIX))] = value
        else:
            converted[rename_key(key, _DECODER_RENAMES)] = value
    return converted, unused
