"""Cityscapes on a fabricated miniature: file pairing and label id -> train id mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import DataSpec
from bench.data import build_dataset, dataset_info
from bench.errors import DatasetError

SPEC = DataSpec(dataset="cityscapes")
SIZE = (16, 32)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _frame(root: Path, split: str, city: str, frame: str, label_ids: np.ndarray) -> None:
    base = root / "cityscapes"
    image = np.full((*SIZE, 3), 100, dtype=np.uint8)
    _write(base / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png", image)
    _write(base / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png", label_ids)


@pytest.fixture
def city_root(tmp_path: Path) -> Path:
    ids = np.zeros(SIZE, dtype=np.uint8)
    ids[:, 0:6], ids[:, 6:12], ids[:, 12:18], ids[:, 18:24], ids[:, 24:] = 7, 26, 33, 1, 0
    _frame(tmp_path, "train", "bremen", "000001_000019", ids)
    _frame(tmp_path, "train", "aachen", "000000_000019", ids)
    _frame(tmp_path, "val", "lindau", "000000_000019", ids)
    return tmp_path


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
    assert image.shape == (*SIZE, 3)
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
    ids = np.full(SIZE, 40, dtype=np.uint8)
    _write(label_path, ids)
    with pytest.raises(DatasetError, match=r"lindau.*invalid label values \[40\]"):
        build_dataset(SPEC, city_root, "val").load_pair(0)


def test_missing_label_file_is_named(city_root: Path) -> None:
    next((city_root / "cityscapes" / "gtFine" / "train" / "bremen").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match=r"1 file\(s\).*\n.*bremen_000001_000019_gtFine"):
        build_dataset(SPEC, city_root, "train")


def test_missing_folder_says_how_to_obtain(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)cityscapes.*does not exist.*cityscapes-dataset"):
        build_dataset(SPEC, tmp_path, "train")
