"""Training/evaluation transforms: sizes, nearest-neighbour masks, padding, scales, jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from bench.config import AugmentSpec, CropPass
from bench.data.transforms import (
    LiteSegRandomCrop,
    LiteSegRandomRotate,
    LiteSegRandomScale,
    RandomDistort,
    RandomStepScale,
    build_eval_transform,
    build_train_transform,
    build_train_transforms,
    normalization_stats,
)

IGNORE = 255


def _pair(height: int = 60, width: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = np.zeros((height, width), dtype=np.uint8)
    label[:, width // 3 :] = 3
    label[height // 2 :, :] = 7
    return image, label


@pytest.mark.parametrize("pipeline", ["seed", "paddleseg", "none"])
def test_train_transform_crops_to_size_and_keeps_label_values(pipeline: str) -> None:
    aug = AugmentSpec(pipeline=pipeline, crop_size=(48, 40))
    transform = build_train_transform(aug, IGNORE, seed=1)
    image, label = _pair()
    for _ in range(20):
        out = transform(image=image, mask=label)
        assert isinstance(out["image"], torch.Tensor)
        assert out["image"].shape == (3, 48, 40)
        assert out["image"].dtype == torch.float32
        assert out["mask"].shape == (48, 40)
        assert set(np.unique(out["mask"].numpy())) <= {0, 3, 7, IGNORE}


@pytest.mark.parametrize("pipeline", ["seed", "paddleseg", "none"])
def test_padding_marks_label_as_ignore(pipeline: str) -> None:
    aug = AugmentSpec(
        pipeline=pipeline, crop_size=(200, 200), scale_range=(1.0, 1.0), color_jitter=0.0
    )
    transform = build_train_transform(aug, IGNORE, seed=0)
    image, label = _pair(40, 50)
    out = transform(image=image, mask=label)
    mask = out["mask"].numpy()
    assert (mask == IGNORE).mean() > 0.5
    if pipeline == "paddleseg":
        # PaddleSeg pads bottom/right with the mean colour, which normalises to 0.
        assert mask[0, 0] != IGNORE and mask[-1, -1] == IGNORE
        assert out["image"][:, -1, -1].abs().max() < 0.02


def test_random_step_scale_uses_the_grid_and_nearest_for_masks() -> None:
    scale = RandomStepScale((0.5, 2.0), 0.25)
    assert scale.scales == pytest.approx([0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    image, label = _pair(40, 40)
    heights = set()
    for seed in range(40):
        scale.set_random_seed(seed)
        out = scale(image=image, mask=label)
        heights.add(out["image"].shape[0])
        assert out["mask"].shape == out["image"].shape[:2]
        assert set(np.unique(out["mask"])) <= {0, 3, 7}
    assert heights <= {20, 30, 40, 50, 60, 70, 80}
    assert len(heights) >= 5


@pytest.mark.parametrize(
    ("operation", "enhancer"),
    [
        ("brightness", ImageEnhance.Brightness),
        ("contrast", ImageEnhance.Contrast),
        ("saturation", ImageEnhance.Color),
    ],
)
def test_random_distort_matches_pillow_image_enhance(operation, enhancer) -> None:
    image, _ = _pair()
    for factor in (0.6, 1.4):
        ours = RandomDistort(0.5).apply(image, factors={operation: factor})
        reference = np.asarray(enhancer(Image.fromarray(image)).enhance(factor))
        assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1


def test_random_distort_draws_each_operation_with_its_probability() -> None:
    distort = RandomDistort(0.5)
    distort.set_random_seed(0)
    drawn = [distort.get_params()["factors"] for _ in range(400)]
    for name in RandomDistort.OPERATIONS:
        share = sum(name in factors for factors in drawn) / len(drawn)
        assert 0.4 < share < 0.6
    for factors in drawn:
        assert all(0.5 <= f <= 1.5 for name, f in factors.items() if name != "hue")
        assert -18 <= factors.get("hue", 0.0) <= 18
    assert RandomDistort(0.0, 18.0).get_params()["factors"].keys() <= {"hue"}


def test_seeded_transform_is_reproducible() -> None:
    transform = build_train_transform(AugmentSpec(crop_size=(32, 32)), IGNORE)
    image, label = _pair()
    transform.set_random_seed(5)
    first = transform(image=image, mask=label)
    transform.set_random_seed(5)
    second = transform(image=image, mask=label)
    assert torch.equal(first["image"], second["image"])
    assert torch.equal(first["mask"], second["mask"])


@pytest.mark.parametrize("normalize", ["imagenet", "half"])
def test_eval_transform_normalises_full_image(normalize: str) -> None:
    image, label = _pair(37, 53)
    out = build_eval_transform(AugmentSpec(normalize=normalize))(image=image, mask=label)
    assert out["image"].shape == (3, 37, 53)
    assert torch.equal(out["mask"], torch.from_numpy(label))
    mean, std = normalization_stats(normalize)
    expected = (image[..., 0] / 255.0 - mean[0]) / std[0]
    assert np.allclose(out["image"][0].numpy(), expected, atol=1e-4)


def paddleseg_hue(image: np.ndarray, delta: float) -> np.ndarray:
    """paddleseg/transforms/functional.py ``hue``, restated: numpy casts the float sum
    back into the uint8 HSV array."""
    hsv = np.array(Image.fromarray(image).convert("HSV"))
    hsv[:, :, 0] = hsv[:, :, 0] + delta
    return np.array(Image.fromarray(hsv, mode="HSV").convert("RGB"))


@pytest.mark.parametrize("delta", [-17.9, -3.5, -0.5, 0.7, 12.2, 18.0])
def test_hue_jitter_matches_paddleseg(delta: float) -> None:
    image, _ = _pair()
    ours = RandomDistort(0.5, 18.0).apply(image, factors={"hue": delta})
    assert np.array_equal(ours, paddleseg_hue(image, delta))


def test_hue_shift_by_hand() -> None:
    red, grey = [255, 0, 0], [90, 90, 90]
    image = np.array([[red, grey]], dtype=np.uint8)
    distort = RandomDistort(0.0, 128.0)
    # Pillow's hue runs 0..255 for 0..360 degrees: +85 turns red to green, +170 to blue;
    # the shift is truncated toward zero, so -0.5 leaves red alone; grey has no hue.
    assert distort.apply(image, factors={"hue": 85.3}).tolist() == [[[0, 255, 0], grey]]
    assert distort.apply(image, factors={"hue": 170.9}).tolist() == [[[0, 0, 255], grey]]
    assert distort.apply(image, factors={"hue": -0.5}).tolist() == [[red, grey]]


def _liteseg_aug(**changes) -> AugmentSpec:
    passes = (CropPass(crop_size=(24, 32), rotate_degrees=5.0), CropPass(crop_size=(40, 48)))
    return AugmentSpec(pipeline="liteseg", passes=passes, scale_range=(0.5, 0.8), **changes)


def test_liteseg_pipeline_has_one_transform_per_pass_with_its_crop() -> None:
    transforms = build_train_transforms(_liteseg_aug(), IGNORE)
    assert len(transforms) == 2
    image, label = _pair(60, 80)
    for seed in range(20):
        for transform, (height, width) in zip(transforms, [(24, 32), (40, 48)], strict=True):
            transform.set_random_seed(seed)
            out = transform(image=image, mask=label)
            assert out["image"].shape == (3, height, width)
            assert set(np.unique(out["mask"].numpy())) <= {0, 3, 7, IGNORE}
        # No padding: only the rotated first pass can hold void pixels.
        assert IGNORE not in out["mask"]


def test_liteseg_scale_truncates_the_size() -> None:
    image, label = _pair(61, 83)
    out = LiteSegRandomScale((0.55, 0.55))(image=image, mask=label)
    assert out["image"].shape[:2] == out["mask"].shape == (33, 45)  # int(33.55), int(45.65)


def test_liteseg_crop_resizes_small_images_to_the_crop_and_crops_large_ones() -> None:
    image, label = _pair(40, 50)
    out = LiteSegRandomCrop((50, 60))(image=image, mask=label)
    resized = Image.fromarray(image).resize((60, 50), Image.BILINEAR)
    assert np.array_equal(out["image"], np.asarray(resized))
    assert np.array_equal(out["mask"], np.asarray(Image.fromarray(label).resize((60, 50), 0)))
    crop = LiteSegRandomCrop((20, 30))
    crop.set_random_seed(4)
    out = crop(image=image, mask=label)
    top, left = next(
        (y, x)
        for y in range(21)
        for x in range(21)
        if np.array_equal(image[y : y + 20, x : x + 30], out["image"])
    )
    assert np.array_equal(out["mask"], label[top : top + 20, left : left + 30])


def _official_rotated_mask(mask: np.ndarray, angle: float) -> np.ndarray:
    """tahaemara/LiteSeg RandomRotate's mask: RGBA rotation composited over white."""
    rgba = Image.fromarray(mask).convert("RGBA")
    rotated = rgba.rotate(angle, Image.NEAREST)
    white = Image.new("RGBA", rotated.size, (255,) * 4)
    return np.asarray(Image.composite(rotated, white, rotated).convert("L"))


@pytest.mark.parametrize("angle", [-5.0, 2.5, 4.9])
def test_liteseg_rotation_matches_the_official_code(angle: float) -> None:
    image, label = _pair(40, 60)
    rotate = LiteSegRandomRotate(5.0, IGNORE)
    rotated_mask = rotate.apply_to_mask(label, angle=angle)
    assert np.array_equal(rotated_mask, _official_rotated_mask(label, angle))
    assert (rotated_mask == IGNORE).any()  # the corners turned in from outside are void
    expected = np.asarray(Image.fromarray(image).rotate(angle, Image.BILINEAR))
    assert np.array_equal(rotate.apply(image, angle=angle), expected)
