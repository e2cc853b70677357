"""Segmentation losses: cross-entropy and PaddleSeg's OHEM cross-entropy, over all model heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.config import LossSpec


class OhemCrossEntropy(nn.Module):
    """Online hard example mining cross-entropy with PaddleSeg's semantics.

    Let ``p`` be the softmax probability of the true class of each valid pixel.
    When there are more than ``min_kept`` valid pixels, only pixels with
    ``p < threshold`` contribute, where ``threshold = max(thresh, p_(min_kept))``
    and ``p_(k)`` is the k-th smallest ``p``. The summed loss is divided by the
    number of kept pixels (plus PaddleSeg's ``1e-5 * numel`` guard).

    Args:
        thresh: probability below which a pixel counts as hard.
        min_kept: at least this many pixels are kept; None = ``numel(labels) // 16``.
        ignore_index: label value excluded from the loss.
    """

    eps = 1e-5

    def __init__(
        self, thresh: float = 0.7, min_kept: int | None = None, ignore_index: int = 255
    ) -> None:
        super().__init__()
        self.thresh = thresh
        self.min_kept = min_kept
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        min_kept = self.min_kept if self.min_kept is not None else labels.numel() // 16
        valid = labels != self.ignore_index
        safe_labels = torch.where(valid, labels, torch.zeros_like(labels))
        pixel_loss = F.cross_entropy(logits.float(), safe_labels, reduction="none")
        num_valid = int(valid.sum())
        if 0 < min_kept < num_valid:
            with torch.no_grad():
                true_prob = torch.exp(-pixel_loss)
                true_prob = torch.where(valid, true_prob, torch.ones_like(true_prob) + 1)
                kth = torch.kthvalue(true_prob.flatten(), min_kept).values
                threshold = torch.clamp(kth, min=self.thresh)
                valid = valid & (true_prob < threshold)
        kept = valid.to(pixel_loss.dtype)
        return (pixel_loss * kept).sum() / (kept.sum() + self.eps * kept.numel())


def build_criterion(spec: LossSpec, ignore_index: int = 255) -> nn.Module:
    """The per-head criterion of a loss spec."""
    if spec.kind == "ohem":
        return OhemCrossEntropy(spec.ohem_thresh, spec.ohem_min_kept, ignore_index)
    return nn.CrossEntropyLoss(ignore_index=ignore_index)


def weighted_loss(
    criterion: nn.Module,
    outputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    weights: Sequence[float],
) -> torch.Tensor:
    """Sum of ``weights[i] * criterion(outputs[i], labels)`` over the model's heads (main first)."""
    if len(outputs) > len(weights):
        raise ValueError(
            f"the model returns {len(outputs)} outputs but loss.weights has only "
            f"{len(weights)} entries; give one weight per output"
        )
    pairs = zip(outputs, weights[: len(outputs)], strict=True)
    return sum(weight * criterion(output.float(), labels) for output, weight in pairs)
