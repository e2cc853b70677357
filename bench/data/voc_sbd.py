"""Pascal VOC 2012 with the SBD augmentation (21 classes, 255 = void).

Expected layout::

    ROOT/VOCdevkit/VOC2012/
        JPEGImages/*.jpg
        SegmentationClass/*.png            palette PNGs (indices are read, not colours)
        ImageSets/Segmentation/train.txt   1,464 ids
        ImageSets/Segmentation/val.txt     1,449 ids
        ImageSets/Segmentation/seg11valid.txt   736 ids, placed by the user (optional)
    ROOT/SBD/                              = benchmark_RELEASE/dataset of benchmark.tgz
        img/*.jpg
        cls/*.mat                          GTcls.Segmentation, values 0..20
        train.txt                          8,498 ids
        val.txt                            2,857 ids

Splits:

- ``train_aug``: (SBD train + SBD val + VOC train) - VOC val = 10,582 images,
  the standard augmented training set. An image with a VOC annotation uses it
  (VOC masks mark object borders as void); the others use the SBD mask.
- ``val``: VOC 2012 val, 1,449 images.

The seed's VOC protocol is described two ways, and both readings are here:

- ``sbd_train``: SBD train, 8,498 images, every mask from its SBD ``.mat`` file
  (SBD masks have no void border), images from ``SBD/img``. (Issue 9's reading:
  "train = SBD train".)
- ``seg11valid``: FCN's list of VOC2011 val minus SBD train, 736 images
  (``data/pascal/seg11valid.txt`` of shelhamer/fcn.berkeleyvision.org), with VOC
  images and masks; the list is not part of the VOC2012 devkit, so the user
  places it under ``ImageSets/Segmentation``. (Issue 9's reading.)
- ``voc12_val_minus_sbd_train``: VOC 2012 val minus every SBD train image, with
  VOC masks. (REFERENCE.md's reading: "validate on VOC2012 val minus SBD-train".)
- ``seed_train``: SBD train + VOC train, VOC masks where they exist, and
  ``seed_val``: VOC 2012 val minus ``seed_train``, which is the same list as
  ``voc12_val_minus_sbd_train`` (VOC train and val are disjoint); the former
  reading of "train on SBD (train_aug style)".
"""

from __future__ import annotations

from pathlib import Path

from bench.data.base import (
    IGNORE_INDEX,
    DatasetDef,
    DatasetInfo,
    DatasetMissing,
    LabelMap,
    Sample,
)
from bench.errors import DatasetError

VOC_FOLDER = Path("VOCdevkit", "VOC2012")
SBD_FOLDER = Path("SBD")

CLASS_NAMES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_palette(num_colors: int = 256) -> tuple[tuple[int, int, int], ...]:
    """The VOC colour map: bits of the index spread over the high bits of R, G and B."""
    colors = []
    for index in range(num_colors):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        colors.append((red, green, blue))
    return tuple(colors)


INFO = DatasetInfo(
    name="voc_sbd",
    num_classes=21,
    ignore_index=IGNORE_INDEX,
    class_names=CLASS_NAMES,
    palette=voc_palette(21),
)

LABEL_MAP = LabelMap.identity(21)

SEG11VALID = "seg11valid"
"""Split name and list-file stem of FCN's VOC2011 val minus SBD train."""

OBTAIN = (
    "Pascal VOC 2012: download VOCtrainval_11-May-2012.tar from "
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and extract it in ROOT "
    "(gives ROOT/VOCdevkit/VOC2012).\n"
    "SBD: download benchmark.tgz from "
    "http://home.bharathh.info/pubs/codes/SBD/download.html, extract it and move "
    "benchmark_RELEASE/dataset to ROOT/SBD (so that ROOT/SBD/cls/*.mat exists).\n"
    "seg11valid (VOC2011 val minus SBD train, 736 ids; only for that split): download "
    "data/pascal/seg11valid.txt from https://github.com/shelhamer/fcn.berkeleyvision.org "
    f"and save it as ROOT/VOCdevkit/VOC2012/ImageSets/Segmentation/{SEG11VALID}.txt."
)


def _read_ids(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise DatasetMissing(f"voc_sbd: {what} split file {path} does not exist")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _voc_ids(root: Path, split: str) -> list[str]:
    folder = root / VOC_FOLDER
    if not folder.is_dir():
        raise DatasetMissing(f"voc_sbd: VOC 2012 folder {folder} does not exist")
    return _read_ids(folder / "ImageSets" / "Segmentation" / f"{split}.txt", f"VOC {split}")


def _sbd_ids(root: Path, split: str) -> list[str]:
    folder = root / SBD_FOLDER
    if not folder.is_dir():
        raise DatasetMissing(f"voc_sbd: SBD folder {folder} does not exist")
    return _read_ids(folder / f"{split}.txt", f"SBD {split}")


def _pairs(root: Path, ids: set[str], voc_annotated: set[str]) -> list[Sample]:
    """Sorted (image, label) paths: VOC files for ``voc_annotated`` ids, SBD ones otherwise."""
    voc, sbd = root / VOC_FOLDER, root / SBD_FOLDER
    samples = []
    for image_id in sorted(ids):
        if image_id in voc_annotated:
            samples.append(
                (
                    voc / "JPEGImages" / f"{image_id}.jpg",
                    voc / "SegmentationClass" / f"{image_id}.png",
                )
            )
        else:
            samples.append((sbd / "img" / f"{image_id}.jpg", sbd / "cls" / f"{image_id}.mat"))
    return samples


def _seg11valid(root: Path) -> list[Sample]:
    ids = set(_voc_ids(root, SEG11VALID))
    overlap = sorted(ids & set(_sbd_ids(root, "train")))
    if overlap:
        raise DatasetError(
            f"voc_sbd: {root / VOC_FOLDER / 'ImageSets' / 'Segmentation'}/{SEG11VALID}.txt lists "
            f"{len(overlap)} SBD train image(s) (e.g. {overlap[0]}); seg11valid is VOC2011 val "
            "minus SBD train, so this is not FCN's seg11valid.txt"
        )
    return _pairs(root, ids, ids)


def list_samples(root: Path, split: str) -> list[Sample]:
    """(image, label) paths of a split, sorted by image id."""
    if split == "sbd_train":
        return _pairs(root, set(_sbd_ids(root, "train")), set())
    if split == SEG11VALID:
        return _seg11valid(root)
    voc_val = set(_voc_ids(root, "val"))
    if split == "val":
        return _pairs(root, voc_val, voc_val)
    sbd_train = set(_sbd_ids(root, "train"))
    if split == "voc12_val_minus_sbd_train":
        return _pairs(root, voc_val - sbd_train, voc_val)
    voc_train = set(_voc_ids(root, "train"))
    voc_annotated = voc_train | voc_val
    if split == "train_aug":
        sbd_val = set(_sbd_ids(root, "val"))
        return _pairs(root, (sbd_train | sbd_val | voc_train) - voc_val, voc_annotated)
    seed_train = sbd_train | voc_train
    if split == "seed_train":
        return _pairs(root, seed_train, voc_annotated)
    return _pairs(root, voc_val - seed_train, voc_annotated)


DEFINITION = DatasetDef(
    info=INFO,
    label_map=LABEL_MAP,
    splits=(
        "train_aug",
        "val",
        "sbd_train",
        "seg11valid",
        "voc12_val_minus_sbd_train",
        "seed_train",
        "seed_val",
    ),
    check_splits=("train_aug", "val"),
    optional_splits=("seg11valid",),
    expected_counts={"train_aug": 10582, "val": 1449, "sbd_train": 8498, "seg11valid": 736},
    obtain=OBTAIN,
    list_samples=list_samples,
)
