"""Qualitative results: val images, labels and predictions as small palette-coloured PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

THUMB_WIDTH = 240
IGNORE_COLOR = (0, 0, 0)
# Class indices without a palette entry: loud, so a palette mismatch is visible.
UNKNOWN_COLOR = (255, 0, 255)


def read_labels(path: Path) -> np.ndarray | None:
    """A PNG of class indices as a 2-D uint8 array, or None if missing or undecodable."""
    if not path.is_file():
        return None
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        return None
    return labels


def read_rgb(path: Path) -> np.ndarray | None:
    """A colour PNG as an RGB uint8 array, or None if missing or undecodable."""
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int) -> np.ndarray:
    """RGB image of ``labels`` in the dataset palette; ignored pixels black."""
    lookup = np.tile(np.array(UNKNOWN_COLOR, dtype=np.uint8), (256, 1))
    lookup[: len(palette)] = np.asarray(palette, dtype=np.uint8)[:256]
    if 0 <= ignore_index < 256:
        lookup[ignore_index] = IGNORE_COLOR
    return lookup[labels]


def thumbnail(image: np.ndarray, *, nearest: bool, width: int = THUMB_WIDTH) -> np.ndarray:
    """``image`` scaled to ``width`` pixels wide (never enlarged); labels use nearest neighbour."""
    height, current = image.shape[:2]
    if current <= width:
        return image
    new_size = (width, max(1, round(height * width / current)))
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(image, new_size, interpolation=interpolation)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB uint8 image."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode an image of shape {rgb.shape} as PNG")
    return encoded.tobytes()
