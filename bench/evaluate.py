"""Confusion-matrix metrics over a whole split, and the predictions they score.

Conventions (as in mmsegmentation): one confusion matrix is accumulated over
every pixel of the split (not averaged per image); pixels labelled
``ignore_index`` are excluded; a class whose union (ground truth + predicted
pixels) is zero has an undefined IoU, is listed in ``absent_classes`` and is
left out of ``miou``. PaddleSeg (``paddleseg/utils/metrics.py``, ``mean_iou``)
sets such a class's IoU to 0 and keeps it in the mean; that number is recorded
too, as ``miou_paddleseg``, so a reader sees when the convention changes it.
PaddleSeg's per-class "Class Acc" (before 2.5; "Class Precision" since) is
precision, TP / predicted pixels (``class_measurement``); ``macc`` here is the
mean per-class *recall*, TP / ground-truth pixels. Both per-class values are
recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bench.config import EvalSpec
from bench.errors import NonFiniteOutputs
from bench.results import Metrics

DEFAULT_EVAL = EvalSpec()


class ConfusionMatrix:
    """Accumulates ``counts[true, predicted]`` over batches, optionally across processes.

    The matrix of every image is kept too (``per_image``, in the order the images were
    added): mIoU is a ratio of summed matrices, so a bootstrap over images resamples
    these and recomputes it (:func:`bench.stats.image_bootstrap_se`).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.per_image: list[torch.Tensor] = []

    @property
    def counts(self) -> torch.Tensor:
        """The ``(C, C)`` matrix summed over every image added."""
        if not self.per_image:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        return torch.stack(self.per_image).sum(dim=0)

    @property
    def num_images(self) -> int:
        return len(self.per_image)

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch ``(N, H, W)`` (or one image ``(H, W)``) of predicted class indices and
        labels of the same shape."""
        if predictions.shape != labels.shape:
            raise ValueError(
                f"predictions {tuple(predictions.shape)} != labels {tuple(labels.shape)}"
            )
        if labels.dim() == 2:
            predictions, labels = predictions.unsqueeze(0), labels.unsqueeze(0)
        images, cells = labels.shape[0], self.num_classes**2
        # One bincount for the batch: image k's cells are offset by k * C^2.
        offsets = torch.arange(images, device=labels.device).view(-1, 1, 1) * cells
        valid = labels != self.ignore_index
        flat = labels.to(torch.int64) * self.num_classes + predictions.to(torch.int64) + offsets
        counts = torch.bincount(flat[valid].cpu(), minlength=images * cells)
        self.per_image += list(counts.view(images, self.num_classes, self.num_classes))

    def all_reduce(self) -> None:
        """Gather the images of all processes of a DDP group in split order.

        Process ``r`` of ``W`` scores images ``r, r + W, r + 2W, ...`` (the shards of
        :meth:`bench.train.Trainer._val_loader`), so image ``j`` of process ``r`` is image
        ``r + j * W`` of the split.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        gathered: list[list[torch.Tensor]] = [[] for _ in range(dist.get_world_size())]
        dist.all_gather_object(gathered, self.per_image)
        longest = max(len(shard) for shard in gathered)
        self.per_image = [
            shard[position]
            for position in range(longest)
            for shard in gathered
            if position < len(shard)
        ]

    def compute(self, class_names: Sequence[str]) -> Metrics:
        """Metrics of the accumulated matrix (see :func:`metrics_from_confusion`), with the
        per-image matrices attached."""
        metrics = metrics_from_confusion(self.counts.numpy(), class_names, self.num_images)
        per_image = [matrix.flatten().tolist() for matrix in self.per_image]
        return metrics.model_copy(update={"per_image_confusion": per_image})


def metrics_from_confusion(
    confusion: np.ndarray, class_names: Sequence[str], num_images: int
) -> Metrics:
    """mIoU (both conventions), pixel accuracy, mean class accuracy and per-class values.

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
    iou = class_iou(confusion)
    recall = _ratio(true_positive, ground_truth)
    total = confusion.sum()
    return Metrics(
        miou=_nanmean(iou),
        miou_paddleseg=float(np.nan_to_num(iou, nan=0.0).mean()) if iou.size else float("nan"),
        pixel_acc=float(true_positive.sum() / total) if total > 0 else float("nan"),
        macc=_nanmean(recall),
        per_class_iou=_by_name(class_names, iou),
        per_class_recall=_by_name(class_names, recall),
        per_class_precision=_by_name(class_names, _ratio(true_positive, predicted)),
        absent_classes=[name for name, u in zip(class_names, union, strict=True) if u == 0],
        num_images=num_images,
    )


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class IoU of ``(..., C, C)`` confusion matrices; NaN where a class's union is 0."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    union = confusion.sum(axis=-1) + confusion.sum(axis=-2) - true_positive
    return _ratio(true_positive, union)


def mean_iou(confusion: np.ndarray) -> np.ndarray:
    """mIoU (fraction) of ``(..., C, C)`` confusion matrices, classes with zero union left out
    (the ``miou`` of :func:`metrics_from_confusion`, for many matrices at once)."""
    iou = class_iou(confusion)
    present = ~np.isnan(iou)
    with np.errstate(invalid="ignore"):
        return np.where(present, iou, 0.0).sum(axis=-1) / present.sum(axis=-1)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with NaN where the denominator is 0 (undefined)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _by_name(class_names: Iterable[str], values: np.ndarray) -> dict[str, float | None]:
    return {
        name: (None if np.isnan(value) else float(value))
        for name, value in zip(class_names, values, strict=True)
    }


def evaluation_scales(spec: EvalSpec) -> tuple[float, ...]:
    """The input scales of ``spec``: ``scale`` times each ``multiscale`` factor."""
    return tuple(spec.scale * factor for factor in spec.multiscale)


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """PaddleSeg's rounding of a scaled input size: ``int(size * scale + 0.5)``."""
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


@torch.inference_mode()
def predict_logits(
    model: nn.Module, images: torch.Tensor, spec: EvalSpec = DEFAULT_EVAL
) -> torch.Tensor:
    """Class scores ``(N, C, H, W)`` at the input size, in fp32, for a normalised batch.

    Follows PaddleSeg's ``aug_inference`` (``paddleseg/core/infer.py``, 2.8.0 and later):
    for every scale of :func:`evaluation_scales` the batch is resized (bilinear,
    ``align_corners=False``, size rounded as :func:`scaled_size`) and run, and with
    ``spec.flip`` also run mirrored left-right and mirrored back; each result is resized
    back to the input size (bilinear) and the results are combined:

    - ``"logits_mean"``: the mean of the logits (PaddleSeg >= 2.8.0, the code behind the
      published "ms+flip" columns since commit 3586adfe, 2023-02-17).
    - ``"softmax_sum"``: the sum of the softmax probabilities (PaddleSeg <= 2.7; those
      versions also resized every scale from the previous scale's image, a bug fixed in
      commit 7079037e that is not reproduced here).

    A single scale without flip gives the model's logits (resized back when scaled). The
    model runs in fp32 whatever autocast context the caller is in: bf16/fp16 are for
    training only.
    """
    height, width = images.shape[-2:]
    flips = (False, True) if spec.flip else (False,)
    combined: torch.Tensor | None = None
    with torch.autocast(images.device.type, enabled=False):
        for scale in evaluation_scales(spec):
            size = scaled_size(height, width, scale)
            scaled = images
            if size != (height, width):
                scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
            for flip in flips:
                logits = model(scaled.flip(-1) if flip else scaled).float()
                if flip:
                    logits = logits.flip(-1)
                if logits.shape[-2:] != (height, width):
                    logits = F.interpolate(
                        logits, size=(height, width), mode="bilinear", align_corners=False
                    )
                if spec.combine == "softmax_sum":
                    logits = logits.softmax(dim=1)
                combined = logits if combined is None else combined + logits
    if spec.combine == "logits_mean":
        combined = combined / (len(spec.multiscale) * len(flips))
    return combined


def predict(model: nn.Module, images: torch.Tensor, spec: EvalSpec = DEFAULT_EVAL) -> torch.Tensor:
    """Class indices ``(N, H, W)`` of an eval-mode model (see :func:`predict_logits`).

    Raises:
        NonFiniteOutputs: a logit is NaN or inf. ``argmax`` would turn NaN into class 0
            and give a diverged model an ordinary-looking score, so there is no prediction.
    """
    logits = predict_logits(model, images, spec)
    finite = torch.isfinite(logits)
    if not finite.all():
        bad = int((~finite).sum())
        raise NonFiniteOutputs(
            f"the model's outputs are NaN/inf at evaluation ({bad} of {finite.numel()} "
            "values of a batch): the weights have diverged and predict nothing, so no "
            "metrics are computed"
        )
    return logits.argmax(dim=1)


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    class_names: Sequence[str],
    *,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    spec: EvalSpec = DEFAULT_EVAL,
) -> Metrics:
    """Run ``model`` in eval mode over ``(images, labels)`` batches and score the whole split.

    Predictions follow :func:`predict_logits` (fp32; scale, multi-scale, flip as in
    ``spec``). Under DDP each process passes its shard; the matrices are summed before
    scoring.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for images, labels in batches:
            images = images.to(device, memory_format=memory_format, non_blocking=True)
            confusion.update(predict(model, images, spec).cpu(), labels)
    finally:
        model.train(was_training)
    confusion.all_reduce()
    return confusion.compute(class_names)


@torch.inference_mode()
def predict_samples(
    model: nn.Module,
    dataset,
    indices: Iterable[int],
    spec: EvalSpec = DEFAULT_EVAL,
    *,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> dict[int, np.ndarray]:
    """Predicted class indices (H, W) of the samples ``indices`` of ``dataset`` that exist."""
    was_training = model.training
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    predictions = {}
    try:
        for index in indices:
            if index >= len(dataset):
                continue
            image, _ = dataset[index]
            batch = image.unsqueeze(0).to(device, memory_format=memory_format)
            predictions[index] = predict(model, batch, spec)[0].cpu().numpy()
    finally:
        model.train(was_training)
    return predictions
