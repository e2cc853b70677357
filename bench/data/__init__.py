"""Datasets in their official layouts, transforms, and dataset checks.

Every dataset lives in its own folder under the data root (``--data-root`` or
``$LITESEG_BENCH_DATA``): ``camvid/`` (SegNet layout), ``camvid_paddleseg/``
(PaddleSeg's 960x720 archive), ``VOCdevkit/VOC2012/`` + ``SBD/``, ``cityscapes/``;
synthetic data is generated into ``synthetic-<hash>/``. The module docstrings of
:mod:`bench.data.camvid`, :mod:`bench.data.voc_sbd`, :mod:`bench.data.cityscapes`
and :mod:`bench.data.synthetic` give the exact layouts and accepted split names.
All datasets use 255 as the ignore index.
"""

from bench.data.base import (
    IGNORE_INDEX,
    DatasetInfo,
    LabelMap,
    SegmentationDataset,
)
from bench.data.registry import (
    DATA_ROOT_ENV,
    DATASETS,
    build_dataset,
    dataset_definition,
    dataset_info,
    resolve_data_root,
)

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "IGNORE_INDEX",
    "DatasetInfo",
    "LabelMap",
    "SegmentationDataset",
    "build_dataset",
    "dataset_definition",
    "dataset_info",
    "resolve_data_root",
]
