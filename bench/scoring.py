"""Scoring trained weights on a split of a dataset, outside the training loop.

The shared path of evaluation-only variants (``evaluates``: PP-LiteSeg-T2 is T1's training
evaluated at another scale) and of ``liteseg-bench evaluate``; the metric code is the one
training uses (:func:`bench.evaluate.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from bench.config import AugmentSpec, DataSpec, EvalSpec
from bench.data import SegmentationDataset, build_dataset, dataset_info
from bench.data.transforms import build_eval_transform
from bench.evaluate import evaluate, predict_samples
from bench.results import DatasetInfoRecord, Metrics


@dataclass(frozen=True)
class Scored:
    """Metrics of one split, the predictions of the samples asked for, and the split."""

    metrics: Metrics
    predictions: dict[int, np.ndarray]
    dataset: SegmentationDataset


def score(
    model: nn.Module,
    data: DataSpec,
    split: str,
    augment: AugmentSpec,
    spec: EvalSpec,
    data_root: Path,
    device: torch.device | str = "cpu",
    *,
    visualize: tuple[int, ...] = (),
) -> Scored:
    """Evaluate ``model`` on ``split`` of ``data`` as ``spec`` says (fp32; scale, flip).

    Images are normalised as ``augment.normalize`` says (as during the model's training).
    """
    info = dataset_info(data.dataset, data.synthetic)
    dataset = build_dataset(data, data_root, split, transform=build_eval_transform(augment))
    loader = DataLoader(dataset, batch_size=spec.batch_size, num_workers=data.num_workers)
    model = model.to(device)
    metrics = evaluate(
        model,
        loader,
        info.num_classes,
        info.class_names,
        ignore_index=info.ignore_index,
        device=device,
        spec=spec,
    )
    predictions = predict_samples(model, dataset, visualize, spec, device=device)
    return Scored(metrics, predictions, dataset)


def dataset_record(data: DataSpec, train_split: str, val_split: str) -> DatasetInfoRecord:
    """The dataset description a record carries."""
    info = dataset_info(data.dataset, data.synthetic)
    return DatasetInfoRecord(
        name=info.name,
        train_split=train_split,
        val_split=val_split,
        num_classes=info.num_classes,
        ignore_index=info.ignore_index,
        class_names=list(info.class_names),
        palette=[tuple(color) for color in info.palette],
    )
