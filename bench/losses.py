"""Segmentation losses: cross-entropy and PaddleSeg's OHEM cross-entropy, over all model heads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


class SummedCrossEntropy(nn.Module):
    """Cross-entropy summed over the valid pixels and divided by the batch size.

    tahaemara/LiteSeg ``utils/loss.py`` ``cross_entropy2d(..., reduct='sum')`` with its
    ``batch_average``: per image, the loss grows with the number of valid pixels,
    so learning rates are on a different scale than with a pixel mean (see
    :func:`mean_loss_settings`).
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        summed = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="sum")
        return summed / labels.shape[0]


@dataclass(frozen=True)
class SGDSettings:
    """Learning rate and (coupled, PyTorch-style) weight decay of SGD."""

    lr: float
    weight_decay: float


def mean_loss_settings(lr: float, weight_decay: float, pixels_per_image: float) -> SGDSettings:
    """SGD settings for a pixel-mean loss that reproduce SGD on LiteSeg's summed loss.

    LiteSeg (tahaemara/LiteSeg ``train.py``, ``utils/loss.py``) minimises
    ``L_sum = (sum of the cross-entropy over the V valid pixels of the batch) / n`` for a
    batch of n images, with ``torch.optim.SGD(lr=1e-7, momentum=0.9, weight_decay=5e-4)``.
    A pixel-mean loss is ``L_mean = sum / V``, so ``L_sum = N * L_mean`` with
    ``N = V / n`` valid pixels per image.

    Derivation. PyTorch's SGD adds the decay to the gradient, ``g = grad L + wd * w``,
    keeps ``b = momentum * b + g`` and steps ``w -= lr * b``. With the summed loss,
    ``g_sum = N grad L_mean + wd w = N (grad L_mean + (wd / N) w)``. Setting
    ``wd' = wd / N`` makes ``g_sum = N g'``, where ``g'`` is the gradient SGD sees with the
    mean loss and ``wd'``; the momentum buffer is linear in the gradients, so
    ``b_sum = N b'`` at every step, and ``lr * b_sum = (lr * N) * b'``. Hence
    ``lr' = lr * N`` and ``wd' = wd / N`` give identical steps. Scaling only the learning
    rate multiplies the per-step decay ``lr * wd * w`` by N (about 5e5 at 512x1024).

    The equivalence is exact while N is constant. It varies with the void pixels of a
    batch and, in LiteSeg's multi-crop epoch, with the crop size of each pass, so for a
    real run ``pixels_per_image`` is a representative value (e.g. the mean valid pixels
    per image over the passes); :class:`SummedCrossEntropy` (``loss.reduction =
    "sum_per_image"``) reproduces the official loss itself.

    Args:
        lr: learning rate used with the summed loss.
        weight_decay: weight decay used with the summed loss.
        pixels_per_image: N, valid (non-void) pixels per image.
    """
    if pixels_per_image <= 0:
        raise ValueError(f"pixels_per_image must be > 0, got {pixels_per_image}")
    return SGDSettings(lr=lr * pixels_per_image, weight_decay=weight_decay / pixels_per_image)


def build_criterion(spec: LossSpec, ignore_index: int = 255) -> nn.Module:
    """The per-head criterion of a loss spec."""
    if spec.kind == "ohem":
        return OhemCrossEntropy(spec.ohem_thresh, spec.ohem_min_kept, ignore_index)
    if spec.reduction == "sum_per_image":
        return SummedCrossEntropy(ignore_index)
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
