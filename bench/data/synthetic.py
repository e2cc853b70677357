"""A procedural dataset for fast tests: textured shapes on textured backgrounds.

Generated deterministically from a :class:`~bench.config.SyntheticSpec` into
``ROOT/synthetic-<hash>`` (the hash covers the spec and the generator version),
once; later calls reuse the folder. Generation writes to a temporary sibling
folder and renames it, so concurrent processes (DDP ranks) do not collide.
When no data root is configured, ROOT is ``<system temp dir>/liteseg-bench-data``
(see :func:`bench.data.resolve_data_root`).

Layout (VOC-like)::

    ROOT/synthetic-<hash>/
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png          palette PNGs, values 0..num_classes-1
        ImageSets/Segmentation/{train,val}.txt

Class 0 is the background; class ``k`` is one shape kind (disc, box or
triangle, by ``k``) in its own hue with its own stripe texture, so a small CNN
separates the classes by colour, texture and shape.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.config import SyntheticSpec
from bench.data.base import IGNORE_INDEX, DatasetDef, DatasetInfo, LabelMap, Sample
from bench.data.voc_sbd import voc_palette
from bench.errors import DatasetError

GENERATOR_VERSION = 1
SHAPES = ("disc", "box", "triangle")
SPLITS = ("train", "val")
COMPLETE_MARKER = "spec.json"


def synthetic_info(spec: SyntheticSpec) -> DatasetInfo:
    """Classes of the synthetic dataset described by ``spec``."""
    names = ["background"] + [
        f"{SHAPES[(k - 1) % len(SHAPES)]}_{k}" for k in range(1, spec.num_classes)
    ]
    return DatasetInfo(
        name="synthetic",
        num_classes=spec.num_classes,
        ignore_index=IGNORE_INDEX,
        class_names=tuple(names),
        palette=voc_palette(spec.num_classes),
    )


def spec_hash(spec: SyntheticSpec) -> str:
    """Short hash naming the generated folder of ``spec``."""
    payload = {"generator": GENERATOR_VERSION, **spec.model_dump(mode="json")}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def dataset_folder(root: Path, spec: SyntheticSpec) -> Path:
    """Where the dataset of ``spec`` lives under ``root``."""
    return Path(root) / f"synthetic-{spec_hash(spec)}"


def ensure_generated(root: Path, spec: SyntheticSpec) -> Path:
    """Generate the dataset of ``spec`` under ``root`` unless already there; its folder."""
    folder = dataset_folder(root, spec)
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{folder.name}.tmp-", dir=folder.parent))
    try:
        generate(staging, spec)
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / COMPLETE_MARKER).is_file():
                raise DatasetError(
                    f"synthetic: {folder} exists but is incomplete (no {COMPLETE_MARKER}); "
                    "delete it and run again"
                ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def generate(folder: Path, spec: SyntheticSpec) -> None:
    """Write every image, mask and split file of ``spec`` into ``folder``."""
    images, labels = folder / "JPEGImages", folder / "SegmentationClass"
    split_dir = folder / "ImageSets" / "Segmentation"
    for directory in (images, labels, split_dir):
        directory.mkdir(parents=True, exist_ok=True)
    palette = [channel for color in voc_palette(256) for channel in color]
    counts = {"train": spec.num_train, "val": spec.num_val}
    for split_index, split in enumerate(SPLITS):
        ids = [f"{split}_{index:05d}" for index in range(counts[split])]
        for index, image_id in enumerate(ids):
            rng = np.random.default_rng([spec.seed, split_index, index])
            image, label = render_sample(rng, spec.image_size, spec.num_classes)
            Image.fromarray(image).save(images / f"{image_id}.jpg", quality=95)
            mask = Image.fromarray(label)
            mask.putpalette(palette)  # turns the "L" image into "P", keeping the values
            mask.save(labels / f"{image_id}.png")
        (split_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    (folder / COMPLETE_MARKER).write_text(spec.model_dump_json(indent=2), encoding="utf-8")


def render_sample(
    rng: np.random.Generator, size: tuple[int, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One (RGB uint8 HxWx3, labels uint8 HxW) pair: 2-4 textured shapes on a textured ground."""
    height, width = size
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        class_id = int(rng.integers(1, num_classes))
        mask = _shape_mask(rng, height, width, SHAPES[(class_id - 1) % len(SHAPES)])
        texture = _class_texture(rng, class_id, num_classes, height, width)
        image[mask] = texture[mask]
        label[mask] = class_id
    noise = rng.normal(0.0, 6.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), label


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.uniform(70, 180) + rng.uniform(-12, 12, size=3)
    coarse = rng.normal(0.0, 25.0, (max(2, height // 8), max(2, width // 8), 3))
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    return base + blotches


def _class_texture(
    rng: np.random.Generator, class_id: int, num_classes: int, height: int, width: int
) -> np.ndarray:
    hue = int(180 * (class_id - 1) / max(1, num_classes - 1))
    value = int(np.clip(rng.normal(215, 15), 150, 255))
    hsv = np.array([[[hue, 210, value]]], dtype=np.uint8)
    color = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)
    period = 3.0 + 2.0 * ((class_id - 1) % 3)
    angle = math.radians(37.0 * class_id)
    ys, xs = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * math.pi)
    stripes = np.sin(2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / period + phase)
    shade = 0.85 + 0.15 * stripes
    return color[None, None, :] * shade[:, :, None]


def _shape_mask(rng: np.random.Generator, height: int, width: int, shape: str) -> np.ndarray:
    canvas = np.zeros((height, width), dtype=np.uint8)
    radius = max(2, int(rng.uniform(0.12, 0.3) * min(height, width)))
    cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
    if shape == "disc":
        cv2.circle(canvas, (cx, cy), radius, 1, thickness=-1)
    elif shape == "box":
        half_w = max(2, int(radius * rng.uniform(0.6, 1.2)))
        half_h = max(2, int(radius * rng.uniform(0.6, 1.2)))
        cv2.rectangle(canvas, (cx - half_w, cy - half_h), (cx + half_w, cy + half_h), 1, -1)
    else:
        turn = rng.uniform(0, 2 * math.pi)
        corners = [
            (
                cx + radius * math.cos(turn + k * 2 * math.pi / 3),
                cy + radius * math.sin(turn + k * 2 * math.pi / 3),
            )
            for k in range(3)
        ]
        cv2.fillPoly(canvas, [np.round(corners).astype(np.int32)], 1)
    return canvas.astype(bool)


def synthetic_definition(spec: SyntheticSpec) -> DatasetDef:
    """The dataset definition of ``spec``; listing a split generates the data if needed."""

    def list_samples(root: Path, split: str) -> list[Sample]:
        folder = ensure_generated(root, spec)
        ids = (folder / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        return [
            (folder / "JPEGImages" / f"{i}.jpg", folder / "SegmentationClass" / f"{i}.png")
            for i in ids
        ]

    return DatasetDef(
        info=synthetic_info(spec),
        label_map=LabelMap.identity(spec.num_classes),
        splits=SPLITS,
        check_splits=SPLITS,
        expected_counts={"train": spec.num_train, "val": spec.num_val},
        obtain="The synthetic dataset is generated on first use; nothing to download.",
        list_samples=list_samples,
    )
