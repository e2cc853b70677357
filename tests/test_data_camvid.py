"""The real CamVid copy (SegNet layout) under $LITESEG_BENCH_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_transforms import paddleseg_hue  # the PaddleSeg reference of the unit tests

from architectures import create_model
from bench.cli import main
from bench.config import AugmentSpec, DataSpec, EvalSpec
from bench.data import build_dataset, dataset_info
from bench.data.download import load_manifest, sha256_of
from bench.data.transforms import (
    RandomDistort,
    build_eval_transform,
    build_train_transform,
    build_train_transforms,
    normalization_stats,
)
from bench.errors import DatasetError
from bench.evaluate import predict_logits

CAMVID_VALUES = set(range(11)) | {255}


@pytest.fixture(scope="module")
def data_root() -> Path:
    value = os.environ.get("LITESEG_BENCH_DATA")
    if not value:
        pytest.skip("real-data test: set LITESEG_BENCH_DATA to the folder holding camvid/")
    if not (Path(value) / "camvid").is_dir():
        pytest.skip(f"real-data test: {value}/camvid does not exist")
    return Path(value)


def test_split_counts(data_root: Path) -> None:
    spec = DataSpec(dataset="camvid")
    assert len(build_dataset(spec, data_root, "train")) == 367
    assert len(build_dataset(spec, data_root, "val")) == 101
    assert len(build_dataset(spec, data_root, "trainval")) == 468


def test_class_names() -> None:
    info = dataset_info("camvid")
    assert info.num_classes == 11 and info.ignore_index == 255
    assert info.class_names == (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )


def test_decoded_pair_shape_and_labels(data_root: Path) -> None:
    train = build_dataset(DataSpec(dataset="camvid", cache=True), data_root, "train")
    image, label = train.load_pair(0)
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert label.shape == (360, 480)
    assert set(np.unique(label)) <= CAMVID_VALUES
    assert 255 in label  # Unlabelled (11) is mapped to the ignore index
    assert train.load_pair(0)[0] is image  # cached: decoded once


@pytest.mark.parametrize("pipeline", ["seed", "paddleseg"])
def test_sample_through_training_pipeline(data_root: Path, pipeline: str) -> None:
    aug = AugmentSpec(pipeline=pipeline, crop_size=(256, 256))
    train = build_dataset(
        DataSpec(dataset="camvid"), data_root, "train", build_train_transform(aug, 255, seed=0)
    )
    image, label = train[3]
    assert image.shape == (3, 256, 256) and image.dtype == torch.float32
    assert label.shape == (256, 256) and label.dtype == torch.int64
    assert set(label.unique().tolist()) <= CAMVID_VALUES
    assert float(image.min()) > -3.0 and float(image.max()) < 3.0


def test_liteseg_passes_on_real_images(data_root: Path) -> None:
    # The official Cityscapes passes: every crop is larger than a scaled 360x480 CamVid
    # image, so each sample is the whole image resized to the crop (never padded).
    aug = AugmentSpec(pipeline="liteseg", scale_range=(0.2, 0.8))
    train = build_dataset(DataSpec(dataset="camvid", cache=True), data_root, "train")
    raw_image, raw_label = train.load_pair(5)
    void_share = float((raw_label == 255).mean())
    for transform, crop in zip(build_train_transforms(aug, 255), aug.passes, strict=True):
        transform.set_random_seed(7)
        out = transform(image=raw_image, mask=raw_label)
        assert out["image"].shape == (3, *crop.crop_size)
        label = out["mask"].numpy()
        assert set(np.unique(label)) <= CAMVID_VALUES
        assert len(set(np.unique(label)) - {255}) >= 4  # the scene's classes survive
        if crop.rotate_degrees == 0:  # nearest resize keeps the void share, no padding
            assert abs(float((label == 255).mean()) - void_share) < 0.02


def test_hue_jitter_on_a_real_image_matches_paddleseg(data_root: Path) -> None:
    image, _ = build_dataset(DataSpec(dataset="camvid"), data_root, "val").load_pair(0)
    shifted = RandomDistort(0.5, 18.0).apply(image, factors={"hue": -11.3})
    assert np.array_equal(shifted, paddleseg_hue(image, -11.3))
    assert np.abs(shifted.astype(int) - image).mean() > 1  # the colours moved


def test_flip_evaluation_on_a_real_image(data_root: Path) -> None:
    val = build_dataset(
        DataSpec(dataset="camvid"), data_root, "val", build_eval_transform(AugmentSpec())
    )
    image, _ = val[0]
    torch.manual_seed(0)
    model = create_model("pp_liteseg_t", 11).eval()
    batch = image.unsqueeze(0)
    with torch.no_grad():
        plain, mirrored = model(batch), model(batch.flip(-1)).flip(-1)
    logits = predict_logits(model, batch, EvalSpec(flip=True))
    assert logits.shape == (1, 11, 360, 480)
    assert torch.allclose(logits, (plain + mirrored) / 2, atol=1e-5)


@pytest.mark.parametrize("normalize", ["imagenet", "half"])
def test_sample_through_eval_pipeline(data_root: Path, normalize: str) -> None:
    aug = AugmentSpec(normalize=normalize)
    val = build_dataset(DataSpec(dataset="camvid"), data_root, "val", build_eval_transform(aug))
    raw_image, raw_label = val.load_pair(0)
    image, label = val[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
    assert torch.equal(label, torch.from_numpy(raw_label).long())
    mean, std = normalization_stats(normalize)
    expected = (raw_image.reshape(-1, 3).mean(0) / 255.0 - np.array(mean)) / np.array(std)
    assert np.allclose(image.mean(dim=(1, 2)).numpy(), expected, atol=1e-3)


def test_missing_test_split_says_how_to_download(data_root: Path, tmp_path: Path) -> None:
    """A copy of the real folder without the test split (linked, not copied)."""
    (tmp_path / "camvid").mkdir()
    for entry in (data_root / "camvid").iterdir():
        if not entry.name.startswith("test"):
            (tmp_path / "camvid" / entry.name).symlink_to(entry)
    with pytest.raises(DatasetError, match=r"(?s)test\.txt does not exist.*--download"):
        build_dataset(DataSpec(dataset="camvid"), tmp_path, "test")


def test_manifest_matches_the_reference_copy(data_root: Path) -> None:
    manifest = load_manifest()
    assert len(manifest) == 1405
    folder = data_root / "camvid"
    for relative in (
        "train.txt",
        "val.txt",
        "train/0001TP_006690.png",
        "valannot/0016E5_07959.png",
    ):
        assert sha256_of(folder / relative) == manifest[relative]


def test_cli_check_without_decoding(data_root: Path, capsys) -> None:
    assert main(["data", "check", "camvid", "--data-root", str(data_root), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert "train      367 samples (expected 367): ok" in out
    assert "OK: 468 samples listed (not decoded)" in out


@pytest.mark.slow
def test_cli_check_passes(data_root: Path, capsys) -> None:
    assert main(["data", "check", "camvid", "--data-root", str(data_root)]) == 0
    assert "OK: 468 samples decoded and validated" in capsys.readouterr().out
