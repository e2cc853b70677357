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
- ``"paddleseg"`` (PP-LiteSeg configs, ``paddleseg/transforms/transforms.py``):
  ResizeStepScaling (one of the scales ``scale_range[0]``, ``+scale_step``, ...,
  ``scale_range[1]``, uniformly), RandomPaddingCrop (pad bottom/right, image with
  the mean colour so it normalises to 0, mask ignore; random crop),
  RandomHorizontalFlip (if ``hflip``; ``vflip`` is not part of this recipe),
  RandomDistort with PaddleSeg's defaults: brightness, contrast and saturation
  each in ``1 +- color_jitter``, hue shifted by up to ``hue_jitter``, each with
  probability 0.5, in random order (Pillow ImageEnhance / HSV semantics).
- ``"liteseg"`` (tahaemara/LiteSeg ``train.py`` and
  ``dataloaders/augmentation.py``): one transform per pass of ``passes``, each
  RandomHorizontalFlip (if ``hflip``), RandomScale (factor uniform in
  ``scale_range``, size truncated), RandomCrop to the pass's crop size where an
  image smaller than the crop in either side is resized to the crop instead
  (no padding), RandomRotate by up to the pass's ``rotate_degrees`` (mask void
  outside the rotated image); resizing and rotation with Pillow, as the
  official code.
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
from PIL import Image

from bench.config import AugmentSpec, CropPass

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
    aug: AugmentSpec, ignore_index: int, seed: int | None = None, pass_index: int = 0
) -> A.Compose:
    """The training augmentation of ``aug.pipeline`` followed by normalisation.

    Args:
        aug: recipe and its parameters.
        ignore_index: value of padded (or rotated-in) mask pixels.
        seed: seeds albumentations' random generators (``None``: fresh entropy).
        pass_index: which of ``aug.passes`` (pipeline ``"liteseg"`` only).
    """
    height, width = aug.crop_size
    if aug.pipeline == "liteseg":
        steps = _liteseg_steps(aug, aug.passes[pass_index], ignore_index)
    elif aug.pipeline == "paddleseg":
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
        if aug.color_jitter > 0 or aug.hue_jitter > 0:
            steps.append(RandomDistort(aug.color_jitter, aug.hue_jitter))
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


def build_train_transforms(aug: AugmentSpec, ignore_index: int) -> list[A.Compose]:
    """One training transform per augmentation pass of an epoch (one for most pipelines)."""
    return [
        build_train_transform(aug, ignore_index, pass_index=index)
        for index in range(aug.passes_per_epoch())
    ]


def _liteseg_steps(aug: AugmentSpec, crop: CropPass, ignore_index: int) -> list[A.BasicTransform]:
    steps: list[A.BasicTransform] = [A.HorizontalFlip(p=0.5)] if aug.hflip else []
    steps += [LiteSegRandomScale(aug.scale_range), LiteSegRandomCrop(crop.crop_size)]
    if crop.rotate_degrees > 0:
        steps.append(LiteSegRandomRotate(crop.rotate_degrees, ignore_index))
    return steps


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
    """PaddleSeg's RandomDistort (``paddleseg/transforms/transforms.py``, defaults).

    Brightness, contrast, saturation and hue, each with probability ``prob``, in a
    random order. Brightness, contrast and saturation use a factor uniform in
    ``[1 - strength, 1 + strength]`` with Pillow's ImageEnhance semantics (brightness
    scales the pixels, contrast blends with the mean grey level, saturation blends with
    the grey image). Hue (``paddleseg/transforms/functional.py`` ``hue``) converts to
    Pillow's HSV, adds a shift uniform in ``[-hue_range, hue_range]`` to the 0-255 hue
    channel, truncates toward zero and wraps modulo 256 (what numpy's assignment of
    the float sum into the uint8 array does), and converts back to RGB. An operation
    with a zero range is left out. PaddleSeg's sharpness step has probability 0 by
    default and is not reproduced.

    Args:
        strength: brightness/contrast/saturation range (PaddleSeg's ``*_range``, 0.5).
        hue_range: hue shift range in Pillow's hue units (255 = 360 degrees; default 18).
        prob: probability of each operation (PaddleSeg's ``*_prob``, 0.5).
    """

    OPERATIONS = ("brightness", "contrast", "saturation", "hue")

    def __init__(
        self, strength: float = 0.5, hue_range: float = 18.0, prob: float = 0.5, p: float = 1.0
    ) -> None:
        super().__init__(p=p)
        self.strength = strength
        self.hue_range = hue_range
        self.prob = prob

    def get_params(self) -> dict[str, Any]:
        ranges = {name: (max(0.0, 1 - self.strength), 1 + self.strength) for name in _ENHANCERS}
        ranges["hue"] = (-self.hue_range, self.hue_range)
        order = [name for name in self.OPERATIONS if ranges[name][0] != ranges[name][1]]
        self.py_random.shuffle(order)
        factors = {}
        for name in order:
            if self.py_random.random() < self.prob:
                factors[name] = self.py_random.uniform(*ranges[name])
        return {"factors": factors}

    def apply(self, img: np.ndarray, factors: dict[str, float], **params: Any) -> np.ndarray:
        for name, factor in factors.items():
            img = _hue_shift(img, factor) if name == "hue" else _ENHANCERS[name](img, factor)
        return img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength", "hue_range", "prob")


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


def _hue_shift(img: np.ndarray, delta: float) -> np.ndarray:
    hsv = np.array(Image.fromarray(img).convert("HSV"))
    hsv[..., 0] = np.trunc(hsv[..., 0] + delta).astype(np.int64) % 256
    height, width = img.shape[:2]
    return np.array(Image.frombytes("HSV", (width, height), hsv.tobytes()).convert("RGB"))


_ENHANCERS = {"brightness": _brightness, "contrast": _contrast, "saturation": _saturation}


class LiteSegRandomScale(A.DualTransform):
    """tahaemara/LiteSeg's RandomScale (``dataloaders/augmentation.py``).

    A factor uniform in ``scale_range`` scales both sides to ``int(factor * side)``
    (truncated); Pillow bilinear for the image (which low-pass filters when
    shrinking), nearest for the mask.
    """

    def __init__(self, scale_range: tuple[float, float], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.scale_range = scale_range

    def get_params(self) -> dict[str, float]:
        return {"scale": self.py_random.uniform(*self.scale_range)}

    def apply(self, img: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        return _pil_resize(img, _truncated_size(img, scale), Image.BILINEAR)

    def apply_to_mask(self, mask: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        return _pil_resize(mask, _truncated_size(mask, scale), Image.NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_range",)


def _truncated_size(array: np.ndarray, scale: float) -> tuple[int, int]:
    height, width = array.shape[:2]
    return max(1, int(scale * height)), max(1, int(scale * width))


def _pil_resize(array: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    height, width = size
    return np.array(Image.fromarray(array).resize((width, height), resample))


class LiteSegRandomCrop(A.DualTransform):
    """tahaemara/LiteSeg's RandomCrop (``dataloaders/augmentation.py``), no padding.

    An image of exactly the crop size is kept; one smaller than the crop in height
    or width is resized to the crop size (Pillow bilinear / nearest for the mask,
    aspect ratio not kept); otherwise a crop at a uniform random position.
    """

    def __init__(self, crop_size: tuple[int, int], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.crop_size = crop_size

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        height, width = params["shape"][:2]
        crop_height, crop_width = self.crop_size
        if height < crop_height or width < crop_width:
            return {"origin": None}
        left = self.py_random.randint(0, width - crop_width)
        top = self.py_random.randint(0, height - crop_height)
        return {"origin": (top, left)}

    def apply(self, img: np.ndarray, origin: tuple[int, int] | None, **params: Any) -> np.ndarray:
        return self._crop(img, origin, Image.BILINEAR)

    def apply_to_mask(
        self, mask: np.ndarray, origin: tuple[int, int] | None, **params: Any
    ) -> np.ndarray:
        return self._crop(mask, origin, Image.NEAREST)

    def _crop(self, array: np.ndarray, origin: tuple[int, int] | None, resample: int):
        if origin is None:
            return _pil_resize(array, self.crop_size, resample)
        top, left = origin
        crop_height, crop_width = self.crop_size
        return array[top : top + crop_height, left : left + crop_width]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("crop_size",)


class LiteSegRandomRotate(A.DualTransform):
    """tahaemara/LiteSeg's RandomRotate (``dataloaders/augmentation.py``).

    Rotates counter-clockwise about the centre by an angle uniform in
    ``[-degrees, degrees]``, keeping the size: Pillow bilinear with black outside for
    the image, nearest with ``ignore_index`` outside for the mask (the official code
    composites the rotated mask over white, 255, which is its ignore value).
    """

    def __init__(self, degrees: float, ignore_index: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.degrees = degrees
        self.ignore_index = ignore_index

    def get_params(self) -> dict[str, float]:
        return {"angle": self.py_random.uniform(-self.degrees, self.degrees)}

    def apply(self, img: np.ndarray, angle: float, **params: Any) -> np.ndarray:
        return np.array(Image.fromarray(img).rotate(angle, Image.BILINEAR))

    def apply_to_mask(self, mask: np.ndarray, angle: float, **params: Any) -> np.ndarray:
        rotated = Image.fromarray(mask).rotate(angle, Image.NEAREST, fillcolor=self.ignore_index)
        return np.array(rotated)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("degrees", "ignore_index")
