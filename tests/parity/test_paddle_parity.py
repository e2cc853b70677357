"""Our PP-LiteSeg equals PaddleSeg's, weight for weight, on the same input.

The official model (paddleseg 2.8.0, the configs of ``configs/pp_liteseg/*.yml``) gets seeded
random weights and BN statistics, is saved with ``paddle.save`` and loaded with
:func:`architectures.weights.load_official` (no Paddle involved in loading). Outputs must agree
to max|diff| <= 1e-4 * std(official output): eval logits and all three training heads, at
512x1024 and at 360x481 (not a multiple of 32).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from architectures import create_model, model_meta
from architectures.backbones.stdc import STDC_IMAGENET_UNUSED_PREFIXES
from architectures.pp_liteseg import SpatialUAFM
from architectures.weights import load_official

pytestmark = pytest.mark.parity

SKIP_REASON = "parity tests need paddlepaddle and paddleseg (run `nox -s parity`)"
paddle = pytest.importorskip("paddle", reason=SKIP_REASON)
paddleseg_models = pytest.importorskip("paddleseg.models", reason=SKIP_REASON)
paddleseg_backbones = pytest.importorskip("paddleseg.models.backbones", reason=SKIP_REASON)

logger = logging.getLogger(__name__)

RELATIVE_TOLERANCE = 1e-4
# With batch statistics every BN divides by a variance computed in float32 from few values
# (n = 160 at stride 32 here), and the two frameworks compute it differently: one BN already
# differs by ~5e-5 * std, and ~40 of them in a row reach ~2e-4. Treating the variance as
# unbiased instead of biased would be off by far more (sqrt(160/159) - 1 = 3e-3 per layer).
BATCH_STATS_TOLERANCE = 1e-3
# configs/pp_liteseg/pp_liteseg_stdc{1,2}_*.yml; B uses the PPLiteSeg class defaults.
OFFICIAL_CONFIGS = {
    "t": {"backbone": "STDC1", "arm_out_chs": [32, 64, 128], "seg_head_inter_chs": [32, 64, 64]},
    "b": {"backbone": "STDC2"},
}
ARM_TYPES = {"spatial": "UAFM_SpAtten", "channel": "UAFM_ChAtten", "add": "UAFM"}
# (variant, num_classes, fusion), input size: T and B each meet 19 and 11 classes.
# The official variants at both sizes; the other fusions at the odd size only (runtime).
CASES = [
    (("t", 19, "spatial"), (512, 1024)),
    (("t", 19, "spatial"), (360, 481)),
    (("b", 11, "spatial"), (512, 1024)),
    (("b", 11, "spatial"), (360, 481)),
    (("t", 11, "channel"), (360, 481)),
    (("b", 19, "add"), (360, 481)),
]


def _official(variant: str, num_classes: int, fusion: str) -> Any:
    config = dict(OFFICIAL_CONFIGS[variant])
    backbone = getattr(paddleseg_backbones, config.pop("backbone"))()
    return paddleseg_models.PPLiteSeg(
        num_classes=num_classes, backbone=backbone, arm_type=ARM_TYPES[fusion], **config
    )


@pytest.fixture(scope="module")
def model_pair(randomized: Callable[..., Path]) -> Callable[..., tuple[Any, nn.Module]]:
    """(official, ours) for a case, built once per module: ours is loaded from the saved file."""

    @cache
    def build(variant: str, num_classes: int, fusion: str) -> tuple[Any, nn.Module]:
        official = _official(variant, num_classes, fusion)
        path = randomized(official, seed=num_classes, name=f"{variant}_{num_classes}_{fusion}")
        ours = load_official(f"pp_liteseg_{variant}", path, num_classes=num_classes, fusion=fusion)
        return official, ours

    return build


def _image(size: tuple[int, int], batch: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, 3, *size)).astype(np.float32)


@contextmanager
def _train_with_running_stats(official: Any, ours: nn.Module) -> Iterator[None]:
    """Training forward (three heads) with BN normalising by its running statistics."""
    official.train()
    ours.train()
    for layer in official.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm2D, paddle.nn.SyncBatchNorm)):
            layer.eval()
    for module in ours.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    try:
        yield
    finally:
        official.eval()
        ours.eval()


def _run_both(official: Any, ours: nn.Module, image: np.ndarray) -> tuple[list, list]:
    with torch.no_grad():
        mine = ours(torch.from_numpy(image))
    theirs = official(paddle.to_tensor(image))
    mine = list(mine) if isinstance(mine, tuple) else [mine]
    return [t.numpy() for t in theirs], [m.numpy() for m in mine]


def assert_parity(
    official: np.ndarray, ours: np.ndarray, what: str, tolerance: float = RELATIVE_TOLERANCE
) -> None:
    """max|ours - official| <= tolerance * std(official), on outputs with a sane spread."""
    assert ours.shape == official.shape, f"{what}: shape {ours.shape} != {official.shape}"
    std = float(official.std())
    assert 1e-2 < std < 1e4, f"{what}: official output std {std:.3g} is degenerate"
    diff = float(np.abs(ours - official).max())
    logger.info("%s: max|diff| %.3g, std %.3g, ratio %.3g", what, diff, std, diff / std)
    assert diff <= tolerance * std, f"{what}: max|diff| {diff:.3g} > {tolerance} * std {std:.3g}"


@pytest.mark.parametrize(
    ("case", "size"),
    CASES,
    ids=[f"{'-'.join(map(str, case))}-{h}x{w}" for case, (h, w) in CASES],
)
def test_eval_and_training_heads_match_official(model_pair, case, size):
    official, ours = model_pair(*case)
    image = _image(size, batch=1 if size == (512, 1024) else 2)
    official.eval()
    ours.eval()
    theirs, mine = _run_both(official, ours, image)
    assert len(theirs) == len(mine) == 1
    assert_parity(theirs[0], mine[0], f"{case} {size} eval")
    with _train_with_running_stats(official, ours):
        theirs, mine = _run_both(official, ours, image)
    assert len(theirs) == len(mine) == 3
    for head, (their_logits, my_logits) in enumerate(zip(theirs, mine, strict=True)):
        assert_parity(their_logits, my_logits, f"{case} {size} train head {head}")


def test_training_with_batch_statistics_matches_official(model_pair):
    """BN in train mode on both sides: same outputs and the same running-mean update.

    The running variance is compared loosely: Paddle updates it with the biased batch
    variance, PyTorch with the unbiased one (factor n/(n-1), n = batch*H*W per layer).
    """
    official, ours = model_pair("t", 19, "spatial")
    official_backup = {k: v.numpy().copy() for k, v in official.state_dict().items()}
    ours_backup = {k: v.clone() for k, v in ours.state_dict().items()}
    try:
        official.train()
        ours.train()
        theirs, mine = _run_both(official, ours, _image((256, 320), batch=2, seed=1))
        for head, (their_logits, my_logits) in enumerate(zip(theirs, mine, strict=True)):
            assert_parity(
                their_logits, my_logits, f"batch-stats train head {head}", BATCH_STATS_TOLERANCE
            )
        their_stats, _ = model_meta("pp_liteseg_t").converter(
            {key: torch.from_numpy(value.numpy()) for key, value in official.state_dict().items()}
        )
        my_stats = ours.state_dict()
        means = [key for key in my_stats if key.endswith("running_mean")]
        assert len(means) == 48, "every BN layer of PP-LiteSeg-T"
        for key in means:
            np.testing.assert_allclose(
                my_stats[key], their_stats[key], rtol=1e-3, atol=1e-5, err_msg=key
            )
            variance = key.replace("running_mean", "running_var")
            np.testing.assert_allclose(
                my_stats[variance], their_stats[variance], rtol=1e-2, err_msg=variance
            )
    finally:
        official.set_state_dict(official_backup)
        ours.load_state_dict(ours_backup)
        official.eval()
        ours.eval()


def test_paper_equation_for_alpha_is_caught(model_pair, monkeypatch):
    """Negative control: weighting the upsampled feature by alpha (the paper's equation)
    instead of the low-level one (the code) must fail the parity check."""
    official, ours = model_pair("t", 19, "spatial")

    def swapped_fuse(self, x, y):
        alpha = torch.sigmoid(self.attention(self.statistics(x, y)))
        return y * alpha + x * (1 - alpha)

    monkeypatch.setattr(SpatialUAFM, "fuse", swapped_fuse)
    official.eval()
    ours.eval()
    theirs, mine = _run_both(official, ours, _image((128, 192)))
    with pytest.raises(AssertionError, match=r"max\|diff\|"):
        assert_parity(theirs[0], mine[0], "paper alpha")


@pytest.mark.parametrize(("variant", "backbone"), [("t", "STDC1"), ("b", "STDC2")])
def test_imagenet_backbone_file_loads_into_encoder(randomized, variant, backbone):
    official = getattr(paddleseg_backbones, backbone)()
    rng = np.random.default_rng(7)
    classifier = {
        "conv_last.conv.weight": rng.normal(size=(1024, 1024, 1, 1)),
        "fc.weight": rng.normal(size=(1024, 1024)),
        "linear.weight": rng.normal(size=(1024, 1000)),
    }
    assert all(key.startswith(STDC_IMAGENET_UNUSED_PREFIXES) for key in classifier)
    path = randomized(
        official,
        seed=3,
        name=f"imagenet_{backbone}",
        extra={key: value.astype(np.float32) for key, value in classifier.items()},
    )
    ours = load_official(f"pp_liteseg_{variant}", path).eval()
    official.eval()
    image = _image((360, 481), batch=1, seed=2)
    with torch.no_grad():
        mine = ours.backbone(torch.from_numpy(image))
    theirs = official(paddle.to_tensor(image))  # [x2, x4, x8, x16, x32]
    assert list(mine) == [2, 4, 8, 16, 32] and len(theirs) == 5
    for stride, their_feature in zip(mine, theirs, strict=True):
        assert_parity(their_feature.numpy(), mine[stride].numpy(), f"{backbone} stride {stride}")


@pytest.mark.parametrize("variant", ["t", "b"])
def test_trainable_parameter_count_matches_official(variant):
    official = _official(variant, 19, "spatial")
    theirs = sum(int(p.numel()) for p in official.parameters() if not p.stop_gradient)
    ours = create_model(f"pp_liteseg_{variant}", 19)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == theirs
    assert model_meta(f"pp_liteseg_{variant}").params.train == theirs
