"""Confusion-matrix metrics against hand-computed cases; flip and multi-scale prediction."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.config import EvalSpec
from bench.evaluate import (
    ConfusionMatrix,
    mean_iou,
    metrics_from_confusion,
    predict,
    predict_logits,
)
from bench.results import Metrics

NAMES = ["a", "b", "c"]


def test_perfect_prediction_scores_one():
    labels = torch.tensor([[[0, 1], [2, 2]]])
    confusion = ConfusionMatrix(3)
    confusion.update(labels.clone(), labels)
    metrics = confusion.compute(NAMES)
    assert metrics.miou == 1.0 and metrics.pixel_acc == 1.0 and metrics.macc == 1.0
    assert metrics.absent_classes == []


def test_hand_computed_case_with_ignore_pixels():
    # labels (255 = ignore)         predictions
    # 0 0 1 255                      0 1 1 2
    # 2 2 2 255                      2 0 2 2
    labels = torch.tensor([[[0, 0, 1, 255], [2, 2, 2, 255]]])
    preds = torch.tensor([[[0, 1, 1, 2], [2, 0, 2, 2]]])
    confusion = ConfusionMatrix(3, ignore_index=255)
    confusion.update(preds, labels)
    # rows = truth: class0 -> {0:1, 1:1}; class1 -> {1:1}; class2 -> {2:2, 0:1}
    assert confusion.counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    metrics = confusion.compute(NAMES)
    iou = {"a": 1 / (2 + 2 - 1), "b": 1 / (1 + 2 - 1), "c": 2 / (3 + 2 - 2)}
    assert metrics.per_class_iou == pytest.approx(iou)
    assert metrics.miou == pytest.approx(sum(iou.values()) / 3)
    assert metrics.pixel_acc == pytest.approx(4 / 6)
    assert metrics.macc == pytest.approx((1 / 2 + 1 / 1 + 2 / 3) / 3)


def test_absent_class_is_nan_and_excluded_from_mean():
    # class "c" never appears in labels nor predictions: union 0 -> excluded
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    metrics = metrics_from_confusion(confusion, NAMES, num_images=1)
    assert metrics.per_class_iou["c"] is None
    assert metrics.absent_classes == ["c"]
    assert metrics.miou == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_class_predicted_but_absent_from_labels_counts_as_zero_iou():
    confusion = np.array([[2, 0, 1], [0, 2, 0], [0, 0, 0]])
    metrics = metrics_from_confusion(confusion, NAMES, num_images=1)
    assert metrics.per_class_iou["c"] == 0.0
    assert metrics.per_class_recall["c"] is None  # no ground truth: recall undefined
    assert metrics.miou == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_matrix_accumulates_over_batches_not_per_image_average():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 0, 0]]))
    confusion.update(torch.tensor([[1]]), torch.tensor([[1]]))
    metrics = confusion.compute(["x", "y"])
    # dataset-level: x: 3/(4+3-3)=0.75, y: 1/(1+2-1)=0.5 -> 0.625
    assert metrics.miou == pytest.approx(0.625)


def test_every_image_keeps_its_own_matrix_in_order():
    """The unit a bootstrap over images resamples: one matrix per image, summing to the total."""
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 3, size=(5, 4, 6)))
    labels[1, 0, :] = 255
    predictions = torch.from_numpy(rng.integers(0, 3, size=(5, 4, 6)))
    batched = ConfusionMatrix(3)
    batched.update(predictions[:3], labels[:3])
    batched.update(predictions[3:], labels[3:])
    metrics = batched.compute(NAMES)
    assert metrics.num_images == 5
    for image, matrix in enumerate(metrics.per_image_confusion):
        alone = ConfusionMatrix(3)
        alone.update(predictions[image], labels[image])
        assert matrix == alone.counts.flatten().tolist(), image
    assert sum(metrics.per_image_confusion[1]) == 4 * 6 - 6  # its ignored row is left out
    total = np.sum(metrics.per_image_confusion, axis=0).reshape(3, 3)
    assert total.tolist() == batched.counts.tolist()


def test_mean_iou_of_many_matrices_matches_the_metrics_of_each():
    rng = np.random.default_rng(3)
    matrices = rng.integers(0, 20, size=(4, 5, 5))
    matrices[1, 2, :] = 0
    matrices[1, :, 2] = 0  # a class with zero union is left out
    expected = [metrics_from_confusion(m, list("abcde"), num_images=1).miou for m in matrices]
    assert mean_iou(matrices) == pytest.approx(expected)


def test_all_pixels_ignored_gives_nan_not_crash():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    metrics = confusion.compute(["x", "y"])
    assert math.isnan(metrics.miou) and math.isnan(metrics.pixel_acc)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels"):
        ConfusionMatrix(2).update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))


def test_precision_recall_and_paddleseg_miou_by_hand():
    # rows = truth, columns = prediction; class "c" is predicted once but never true.
    confusion = np.array([[2, 0, 1], [1, 3, 0], [0, 0, 0]])
    metrics = metrics_from_confusion(confusion, NAMES, num_images=1)
    assert metrics.per_class_recall == pytest.approx({"a": 2 / 3, "b": 3 / 4, "c": None})
    assert metrics.per_class_precision == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 0.0})
    assert metrics.miou_paddleseg == metrics.miou == pytest.approx((2 / 4 + 3 / 4 + 0) / 3)


def test_paddleseg_miou_counts_zero_union_classes_as_zero():
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # "c": zero union
    metrics = metrics_from_confusion(confusion, NAMES, num_images=1)
    assert metrics.miou == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert metrics.miou_paddleseg == pytest.approx((3 / 4 + 2 / 3 + 0) / 3)
    assert metrics.per_class_precision["c"] is None


def test_records_with_the_former_accuracy_field_still_load():
    legacy = {
        "miou": 0.5,
        "pixel_acc": 0.8,
        "macc": 0.6,
        "per_class_iou": {"a": 0.5},
        "per_class_acc": {"a": 0.6},
        "absent_classes": [],
        "num_images": 3,
    }
    metrics = Metrics.model_validate(legacy)
    assert metrics.per_class_recall == {"a": 0.6}
    assert metrics.per_class_precision == {} and metrics.miou_paddleseg is None


class _Recorder(nn.Module):
    """A position-dependent toy model that records what it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.calls: list[tuple[tuple[int, ...], torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((tuple(x.shape[-2:]), x.dtype, torch.is_autocast_enabled(x.device.type)))
        ramp = torch.linspace(0, 1, x.shape[-1], device=x.device)
        return self.conv(x) + ramp


def test_flip_averages_the_mirrored_prediction():
    torch.manual_seed(0)
    model = _Recorder().eval()
    images = torch.randn(2, 3, 9, 13)
    with torch.no_grad():
        plain = model(images)
        mirrored = model(images.flip(-1)).flip(-1)
    logits = predict_logits(model, images, EvalSpec(flip=True))
    assert torch.allclose(logits, (plain + mirrored) / 2, atol=1e-6)
    summed = predict_logits(model, images, EvalSpec(flip=True, combine="softmax_sum"))
    assert torch.allclose(summed, plain.softmax(1) + mirrored.softmax(1), atol=1e-6)
    assert not torch.equal(predict(model, images), predict(model, images, EvalSpec(flip=True)))


def test_multiscale_sizes_follow_paddleseg_rounding_and_return_input_size():
    torch.manual_seed(0)
    model = _Recorder().eval()
    images = torch.randn(1, 3, 25, 41)
    spec = EvalSpec(scale=0.5, multiscale=(0.75, 1.0, 1.25), flip=True)
    logits = predict_logits(model, images, spec)
    assert logits.shape == (1, 4, 25, 41)
    # int(size * scale + 0.5) for scales 0.375, 0.5, 0.625; each with and without flip.
    sizes = [call[0] for call in model.calls]
    assert sizes == [(9, 15), (9, 15), (13, 21), (13, 21), (16, 26), (16, 26)]
    with torch.no_grad():
        half = F.interpolate(images, size=(13, 21), mode="bilinear", align_corners=False)
        single = F.interpolate(model(half), size=(25, 41), mode="bilinear", align_corners=False)
    assert torch.allclose(predict_logits(model, images, EvalSpec(scale=0.5)), single, atol=1e-6)


def test_prediction_runs_in_fp32_inside_a_bf16_autocast_region():
    model = _Recorder().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = predict_logits(model, torch.randn(1, 3, 8, 8))
    assert logits.dtype == torch.float32
    assert model.calls == [((8, 8), torch.float32, False)]
