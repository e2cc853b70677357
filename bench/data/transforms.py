"""Training and evaluation transforms (albumentations), ending in normalised tensors.

Inputs are uint8 HxWx3 RGB images and uint8 HxW train-id masks; outputs are a
float32 (3,H,W) tensor and a uint8 (H,W) tensor (the dataset casts it to
int64). Masks are always resized with nearest neighbour. Sizes are
``(height, width)``.

Recipes (``AugmentSpec.pipeline``):

- ``"seed"`` (the seed's VOC protocol): HorizontalFlip (if ``hflip``),
  VerticalFlip (if ``vflip``), RandomBrightnessContrast (albumentations
  defaults), RandomScale(``scale_limit``) always, PadIfNeeded to the crop
  (centred; image 0, mask ignore), RandomCrop.
- ``"paddleseg"`` (PP-LiteSeg configs): ResizeStepScaling (one of the scales
  ``scale_range[0]``, ``+scale_step``, ..., ``scale_range[1]``, uniformly),
  RandomPaddingCrop (pad bottom/right, image with the mean colour so it
  normalises to 0, mask ignore; random crop), RandomHorizontalFlip (if
  ``hflip``; ``vflip`` is not part of this recipe), RandomDistort with
  brightness, contrast and saturation each in ``1 +- color_jitter``, each with
  probability 0.5, in random order (Pillow ImageEnhance semantics). PaddleSeg's
  RandomDistort also jitters hue by default; that is not reproduced here.
- ``"none"``: PadIfNeeded + RandomCrop as in ``"seed"``.

Evaluation: the full image at its original size, normalisation only.
"""

from __future__ import annotations

import math
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from bench.config import AugmentSpec

NORMALIZATION = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def normalization_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on [0, 1] inputs for ``AugmentSpec.normalize``."""
    return NORMALIZATION[name]


def _to_tensors(normalize: str) -> list[A.BasicTransform]:
    mean, std = normalization_stats(normalize)
    return [A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()]


def build_train_transform(
    aug: AugmentSpec, ignore_index: int, seed: int | None = None
) -> A.Compose:
    """The training augmentation of ``aug.pipeline`` followed by normalisation.

    Args:
        aug: recipe and its parameters.
        ignore_index: value of padded mask pixels.
        seed: seeds albumentations' random generators (``None``: fresh entropy).
    """
    height, width = aug.crop_size
    if aug.pipeline == "paddleseg":
        mean, _ = normalization_stats(aug.normalize)
        steps = [
            RandomStepScale(aug.scale_range, aug.scale_step),
            A.PadIfNeeded(
                height,
                width,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=tuple(255.0 * m for m in mean),
                fill_mask=ignore_index,
            ),
            A.RandomCrop(height, width),
        ]
        if aug.hflip:
            steps.append(A.HorizontalFlip(p=0.5))
        if aug.color_jitter > 0:
            steps.append(RandomDistort(aug.color_jitter))
    else:
        steps = []
        if aug.pipeline == "seed":
            if aug.hflip:
                steps.append(A.HorizontalFlip(p=0.5))
            if aug.vflip:
                steps.append(A.VerticalFlip(p=0.5))
            steps.append(A.RandomBrightnessContrast(p=0.5))
            steps.append(A.RandomScale(scale_limit=aug.scale_limit, p=1.0))
        steps += [
            A.PadIfNeeded(
                height, width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index
            ),
            A.RandomCrop(height, width),
        ]
    return A.Compose(steps + _to_tensors(aug.normalize), seed=seed)


def build_eval_transform(aug: AugmentSpec) -> A.Compose:
    """Normalisation only: evaluation runs on the full image at its label resolution."""
    return A.Compose(_to_tensors(aug.normalize))


def default_eval_transform() -> A.Compose:
    """The evaluation transform with ImageNet statistics (used when none is given)."""
    return build_eval_transform(AugmentSpec())


class RandomStepScale(A.DualTransform):
    """PaddleSeg's ResizeStepScaling: resize by a factor drawn from a grid of scales.

    Args:
        scale_range: smallest and largest factor.
        step: grid spacing; the grid is ``linspace(lo, hi, int((hi - lo) / step + 1))``.
            0 draws the factor uniformly from the range.
    """

    def __init__(self, scale_range: tuple[float, float], step: float, p: float = 1.0) -> None:
        super().__init__(p=p)
        low, high = scale_range
        if low > high:
            raise ValueError(
                f"scale_range {scale_range}: the first value must not exceed the second"
            )
        self.scale_range = (low, high)
        self.step = step
        count = int((high - low) / step + 1) if step > 0 and high > low else 1
        self.scales = tuple(np.linspace(low, high, count).tolist()) if step > 0 else ()

    def get_params(self) -> dict[str, float]:
        if self.scales:
            return {"scale": self.py_random.choice(self.scales)}
        return {"scale": self.py_random.uniform(*self.scale_range)}

    def apply(self, img: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        return cv2.resize(img, _scaled_size(img, scale), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        return cv2.resize(mask, _scaled_size(mask, scale), interpolation=cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_range", "step")


def _scaled_size(array: np.ndarray, scale: float) -> tuple[int, int]:
    height, width = array.shape[:2]
    return max(1, round(scale * width)), max(1, round(scale * height))


class RandomDistort(A.ImageOnlyTransform):
    """PaddleSeg's RandomDistort restricted to brightness, contrast and saturation.

    Each adjustment runs with probability ``prob``, in a random order, with a
    factor uniform in ``[1 - strength, 1 + strength]``, following Pillow's
    ImageEnhance: brightness scales the pixels, contrast blends with the mean
    grey level, saturation blends with the grey image.
    """

    OPERATIONS = ("brightness", "contrast", "saturation")

    def __init__(self, strength: float, prob: float = 0.5, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.strength = strength
        self.prob = prob

    def get_params(self) -> dict[str, Any]:
        order = list(self.OPERATIONS)
        self.py_random.shuffle(order)
        low, high = max(0.0, 1 - self.strength), 1 + self.strength
        factors = {}
        for name in order:
            if self.py_random.random() < self.prob:
                factors[name] = self.py_random.uniform(low, high)
        return {"factors": factors}

    def apply(self, img: np.ndarray, factors: dict[str, float], **params: Any) -> np.ndarray:
        for name, factor in factors.items():
            img = _ENHANCERS[name](img, factor)
        return img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength", "prob")


def _affine_lut(img: np.ndarray, gain: float, offset: float) -> np.ndarray:
    table = np.clip(np.arange(256) * gain + offset, 0, 255)
    return cv2.LUT(img, np.floor(table + 0.5).astype(np.uint8))


def _brightness(img: np.ndarray, factor: float) -> np.ndarray:
    return _affine_lut(img, factor, 0.0)


def _contrast(img: np.ndarray, factor: float) -> np.ndarray:
    mean_grey = math.floor(float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()) + 0.5)
    return _affine_lut(img, factor, (1 - factor) * mean_grey)


def _saturation(img: np.ndarray, factor: float) -> np.ndarray:
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(img, factor, grey, 1 - factor, 0.0)


_ENHANCERS = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation}
