"""Confusion-matrix metrics over a whole split.

Conventions (as in mmsegmentation): one confusion matrix is accumulated over
every pixel of the split (not averaged per image); pixels labelled
``ignore_index`` are excluded; a class whose union (ground truth + predicted
pixels) is zero has an undefined IoU, is listed in ``absent_classes`` and is
left out of the mean. PaddleSeg instead counts such a class as IoU 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bench.results import Metrics


class ConfusionMatrix:
    """Accumulates ``counts[true, predicted]`` over batches, optionally across processes."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.num_images = 0

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch of predicted class indices and labels of the same shape."""
        if predictions.shape != labels.shape:
            raise ValueError(
                f"predictions {tuple(predictions.shape)} != labels {tuple(labels.shape)}"
            )
        valid = labels != self.ignore_index
        flat = labels[valid].to(torch.int64) * self.num_classes + predictions[valid].to(torch.int64)
        counts = torch.bincount(flat.cpu(), minlength=self.num_classes**2)
        self.counts += counts.reshape(self.num_classes, self.num_classes)
        self.num_images += labels.shape[0] if labels.dim() == 3 else 1

    def all_reduce(self) -> None:
        """Sum the matrices (and image counts) of all processes of a DDP group."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        payload = torch.cat([self.counts.flatten(), torch.tensor([self.num_images])])
        payload = payload.to(backend_device)
        dist.all_reduce(payload)
        payload = payload.cpu()
        self.counts = payload[:-1].reshape(self.num_classes, self.num_classes)
        self.num_images = int(payload[-1])

    def compute(self, class_names: Sequence[str]) -> Metrics:
        """Metrics of the accumulated matrix (see :func:`metrics_from_confusion`)."""
        return metrics_from_confusion(self.counts.numpy(), class_names, self.num_images)


def metrics_from_confusion(
    confusion: np.ndarray, class_names: Sequence[str], num_images: int
) -> Metrics:
    """mIoU, pixel accuracy, mean class accuracy and per-class values of a confusion matrix.

    Args:
        confusion: ``(C, C)`` integer matrix, rows = ground truth, columns = prediction.
        class_names: ``C`` names, used as keys of the per-class dictionaries.
        num_images: how many images the matrix covers (recorded only).
    """
    confusion = confusion.astype(np.float64)
    if confusion.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion {confusion.shape} does not match {len(class_names)} classes")
    true_positive = np.diag(confusion)
    ground_truth = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    union = ground_truth + predicted - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        accuracy = np.where(ground_truth > 0, true_positive / ground_truth, np.nan)
    total = confusion.sum()
    return Metrics(
        miou=_nanmean(iou),
        pixel_acc=float(true_positive.sum() / total) if total > 0 else float("nan"),
        macc=_nanmean(accuracy),
        per_class_iou=_by_name(class_names, iou),
        per_class_acc=_by_name(class_names, accuracy),
        absent_classes=[name for name, u in zip(class_names, union, strict=True) if u == 0],
        num_images=num_images,
    )


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _by_name(class_names: Iterable[str], values: np.ndarray) -> dict[str, float | None]:
    return {
        name: (None if np.isnan(value) else float(value))
        for name, value in zip(class_names, values, strict=True)
    }


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    amp_dtype: torch.dtype | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """Class indices ``(N, H, W)`` of an eval-mode model for a normalised batch.

    With ``scale != 1`` the input is resized (bilinear) before the model and the
    logits are resized back to the input size before the argmax.
    """
    size = images.shape[-2:]
    if scale != 1.0:
        images = F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits = model(images)
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    return logits.argmax(dim=1)


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    scale: float = 1.0,
) -> Metrics:
    """Run ``model`` in eval mode over ``(images, labels)`` batches and score the whole split.

    Under DDP each process passes its shard; the matrices are summed before scoring.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for images, labels in batches:
            images = images.to(device, memory_format=memory_format, non_blocking=True)
            confusion.update(predict(model, images, amp_dtype, scale).cpu(), labels)
    finally:
        model.train(was_training)
    confusion.all_reduce()
    return confusion.compute(class_names)
