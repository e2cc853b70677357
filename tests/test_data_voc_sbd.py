"""VOC 2012 + SBD on a fabricated miniature: split logic, palette PNGs, .mat masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import DataSpec
from bench.data import build_dataset, dataset_info
from bench.data.check import check_dataset
from bench.errors import DatasetError

from miniatures import SBD_TRAIN, VOC_SIZE, write_voc_sbd

SPEC = DataSpec(dataset="voc_sbd", cache=False)


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """VOC ids a..e and SBD ids a, c, d, f, g, h; image ``x`` has class ``ord(x) - 96``.

    FCN's seg11valid list (placed by the user) names ``d``.
    """
    return write_voc_sbd(tmp_path)


def _ids(dataset) -> list[str]:
    return [image.stem for image, _ in dataset.samples]


def test_splits_follow_the_train_aug_and_seed_definitions(voc_root: Path) -> None:
    assert _ids(build_dataset(SPEC, voc_root, "train_aug")) == ["a", "b", "f", "g", "h"]
    assert _ids(build_dataset(SPEC, voc_root, "val")) == ["c", "d", "e"]
    assert _ids(build_dataset(SPEC, voc_root, "seed_train")) == ["a", "b", "c", "f", "g"]
    assert _ids(build_dataset(SPEC, voc_root, "seed_val")) == ["d", "e"]


def test_voc_annotation_preferred_over_sbd(voc_root: Path) -> None:
    train_aug = build_dataset(SPEC, voc_root, "train_aug")
    sources = {label.stem: (label.suffix, label.parent.name) for _, label in train_aug.samples}
    assert sources["a"] == (".png", "SegmentationClass")
    assert sources["f"] == (".mat", "cls")


def test_palette_png_and_mat_decode_to_class_indices(voc_root: Path) -> None:
    train_aug = build_dataset(SPEC, voc_root, "train_aug")
    image, label = train_aug.load_pair(0)  # "a": VOC palette PNG
    assert image.shape == (*VOC_SIZE, 3)
    assert set(np.unique(label)) == {0, 1, 255}
    image, label = train_aug.load_pair(2)  # "f": SBD .mat
    assert label.shape == VOC_SIZE
    assert set(np.unique(label)) == {0, 6}
    _, label_tensor = train_aug[2]
    assert set(label_tensor.unique().tolist()) == {0, 6}


def test_info_has_21_classes() -> None:
    info = dataset_info("voc_sbd")
    assert info.num_classes == 21 and info.ignore_index == 255
    assert info.class_names[0] == "background" and info.class_names[-1] == "tvmonitor"
    assert info.palette[1] == (128, 0, 0) and info.palette[15] == (192, 128, 128)


def test_rgb_mask_is_rejected_with_the_file_name(voc_root: Path) -> None:
    path = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "c.png"
    Image.open(path).convert("RGB").save(path)
    val = build_dataset(SPEC, voc_root, "val")
    with pytest.raises(DatasetError, match=r"c\.png.*mode 'RGB'"):
        val.load_pair(0)


def test_broken_mat_file_is_named(voc_root: Path) -> None:
    (voc_root / "SBD" / "cls" / "g.mat").write_bytes(b"not a mat file")
    train_aug = build_dataset(SPEC, voc_root, "train_aug")
    with pytest.raises(DatasetError, match=r"g\.mat"):
        train_aug.load_pair(3)


def test_missing_sbd_explains_how_to_obtain_it(voc_root: Path) -> None:
    (voc_root / "SBD" / "train.txt").unlink()
    assert len(build_dataset(SPEC, voc_root, "val")) == 3
    with pytest.raises(
        DatasetError, match=r"(?s)SBD train split file .*train\.txt.*benchmark\.tgz"
    ):
        build_dataset(SPEC, voc_root, "train_aug")


def test_unknown_split_lists_accepted_names(voc_root: Path) -> None:
    accepted = "train_aug, val, sbd_train, seg11valid, voc12_val_minus_sbd_train, seed_train"
    with pytest.raises(DatasetError, match=accepted):
        build_dataset(SPEC, voc_root, "train")


def test_check_reports_counts_against_the_official_release(voc_root: Path) -> None:
    report = check_dataset("voc_sbd", voc_root)
    assert not report.ok
    assert "train_aug: 5 samples listed, expected 10582" in report.problems
    assert "val: 3 samples listed, expected 1449" in report.problems
    assert "seg11valid: 1 samples listed, expected 736" in report.problems  # present: checked
    assert len(report.problems) == 3


def test_the_two_readings_of_the_seed_protocol(voc_root: Path) -> None:
    # Issue 9: train on SBD train, validate on VOC2011 val minus SBD train (seg11valid).
    assert _ids(build_dataset(SPEC, voc_root, "sbd_train")) == SBD_TRAIN
    assert _ids(build_dataset(SPEC, voc_root, "seg11valid")) == ["d"]
    # REFERENCE.md: validate on VOC2012 val minus SBD train (= the former seed_val).
    minus = _ids(build_dataset(SPEC, voc_root, "voc12_val_minus_sbd_train"))
    assert minus == ["d", "e"] == _ids(build_dataset(SPEC, voc_root, "seed_val"))


def test_sbd_train_masks_come_from_the_mat_files(voc_root: Path) -> None:
    sbd_train = build_dataset(SPEC, voc_root, "sbd_train")
    assert {
        (image.parent.name, label.parent.name, label.suffix) for image, label in sbd_train.samples
    } == {("img", "cls", ".mat")}
    _, label = sbd_train.load_pair(0)  # "a" also has a VOC mask, whose border is void
    assert set(np.unique(label)) == {0, 1}
    for split in ("seg11valid", "voc12_val_minus_sbd_train"):
        sources = {label.parent.name for _, label in build_dataset(SPEC, voc_root, split).samples}
        assert sources == {"SegmentationClass"}


def test_seg11valid_list_is_optional_and_explained(voc_root: Path) -> None:
    (voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "seg11valid.txt").unlink()
    with pytest.raises(
        DatasetError, match=r"(?s)seg11valid\.txt does not exist.*fcn\.berkeleyvision"
    ):
        build_dataset(SPEC, voc_root, "seg11valid")
    default = check_dataset("voc_sbd", voc_root, decode=False)
    assert [r.split for r in default.splits if r.optional_absent] == ["seg11valid"]
    asked = check_dataset("voc_sbd", voc_root, splits=["seg11valid"], decode=False)
    assert asked.data_missing and "seg11valid.txt" in asked.format()


def test_seg11valid_list_with_sbd_train_images_is_rejected(voc_root: Path) -> None:
    sets = voc_root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    (sets / "seg11valid.txt").write_text("c\nd\n")  # c is an SBD train image
    with pytest.raises(DatasetError, match=r"1 SBD train image\(s\) \(e\.g\. c\)"):
        build_dataset(SPEC, voc_root, "seg11valid")
