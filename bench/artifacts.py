"""Files a finished run leaves besides its record: predictions, sample images, cost profiles."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from bench.config import RunConfig
from bench.data import SegmentationDataset
from bench.files import atomic_write_bytes, atomic_write_text, read_problem, set_aside
from bench.layout import RunLayout, SuiteLayout
from bench.results import Cost


def png_bytes(array: np.ndarray) -> bytes:
    """``array`` (HxW labels or HxWx3 BGR) encoded as PNG."""
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def write_predictions(layout: RunLayout, predictions: Mapping[int, np.ndarray]) -> dict[int, str]:
    """Save predicted class indices per val index; returns the paths relative to the run."""
    files = {}
    for index, prediction in predictions.items():
        path = layout.prediction(index)
        atomic_write_bytes(path, png_bytes(prediction.astype(np.uint8)))
        files[index] = layout.relative(path)
    return files


def write_samples(
    layout: SuiteLayout, val_set: SegmentationDataset, indices: Iterable[int]
) -> None:
    """Save the fixed val images and labels that the report shows predictions for (once)."""
    for index in indices:
        image_path = layout.sample_image(index)
        if index >= len(val_set) or image_path.is_file():
            continue
        image, label = val_set.load_pair(index)
        atomic_write_bytes(layout.sample_label(index), png_bytes(label.astype(np.uint8)))
        atomic_write_bytes(image_path, png_bytes(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))


def architecture_key(cfg: RunConfig, device_type: str) -> str:
    """Name of the cost profile of ``cfg``'s architecture under its profile settings.

    Cost depends on the model and its overrides (not on the seed or the training
    recipe), the profile settings and the device type; seeds of a variant share it. With
    ``precisions = "auto"`` the pairs it resolves to on this machine are part of the key,
    so a machine with other features measures its own.
    """
    parts = [cfg.model.name, cfg.model.overrides, cfg.profile.model_dump(mode="json"), device_type]
    if cfg.profile.precisions == "auto":
        parts.append(cfg.profile.combinations(device_type))
    key = json.dumps(parts, sort_keys=True)
    return f"{cfg.model.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def read_profile(layout: SuiteLayout, key: str) -> Cost | None:
    """The stored cost of architecture ``key``, or None."""
    path = layout.profile(key)
    try:
        return Cost.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        set_aside(path, read_problem(error), "the architecture will be counted and timed again")
        return None


def write_profile(layout: SuiteLayout, key: str, cost: Cost) -> None:
    """Store the cost of architecture ``key`` atomically."""
    atomic_write_text(layout.profile(key), cost.model_dump_json(indent=2))
