"""`liteseg-bench evaluate` on an official PaddleSeg checkpoint scores what the official
model predicts: the same per-class IoU over CamVid val as Paddle's own forward passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import AugmentSpec, DataSpec
from bench.data import build_dataset, dataset_info
from bench.data.transforms import build_eval_transform
from bench.evaluate import ConfusionMatrix

pytestmark = pytest.mark.parity

SKIP_REASON = "parity tests need paddlepaddle and paddleseg (run `nox -s parity`)"
paddle = pytest.importorskip("paddle", reason=SKIP_REASON)
paddleseg_models = pytest.importorskip("paddleseg.models", reason=SKIP_REASON)
paddleseg_backbones = pytest.importorskip("paddleseg.models.backbones", reason=SKIP_REASON)

# Pixels whose two best classes are this close may flip between frameworks (float32).
IOU_TOLERANCE = 1e-3


def _official_metrics(model, data_root: Path):
    """Per-class IoU of the official model's own predictions on CamVid val."""
    spec = DataSpec(dataset="camvid", cache=False)
    info = dataset_info("camvid")
    transform = build_eval_transform(AugmentSpec(normalize="half"))
    dataset = build_dataset(spec, data_root, "val", transform=transform)
    confusion = ConfusionMatrix(info.num_classes, info.ignore_index)
    model.eval()
    with paddle.no_grad():
        for index in range(len(dataset)):
            image, label = dataset[index]
            logits = model(paddle.to_tensor(image.numpy()[None]))[0]
            prediction = paddle.argmax(logits, axis=1).numpy()
            confusion.update(torch.from_numpy(prediction), label[None])
    return confusion.compute(info.class_names)


def test_evaluate_scores_an_official_checkpoint_as_the_official_model_predicts(
    randomized: Callable[..., Path], real_data_root: Path, tmp_path: Path
):
    official = paddleseg_models.PPLiteSeg(
        num_classes=11,
        backbone=paddleseg_backbones.STDC1(),
        arm_out_chs=[32, 64, 128],
        seg_head_inter_chs=[32, 64, 64],
    )
    checkpoint = randomized(official, seed=7, name="pp_liteseg_t_camvid")
    record_path = tmp_path / "record.json"
    command = [sys.executable, "-m", "bench.cli", "evaluate", str(checkpoint),
               "--model", "pp_liteseg_t", "--dataset", "camvid", "--split", "val",
               "--data-root", str(real_data_root), "-o", str(record_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    ours = json.loads(record_path.read_text(encoding="utf-8"))["metrics"]
    theirs = _official_metrics(official, real_data_root)
    assert ours["num_images"] == theirs.num_images == 101
    assert len({value for value in theirs.per_class_iou.values() if value}) > 2, "non-trivial"
    for name, iou in theirs.per_class_iou.items():
        if iou is None:
            assert ours["per_class_iou"][name] is None
        else:
            assert abs(ours["per_class_iou"][name] - iou) <= IOU_TOLERANCE, name
    assert np.isclose(ours["miou"], theirs.miou, atol=IOU_TOLERANCE)
