"""CamVid in PaddleSeg's archive layout (960x720), on a generated miniature of that layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.config import DataSpec
from bench.data import build_dataset, dataset_info
from bench.data.check import check_dataset
from bench.errors import DatasetError

from miniatures import CAMVID_SIZE, write_paddleseg_camvid

SPEC = DataSpec(dataset="camvid_paddleseg", cache=False)
COUNTS = {"train": 367, "val": 101, "test": 233}


@pytest.fixture
def small_root(tmp_path: Path) -> Path:
    write_paddleseg_camvid(tmp_path, {"train": 3, "val": 2, "test": 1})
    return tmp_path


def test_splits_read_the_lists_relative_to_the_folder(small_root: Path) -> None:
    train = build_dataset(SPEC, small_root, "train")
    assert [image.name for image, _ in train.samples] == [f"train_{i:04d}.png" for i in range(3)]
    assert all(label.parent.name == "annot" for _, label in train.samples)
    assert len(build_dataset(SPEC, small_root, "trainval")) == 5
    assert len(build_dataset(SPEC, small_root, "test")) == 1


def test_labels_keep_classes_and_void(small_root: Path) -> None:
    image, label = build_dataset(SPEC, small_root, "train").load_pair(2)
    assert image.shape == (*CAMVID_SIZE, 3)
    assert set(np.unique(label)) == {2, 255}
    info = dataset_info("camvid_paddleseg")
    assert info.num_classes == 11 and info.class_names == dataset_info("camvid").class_names


def test_segnet_void_value_is_reported(small_root: Path) -> None:
    path = small_root / "camvid_paddleseg" / "annot" / "val_0001.png"
    Image.fromarray(np.full(CAMVID_SIZE, 11, dtype=np.uint8)).save(path)
    with pytest.raises(DatasetError, match=r"val_0001\.png: invalid label values \[11\]"):
        build_dataset(SPEC, small_root, "val").load_pair(1)


def test_missing_folder_says_how_to_obtain_the_archive(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)camvid_paddleseg.*camvid\.tar.*mv "):
        build_dataset(SPEC, tmp_path, "train")


def test_data_check_validates_the_full_layout(tmp_path: Path, capsys) -> None:
    write_paddleseg_camvid(tmp_path, COUNTS)
    report = check_dataset("camvid_paddleseg", tmp_path)
    assert report.ok, report.problems
    assert [(r.split, r.found) for r in report.splits] == [
        ("train", 367),
        ("val", 101),
        ("test", 233),
    ]
    assert main(["data", "check", "camvid_paddleseg", "--data-root", str(tmp_path)]) == 0
    assert "OK: 701 samples decoded and validated" in capsys.readouterr().out


def test_data_check_reports_counts_and_missing_files(small_root: Path) -> None:
    (small_root / "camvid_paddleseg" / "images" / "train_0001.png").unlink()
    report = check_dataset("camvid_paddleseg", small_root, splits=["train"])
    assert "train: 3 samples listed, expected 367" in report.problems
    assert any("train_0001.png: file is missing" in p for p in report.problems)
