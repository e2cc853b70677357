"""Decoding image and label files; every failure is a DatasetError naming the file.

Images are decoded with Pillow and converted to RGB. Label PNGs are read as
stored values: palette ("P") PNGs such as VOC's SegmentationClass give their
palette indices, not colours. SBD masks are MATLAB files holding the struct
``GTcls`` with the field ``Segmentation``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, UnidentifiedImageError
from scipy.io.matlab import MatReadError

from bench.errors import DatasetError

_INDEX_MODES = {"P", "L", "I", "I;16", "I;16B", "I;16L"}
# What Pillow and scipy raise on truncated or foreign files (zlib and struct errors
# surface as ValueError/OSError subclasses or as these).
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, zlib.error)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except _DECODE_ERRORS as error:
        raise DatasetError(f"{path}: cannot decode image ({_describe(error)})") from None


def read_label(path: Path) -> np.ndarray:
    """A label file (index PNG or SBD ``.mat``) as an HxW integer array of raw values."""
    if path.suffix == ".mat":
        return _read_sbd_mat(path)
    try:
        with Image.open(path) as image:
            if image.mode not in _INDEX_MODES:
                raise DatasetError(
                    f"{path}: label image has mode {image.mode!r}; expected one value per pixel "
                    "(a palette or grayscale PNG). Colour-coded masks must be converted to "
                    "class indices first."
                )
            return np.asarray(image)
    except _DECODE_ERRORS as error:
        raise DatasetError(f"{path}: cannot decode label image ({_describe(error)})") from None


def _read_sbd_mat(path: Path) -> np.ndarray:
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        segmentation = mat["GTcls"].Segmentation
    except (*_DECODE_ERRORS, KeyError, AttributeError, TypeError, MatReadError) as error:
        raise DatasetError(
            f"{path}: cannot read SBD mask (expected a MATLAB file with GTcls.Segmentation): "
            f"{_describe(error)}"
        ) from None
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2:
        raise DatasetError(f"{path}: GTcls.Segmentation has shape {segmentation.shape}, not HxW")
    return segmentation
