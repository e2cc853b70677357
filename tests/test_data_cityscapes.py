"""Cityscapes on a fabricated miniature: file pairing and label id -> train id mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.config import DataSpec
from bench.data import build_dataset, dataset_info
from bench.errors import DatasetError

from miniatures import CITYSCAPES_SIZE, write_cityscapes, write_image

SPEC = DataSpec(dataset="cityscapes")


@pytest.fixture
def city_root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path)


def test_samples_pair_images_with_label_ids(city_root: Path) -> None:
    train = build_dataset(SPEC, city_root, "train")
    assert [image.name for image, _ in train.samples] == [
        "aachen_000000_000019_leftImg8bit.png",
        "bremen_000001_000019_leftImg8bit.png",
    ]
    assert train.samples[0][1].name == "aachen_000000_000019_gtFine_labelIds.png"
    assert len(build_dataset(SPEC, city_root, "val")) == 1


def test_label_ids_map_to_19_train_ids(city_root: Path) -> None:
    image, label = build_dataset(SPEC, city_root, "val").load_pair(0)
    assert image.shape == (*CITYSCAPES_SIZE, 3)
    assert label[0, :].tolist() == [0] * 6 + [13] * 6 + [18] * 6 + [255] * 14
    info = dataset_info("cityscapes")
    assert info.num_classes == 19
    assert (info.class_names[0], info.class_names[13], info.class_names[18]) == (
        "road",
        "car",
        "bicycle",
    )


def test_undefined_label_id_is_reported(city_root: Path) -> None:
    label_path = next((city_root / "cityscapes" / "gtFine" / "val").rglob("*.png"))
    write_image(label_path, np.full(CITYSCAPES_SIZE, 40, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"lindau.*invalid label values \[40\]"):
        build_dataset(SPEC, city_root, "val").load_pair(0)


def test_missing_label_file_is_named(city_root: Path) -> None:
    next((city_root / "cityscapes" / "gtFine" / "train" / "bremen").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match=r"1 file\(s\).*\n.*bremen_000001_000019_gtFine"):
        build_dataset(SPEC, city_root, "train")


def test_missing_folder_says_how_to_obtain(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)cityscapes.*does not exist.*cityscapes-dataset"):
        build_dataset(SPEC, tmp_path, "train")
