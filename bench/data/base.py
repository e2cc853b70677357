"""What every dataset shares: its description, its label mapping and the torch Dataset.

A dataset module (camvid, voc_sbd, cityscapes, synthetic) contributes a
:class:`DatasetDef`: class names and palette, how raw label values in its files
map to train ids (``IGNORE_INDEX`` for void), which split names it accepts and
how to list a split's (image, label) files under the data root.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.data.decode import read_image, read_label
from bench.data.transforms import default_eval_transform
from bench.errors import DatasetError

IGNORE_INDEX = 255
"""Train id of void pixels in every dataset (CamVid's 11, Cityscapes' unused ids, VOC's 255)."""

Sample = tuple[Path, Path]
RGB = tuple[int, int, int]


class DatasetMissing(DatasetError):
    """A dataset folder or split file is absent; the message says which path was expected."""


@dataclass(frozen=True)
class DatasetInfo:
    """Name, classes and colours of a dataset, as the model and the report see them.

    Args:
        name: registry name (``"camvid"``, ``"camvid_paddleseg"``, ``"voc_sbd"``,
            ``"cityscapes"``, ``"synthetic"``).
        num_classes: number of evaluated classes; train ids are ``0..num_classes-1``.
        ignore_index: train id of void pixels (255 for all datasets here).
        class_names: one name per train id.
        palette: one RGB colour per train id, for visualising predictions.
    """

    name: str
    num_classes: int
    ignore_index: int
    class_names: tuple[str, ...]
    palette: tuple[RGB, ...]

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes or len(self.palette) != self.num_classes:
            raise ValueError(
                f"{self.name}: {self.num_classes} classes but {len(self.class_names)} names "
                f"and {len(self.palette)} colours"
            )


class LabelMap:
    """Maps the raw values stored in label files to train ids.

    Raw values without a mapping are invalid: decoding a file that holds one
    raises :class:`DatasetError` naming the file and the values.

    Args:
        mapping: raw value -> train id (``IGNORE_INDEX`` for void).
        description: the valid raw values in words, quoted in error messages.
    """

    def __init__(self, mapping: Mapping[int, int], description: str) -> None:
        self.table = np.full(256, -1, dtype=np.int16)
        for raw, train_id in mapping.items():
            self.table[raw] = train_id
        self.description = description
        self._lut = np.where(self.table < 0, IGNORE_INDEX, self.table).astype(np.uint8)

    @classmethod
    def identity(cls, num_classes: int, ignore_values: Sequence[int] = (IGNORE_INDEX,)) -> LabelMap:
        """Raw value == train id for ``0..num_classes-1``; ``ignore_values`` mean void."""
        mapping = {value: value for value in range(num_classes)}
        mapping.update({value: IGNORE_INDEX for value in ignore_values})
        ignored = ", ".join(str(value) for value in ignore_values)
        return cls(mapping, f"0..{num_classes - 1} = classes, {ignored} = ignore")

    def apply(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Train ids (uint8) of a raw label array; invalid values raise a DatasetError."""
        if raw.dtype != np.uint8:
            if raw.size and (raw.min() < 0 or raw.max() > 255):
                raise DatasetError(
                    f"{path}: label values range {raw.min()}..{raw.max()}, outside 0..255 "
                    f"(expected {self.description})"
                )
            raw = raw.astype(np.uint8)
        counts = np.bincount(raw.ravel(), minlength=256)
        invalid = np.flatnonzero((counts > 0) & (self.table < 0))
        if invalid.size:
            raise DatasetError(
                f"{path}: invalid label values {invalid.tolist()} (expected {self.description})"
            )
        return self._lut[raw]


@dataclass(frozen=True)
class DatasetDef:
    """Everything the loaders and the checker need to know about one dataset.

    Args:
        info: classes and colours.
        label_map: raw file values -> train ids.
        splits: accepted split names.
        check_splits: splits ``data check`` verifies by default.
        optional_splits: splits checked only when present (e.g. CamVid test).
        expected_counts: number of samples per split in the official release.
        obtain: how to download and place the dataset (quoted when data is missing).
        list_samples: ``(root, split) -> [(image_path, label_path), ...]``; raises
            :class:`DatasetMissing` for absent folders/split files. Files are not
            opened and may be missing; :func:`missing_files` finds those.
    """

    info: DatasetInfo
    label_map: LabelMap
    splits: tuple[str, ...]
    check_splits: tuple[str, ...]
    list_samples: Callable[[Path, str], list[Sample]]
    obtain: str
    optional_splits: tuple[str, ...] = ()
    expected_counts: Mapping[str, int] = field(default_factory=dict)

    def how_to_obtain(self, root: Path) -> str:
        """:attr:`obtain` with ROOT replaced by the actual data root."""
        return self.obtain.replace("ROOT", str(root))

    def samples(self, root: Path, split: str) -> list[Sample]:
        """List a split, refusing unknown split names with the accepted ones."""
        if split not in self.splits:
            raise DatasetError(
                f"{self.info.name}: unknown split {split!r}; accepted: {', '.join(self.splits)}"
            )
        return self.list_samples(Path(root), split)


def missing_files(samples: Sequence[Sample]) -> list[Path]:
    """Paths named by ``samples`` that are not files."""
    return [path for pair in samples for path in pair if not path.is_file()]


def decode_pair(
    image_path: Path, label_path: Path, label_map: LabelMap
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and validate one sample: (RGB uint8 HxWx3, train ids uint8 HxW)."""
    image = read_image(image_path)
    label = label_map.apply(read_label(label_path), label_path)
    if image.shape[:2] != label.shape:
        raise DatasetError(
            f"{label_path}: mask size {label.shape[1]}x{label.shape[0]} (WxH) differs from "
            f"image size {image.shape[1]}x{image.shape[0]} of {image_path}"
        )
    return image, label


class SegmentationDataset(Dataset):
    """A list of (image, label) files decoded, validated and transformed on access.

    Args:
        info: classes and colours of the dataset.
        samples: ``(image_path, label_path)`` pairs.
        label_map: raw label values -> train ids.
        transform: an albumentations ``Compose`` taking ``image`` (uint8 HxWx3 RGB)
            and ``mask`` (uint8 HxW); it should normalise and may end with
            ``ToTensorV2``. ``None``: :func:`bench.data.transforms.build_eval_transform`
            with ImageNet normalisation.
        cache: keep decoded pairs in memory after their first use (decode once).
            With DataLoader workers each worker process holds its own cache.
    """

    def __init__(
        self,
        info: DatasetInfo,
        samples: Sequence[Sample],
        label_map: LabelMap,
        transform: Callable[..., dict[str, Any]] | None = None,
        cache: bool = False,
    ) -> None:
        self.info = info
        self.samples = list(samples)
        self.label_map = label_map
        self.transform = transform if transform is not None else default_eval_transform()
        self._cache: list[tuple[np.ndarray, np.ndarray] | None] | None = (
            [None] * len(self.samples) if cache else None
        )

    def __len__(self) -> int:
        return len(self.samples)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded, validated sample ``index``: (RGB uint8 HxWx3, train ids uint8 HxW)."""
        if self._cache is not None and self._cache[index] is not None:
            return self._cache[index]
        image, label = decode_pair(*self.samples[index], self.label_map)
        if self._cache is not None:
            self._cache[index] = (image, label)
        return image, label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.load_pair(index)
        out = self.transform(image=image, mask=label)
        return _as_image_tensor(out["image"]), _as_label_tensor(out["mask"])


def _as_image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return image.float()


def _as_label_tensor(label: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(np.ascontiguousarray(label))
    return label.long()
