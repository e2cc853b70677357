"""Dataset names -> definitions; the data root; building a split as a torch Dataset."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import DataSpec, SyntheticSpec
from bench.data import camvid, cityscapes, voc_sbd
from bench.data.base import (
    DatasetDef,
    DatasetInfo,
    DatasetMissing,
    SegmentationDataset,
    missing_files,
)
from bench.data.synthetic import synthetic_definition
from bench.errors import DatasetError

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "LITESEG_BENCH_DATA"
DATASETS = ("camvid", "camvid_paddleseg", "voc_sbd", "cityscapes", "synthetic")
_FIXED = {
    "camvid": camvid.DEFINITION,
    "camvid_paddleseg": camvid.PADDLESEG_DEFINITION,
    "voc_sbd": voc_sbd.DEFINITION,
    "cityscapes": cityscapes.DEFINITION,
}
_CACHE_WARN_SAMPLES = 3000


def dataset_definition(name: str, synthetic: SyntheticSpec | None = None) -> DatasetDef:
    """The definition of dataset ``name`` (``synthetic`` parameterises the synthetic one)."""
    if name == "synthetic":
        return synthetic_definition(synthetic or SyntheticSpec())
    if name not in _FIXED:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return _FIXED[name]


def dataset_info(name: str, synthetic: SyntheticSpec | None = None) -> DatasetInfo:
    """Classes, ignore index and palette of dataset ``name``."""
    return dataset_definition(name, synthetic).info


def default_synthetic_root() -> Path:
    """Where synthetic data is generated when no data root is configured."""
    return Path(tempfile.gettempdir()) / "liteseg-bench-data"


def resolve_data_root(cli_value: str | Path | None, dataset: str | None = None) -> Path:
    """The data root: ``--data-root``, else ``$LITESEG_BENCH_DATA``.

    With neither set, ``dataset="synthetic"`` falls back to
    :func:`default_synthetic_root`; any other dataset raises a DatasetError
    explaining both options. Synthetic data is generated, so its root is created.
    """
    for value, source in (
        (cli_value, "--data-root"),
        (os.environ.get(DATA_ROOT_ENV), DATA_ROOT_ENV),
    ):
        if value:
            root = Path(value).expanduser()
            if dataset == "synthetic":
                root.mkdir(parents=True, exist_ok=True)
            if not root.is_dir():
                raise DatasetError(f"data root {root} (from {source}) is not a directory")
            return root
    if dataset == "synthetic":
        return default_synthetic_root()
    raise DatasetError(
        "no data root given: pass --data-root DIR or set the environment variable "
        f"{DATA_ROOT_ENV}=DIR. Each dataset lives in its own folder under it "
        "(e.g. DIR/camvid); see `liteseg-bench data check DATASET --help`."
    )


def build_dataset(
    spec: DataSpec,
    root: Path,
    split: str,
    transform: Callable[..., dict[str, Any]] | None = None,
) -> SegmentationDataset:
    """Split ``split`` of ``spec.dataset`` under ``root`` as a :class:`SegmentationDataset`.

    Raises a DatasetError if the folder or split file is missing (with how to
    obtain the dataset), the split is empty or unknown, or listed files are absent.
    Decoding problems surface when a sample is loaded.
    """
    definition = dataset_definition(spec.dataset, spec.synthetic)
    try:
        samples = definition.samples(Path(root), split)
    except DatasetMissing as error:
        raise DatasetMissing(f"{error}\n{definition.how_to_obtain(root)}") from None
    if not samples:
        raise DatasetError(f"{spec.dataset}: split {split!r} under {root} lists no samples")
    missing = missing_files(samples)
    if missing:
        shown = "\n  ".join(str(path) for path in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(
            f"{spec.dataset}: {len(missing)} file(s) of split {split!r} are missing:\n  "
            f"{shown}{more}\nRun `liteseg-bench data check {spec.dataset}` for a full report."
        )
    if spec.cache and len(samples) > _CACHE_WARN_SAMPLES:
        logger.warning(
            "%s/%s: caching %d decoded samples in memory (data.cache=true); "
            "set data.cache=false if memory is short",
            spec.dataset,
            split,
            len(samples),
        )
    return SegmentationDataset(
        definition.info, samples, definition.label_map, transform, cache=spec.cache
    )
