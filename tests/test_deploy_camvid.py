"""The accuracy cost of int8 on real CamVid: a model trained briefly on CamVid train is
quantized with calibration on CamVid train images and scored on CamVid val images with
the suite's own metric code, next to its fp32 PyTorch score.

A negative control calibrates on wrongly normalised images (raw 0-255 pixel values)
and shows that the checks below then fail, so they can fail.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset

from bench.config import load_suite, resolve_runs
from bench.data import build_dataset, dataset_info
from bench.data.transforms import build_eval_transform, normalization_stats
from bench.deploy import Calibration, DeployedModel, calibration_from_dataset, evaluate_deployed
from bench.distributed import DistContext
from bench.evaluate import predict
from bench.layout import RunLayout
from bench.train import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.long]

TRAIN_STEPS = 50
VAL_IMAGES = 12
CALIBRATION_IMAGES = 12
THREADS = 2
# int8 must cost less than these (percentage points) and agree with fp32 on most pixels.
# A briefly trained model has many low-margin pixels that int8 rounding flips: 96.9 %
# (OpenVINO) and 97.3 % (ONNX Runtime) agreement were measured, against 44 % with the
# wrongly normalised calibration of the negative control (with camvid-quick's stronger
# hue jitter the 50-step model is less decisive: 88 % on OpenVINO).
MAX_MIOU_LOSS_PP = 1.0
MAX_PIXEL_ACC_LOSS_PP = 0.5
MIN_AGREEMENT = 0.95


@pytest.fixture(scope="module")
def trained(real_data_root, tmp_path_factory):
    """LiteSeg-MobileNetV2 after a short camvid-quick schedule, its val subset and train set."""
    runs = resolve_runs(
        load_suite("camvid-quick"),
        # Milder colour jitter than camvid-quick's: 50 steps then give a model confident
        # enough that its pixels do not sit on class boundaries int8 rounding crosses.
        {
            "train.iters": TRAIN_STEPS,
            "train.checkpoint_every": TRAIN_STEPS,
            "eval.visualize": [],
            "augment.color_jitter": 0.3,
            "augment.hue_jitter": 0.0,
        },
    )
    config = next(run for run in runs if run.model.name == "liteseg_mobilenetv2")
    context = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    trainer = Trainer(
        config, RunLayout(tmp_path_factory.mktemp("run")), real_data_root, context, progress=False
    )
    model = trainer.fit().model.eval()
    transform = build_eval_transform(config.augment)
    train = build_dataset(config.data, real_data_root, config.data.train_split, transform)
    val = Subset(trainer.val_set, range(VAL_IMAGES))
    return model, config, train, val


def _batches(val):
    return [(image.unsqueeze(0), label.unsqueeze(0)) for image, label in val]


def _score(trained, runtime, precision, calibration=None):
    model, config, _, val = trained
    info = dataset_info(config.data.dataset)
    return evaluate_deployed(
        model,
        runtime,
        precision,
        _batches(val),
        info.num_classes,
        info.class_names,
        calibration=calibration,
        ignore_index=info.ignore_index,
        threads=THREADS,
    )


def _agreement(trained, runtime, calibration) -> float:
    """Fraction of val pixels where the int8 and the fp32 argmax agree."""
    model, _, _, val = trained
    same = total = 0
    with DeployedModel(
        model, runtime, "int8", threads=THREADS, calibration=calibration
    ) as deployed:
        for images, _ in _batches(val):
            reference = predict(model, images)
            same += int((predict(deployed, images) == reference).sum())
            total += reference.numel()
    return same / total


@pytest.fixture(scope="module")
def fp32(trained):
    return _score(trained, "torch", "fp32")


@pytest.fixture(scope="module")
def calibration(trained) -> Calibration:
    _, _, train, _ = trained
    return calibration_from_dataset(train, CALIBRATION_IMAGES, "camvid train")


def test_the_trained_model_has_learned_something(fp32):
    assert fp32.metrics.num_images == VAL_IMAGES
    # Above what any single class covers (road, the largest, ~30 % of CamVid pixels).
    assert fp32.metrics.pixel_acc > 0.35


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_int8_costs_little_accuracy_on_camvid(trained, fp32, calibration, runtime):
    int8 = _score(trained, runtime, "int8", calibration)
    assert (int8.runtime, int8.precision, int8.calibration_images) == (
        runtime,
        "int8",
        CALIBRATION_IMAGES,
    )
    assert int8.calibration_source == "camvid train" and int8.runtime_version
    miou_loss = 100 * (fp32.metrics.miou - int8.metrics.miou)
    pixel_loss = 100 * (fp32.metrics.pixel_acc - int8.metrics.pixel_acc)
    print(f"\n{runtime} int8: mIoU loss {miou_loss:+.2f} pp, pixel accuracy {pixel_loss:+.2f} pp")
    assert miou_loss <= MAX_MIOU_LOSS_PP
    assert pixel_loss <= MAX_PIXEL_ACC_LOSS_PP
    agreement = _agreement(trained, runtime, calibration)
    print(f"{runtime} int8 agrees with fp32 on {100 * agreement:.2f} % of val pixels")
    assert agreement >= MIN_AGREEMENT


def test_wrongly_normalised_calibration_fails_the_checks(trained, fp32, calibration):
    _, config, _, _ = trained
    mean, std = (
        torch.tensor(v).view(3, 1, 1) for v in normalization_stats(config.augment.normalize)
    )
    raw = Calibration(
        tuple((image * std + mean) * 255.0 for image in calibration.images), "raw pixels"
    )
    agreement = _agreement(trained, "openvino", raw)
    int8 = _score(trained, "openvino", "int8", raw)
    miou_loss = 100 * (fp32.metrics.miou - int8.metrics.miou)
    print(f"\nmis-calibrated int8: agreement {100 * agreement:.1f} %, mIoU loss {miou_loss:.2f} pp")
    assert agreement < MIN_AGREEMENT or miou_loss > MAX_MIOU_LOSS_PP
