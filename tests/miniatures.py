"""Fabricated miniatures of the official files, shared by the tests: datasets in their
official layouts and PaddleSeg checkpoints (pickles of numpy arrays with Paddle's keys)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

from architectures.weights import PADDLE_STRUCTURE_KEY
from bench.data.voc_sbd import voc_palette

# VOC ids a..e and SBD ids a, c, d, f, g, h; image ``x`` has class ``ord(x) - 96``.
VOC_TRAIN, VOC_VAL = ["a", "b"], ["c", "d", "e"]
SBD_TRAIN, SBD_VAL = ["a", "c", "f", "g"], ["d", "h"]
# VOC2011's val is a subset of VOC2012's; FCN's seg11valid is it minus SBD train.
VOC2011_VAL = ["c", "d"]
SEG11VALID = sorted(set(VOC2011_VAL) - set(SBD_TRAIN))
VOC_SIZE = (20, 24)  # height, width
CAMVID_SIZE = (6, 8)  # a tiny stand-in for 720x960
CITYSCAPES_SIZE = (16, 32)


def write_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_cityscapes_frame(
    root: Path, split: str, city: str, frame: str, label_ids: np.ndarray
) -> None:
    """One image and its gtFine labelIds PNG in Cityscapes' layout under ``root/cityscapes``.

    The image is noise: a constant image has zero variance in every batch norm, whose
    gradients then explode (weights of 1e7 after one step), and the model predicts NaN.
    """
    base = root / "cityscapes"
    rng = np.random.default_rng(sum(frame.encode()))
    image = rng.integers(0, 256, (*label_ids.shape, 3), dtype=np.uint8)
    write_image(base / "leftImg8bit" / split / city / f"{city}_{frame}_leftImg8bit.png", image)
    write_image(base / "gtFine" / split / city / f"{city}_{frame}_gtFine_labelIds.png", label_ids)


def write_cityscapes(root: Path) -> Path:
    """Two train frames and one val frame whose label ids cover road, car, bicycle, void."""
    ids = np.zeros(CITYSCAPES_SIZE, dtype=np.uint8)
    ids[:, 0:6], ids[:, 6:12], ids[:, 12:18], ids[:, 18:24], ids[:, 24:] = 7, 26, 33, 1, 0
    write_cityscapes_frame(root, "train", "bremen", "000001_000019", ids)
    write_cityscapes_frame(root, "train", "aachen", "000000_000019", ids)
    write_cityscapes_frame(root, "val", "lindau", "000000_000019", ids)
    return root


def write_paddleseg_camvid(
    root: Path, counts: dict[str, int], size: tuple[int, int] = CAMVID_SIZE
) -> Path:
    """``root/camvid_paddleseg`` as extracted from PaddleSeg's camvid.tar: images/, annot/
    and split lists of ``images/NAME.png annot/NAME.png`` lines; labels 0..10 and 255."""
    folder = root / "camvid_paddleseg"
    (folder / "images").mkdir(parents=True)
    (folder / "annot").mkdir()
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        lines = []
        for index in range(count):
            name = f"{split}_{index:04d}.png"
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            label = np.full(size, index % 11, dtype=np.uint8)
            label[0, 0] = 255  # void
            Image.fromarray(image).save(folder / "images" / name)
            Image.fromarray(label).save(folder / "annot" / name)
            lines.append(f"images/{name} annot/{name}")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def _voc_label(class_id: int) -> np.ndarray:
    label = np.zeros(VOC_SIZE, dtype=np.uint8)
    label[5:15, 6:18] = class_id
    return label


def _write_jpeg(path: Path) -> None:
    write_image(path, np.full((*VOC_SIZE, 3), 90, dtype=np.uint8))


def write_voc_png(path: Path, label: np.ndarray) -> None:
    """A palette PNG like VOC's SegmentationClass (indices + the VOC colour map)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(label)
    image.putpalette([channel for color in voc_palette(256) for channel in color])
    image.save(path)


def write_sbd_mat(path: Path, label: np.ndarray) -> None:
    """An SBD cls/*.mat file: struct GTcls with fields Segmentation, Boundaries, ..."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gtcls = {
        "Segmentation": label,
        "Boundaries": np.zeros((1, 1), dtype=object),
        "CategoriesPresent": np.unique(label[label > 0]).astype(np.uint8),
    }
    scipy.io.savemat(path, {"GTcls": gtcls})


def write_voc_sbd(root: Path) -> Path:
    """VOC 2012 (ids a..e) and SBD (a, c, d, f, g, h) under ``root``, with FCN's seg11valid
    list placed by the user; image ``x`` has class ``ord(x) - 96``."""
    voc = root / "VOCdevkit" / "VOC2012"
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for split, ids in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        (sets / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for image_id in ids:
            label = _voc_label(ord(image_id) - 96)
            label[0, :] = 255  # VOC marks object borders as void
            _write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg")
            write_voc_png(voc / "SegmentationClass" / f"{image_id}.png", label)
    (sets / "seg11valid.txt").write_text("\n".join(SEG11VALID) + "\n")
    sbd = root / "SBD"
    sbd.mkdir()
    for split, ids in (("train", SBD_TRAIN), ("val", SBD_VAL)):
        (sbd / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for image_id in ids:
            _write_jpeg(sbd / "img" / f"{image_id}.jpg")
            write_sbd_mat(sbd / "cls" / f"{image_id}.mat", _voc_label(ord(image_id) - 96))
    return root


def paddle_key(key: str) -> str:
    """Our key -> the key PaddleSeg's PPLiteSeg has for the same tensor."""
    backbone = key.startswith("backbone.")
    for ours, theirs in (
        (r"^context\.", "ppseg_head.cm."),
        (r"^fusions\.", "ppseg_head.arm_list."),
        (r"^heads\.", "seg_heads."),
        (r"\.attention\.", ".conv_xy_atten."),
        (r"\.avd_layer\.conv\.", ".avd_layer.0."),
        (r"\.avd_layer\.bn\.", ".avd_layer.1."),
        (r"\.running_mean$", "._mean"),
        (r"\.running_var$", "._variance"),
    ):
        key = re.sub(ours, theirs, key)
    if not backbone:  # PaddleSeg's layers.ConvBNReLU names its children _conv/_batch_norm
        key = re.sub(r"\.conv\.(weight|bias)$", r"._conv.\1", key)
        key = re.sub(r"\.bn\.(weight|bias|_mean|_variance)$", r"._batch_norm.\1", key)
    return key


def paddle_state(model: torch.nn.Module, *, scale: float | None = 1.0) -> dict[str, np.ndarray]:
    state = {
        paddle_key(key): value.numpy().copy()
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    if scale is not None:
        for index in range(3):
            state[f"ppseg_head.arm_list.{index}._scale"] = np.array([scale], np.float32)
    return state


def write_pdparams(path: Path, state: dict[str, np.ndarray], protocol: int = 4) -> Path:
    content = {PADDLE_STRUCTURE_KEY: {key: f"generated_{i}" for i, key in enumerate(state)}}
    content.update(state)
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


def stdc_imagenet_state(source: torch.nn.Module) -> dict[str, np.ndarray]:
    """``source``'s encoder as a PaddleSeg ImageNet STDC file holds it (``features.*``)."""
    return {
        key.removeprefix("backbone."): value
        for key, value in paddle_state(source, scale=None).items()
        if key.startswith("backbone.")
    }
