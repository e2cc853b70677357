"""Confusion-matrix metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from bench.evaluate import ConfusionMatrix, metrics_from_confusion

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
    assert metrics.per_class_acc["c"] is None  # no ground truth: accuracy undefined
    assert metrics.miou == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_matrix_accumulates_over_batches_not_per_image_average():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 0, 0]]))
    confusion.update(torch.tensor([[1]]), torch.tensor([[1]]))
    metrics = confusion.compute(["x", "y"])
    # dataset-level: x: 3/(4+3-3)=0.75, y: 1/(1+2-1)=0.5 -> 0.625
    assert metrics.miou == pytest.approx(0.625)


def test_all_pixels_ignored_gives_nan_not_crash():
    confusion = ConfusionMatrix(2)
    confusion.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    metrics = confusion.compute(["x", "y"])
    assert math.isnan(metrics.miou) and math.isnan(metrics.pixel_acc)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels"):
        ConfusionMatrix(2).update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
