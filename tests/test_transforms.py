"""Training/evaluation transforms: sizes, nearest-neighbour masks, padding, scales, jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from bench.config import AugmentSpec
from bench.data.transforms import (
    RandomDistort,
    RandomStepScale,
    build_eval_transform,
    build_train_transform,
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
    assert all(0.5 <= f <= 1.5 for factors in drawn for f in factors.values())


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
