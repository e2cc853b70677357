"""Cityscapes fine annotations, 19 evaluated classes.

Expected layout (the official zips extracted into one folder)::

    ROOT/cityscapes/
        leftImg8bit/{train,val}/CITY/*_leftImg8bit.png      2,975 / 500 images
        gtFine/{train,val}/CITY/*_gtFine_labelIds.png

The ``*_labelIds.png`` files hold the 34 official label ids (0..33); they are
mapped to the 19 train ids, every other id to the ignore index 255 (the mapping
of cityscapesScripts' ``labels.py``).

Splits: ``train``, ``val``.
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

FOLDER = "cityscapes"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

# (label id, name, colour) of the 19 evaluated classes, in train-id order.
TRAIN_CLASSES = (
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
)
NUM_LABEL_IDS = 34

INFO = DatasetInfo(
    name="cityscapes",
    num_classes=len(TRAIN_CLASSES),
    ignore_index=IGNORE_INDEX,
    class_names=tuple(name for _, name, _ in TRAIN_CLASSES),
    palette=tuple(color for _, _, color in TRAIN_CLASSES),
)

LABEL_MAP = LabelMap(
    {
        **{label_id: IGNORE_INDEX for label_id in range(NUM_LABEL_IDS)},
        **{label_id: train_id for train_id, (label_id, _, _) in enumerate(TRAIN_CLASSES)},
    },
    "official label ids 0..33, mapped to 19 train ids, the rest ignored",
)

OBTAIN = (
    "Cityscapes needs a free account at https://www.cityscapes-dataset.com/downloads/. "
    "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and extract both "
    "into ROOT/cityscapes (giving ROOT/cityscapes/leftImg8bit and ROOT/cityscapes/gtFine)."
)


def list_samples(root: Path, split: str) -> list[Sample]:
    """(image, labelIds) paths of a split, sorted by city and frame."""
    folder = root / FOLDER
    images = folder / "leftImg8bit" / split
    labels = folder / "gtFine" / split
    for expected in (folder, images, labels):
        if not expected.is_dir():
            raise DatasetMissing(f"cityscapes: folder {expected} does not exist")
    samples = []
    for image in sorted(images.glob(f"*/*{IMAGE_SUFFIX}")):
        stem = image.name[: -len(IMAGE_SUFFIX)]
        samples.append((image, labels / image.parent.name / f"{stem}{LABEL_SUFFIX}"))
    return samples


DEFINITION = DatasetDef(
    info=INFO,
    label_map=LABEL_MAP,
    splits=("train", "val"),
    check_splits=("train", "val"),
    expected_counts={"train": 2975, "val": 500},
    obtain=OBTAIN,
    list_samples=list_samples,
)
