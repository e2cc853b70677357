"""Epoch layout, step counts from epochs, LiteSeg's stepped poly and the pass-aware sampler."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bench.config import AugmentSpec, CropPass, LossSpec, OptimSpec
from bench.errors import ConfigError
from bench.schedule import epoch_layout, lr_at, restarts_optimizer, stepped_poly_epoch
from bench.train import ResumableBatchSampler, sample_seed


def test_epoch_layout_rounds_down_with_drop_last_and_up_without() -> None:
    # The seed's VOC reading: SBD train (8,498 images) at batch 32.
    kept = epoch_layout(8498, 32)
    assert (kept.batches_per_pass, kept.last_batch_size, kept.steps_per_epoch) == (265, 32, 265)
    assert 121 * kept.steps_per_epoch == 32065
    # LiteSeg on Cityscapes: 2,975 images, batch 4, four passes, DataLoader without drop_last.
    liteseg = epoch_layout(2975, 4, passes=4, drop_last=False)
    assert (liteseg.batches_per_pass, liteseg.last_batch_size) == (744, 3)
    assert 100 * liteseg.steps_per_epoch == 297_600


def test_epoch_layout_under_ddp_counts_per_process() -> None:
    # DistributedSampler gives each of 3 processes ceil(10 / 3) = 4 (padded) or 3 images.
    assert epoch_layout(10, 3, world_size=3, drop_last=True).batches_per_pass == 3
    padded = epoch_layout(10, 6, world_size=3, drop_last=False)
    assert (padded.batches_per_pass, padded.last_batch_size) == (2, 2)


def test_epoch_layout_refuses_batches_that_cannot_train() -> None:
    with pytest.raises(ConfigError, match=r"lower train\.batch_size"):
        epoch_layout(3, 4)
    with pytest.raises(ConfigError, match=r"train\.drop_last"):
        epoch_layout(9, 4, drop_last=False)  # last batch: 1 image


def test_locate_maps_steps_to_epoch_pass_and_batch() -> None:
    layout = epoch_layout(10, 4, passes=4, drop_last=False)  # 3 batches per pass
    assert layout.locate(0) == (0, 0, 0)
    assert layout.locate(5) == (0, 1, 2)
    assert layout.locate(12) == (1, 0, 0)


def test_lr_warmup_then_poly_decay() -> None:
    spec = OptimSpec(lr=0.1, warmup_iters=10, warmup_start_lr=0.0, poly_power=1.0)
    assert lr_at(0, 110, spec) == 0.0
    assert lr_at(5, 110, spec) == pytest.approx(0.05)
    assert lr_at(10, 110, spec) == pytest.approx(0.1)
    assert lr_at(60, 110, spec) == pytest.approx(0.05)
    assert lr_at(110, 110, spec) == pytest.approx(0.0)


def _official_liteseg_lrs(base: float, epochs: int, period: int) -> list[float]:
    """The per-epoch rate of tahaemara/LiteSeg train.py, replayed literally."""
    rates, current = [], base
    for epoch in range(epochs):
        if epoch % period == period - 1:
            current = base * (1 - epoch / epochs) ** 0.9
        rates.append(current)
    return rates


def test_stepped_poly_matches_the_official_epoch_loop() -> None:
    spec = OptimSpec(lr=1e-7, poly_step_epochs=5, poly_power=0.9, warmup_iters=0)
    steps_per_epoch = 7
    total = 100 * steps_per_epoch
    official = _official_liteseg_lrs(1e-7, 100, 5)
    for epoch in range(100):
        for step in (epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch - 1):
            assert lr_at(step, total, spec, steps_per_epoch) == pytest.approx(official[epoch])
    assert stepped_poly_epoch(3, 5) is None and stepped_poly_epoch(4, 5) == 4
    assert stepped_poly_epoch(8, 5) == 4 and stepped_poly_epoch(9, 5) == 9


def test_optimizer_restarts_where_the_official_code_recreates_it() -> None:
    spec = OptimSpec(poly_step_epochs=5, poly_step_resets_momentum=True)
    restarts = [step for step in range(0, 30 * 3) if restarts_optimizer(step, spec, 3)]
    assert restarts == [4 * 3, 9 * 3, 14 * 3, 19 * 3, 24 * 3, 29 * 3]
    assert not restarts_optimizer(12, OptimSpec(), 3)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        (lambda: OptimSpec(poly_step_epochs=5, warmup_iters=10), "warm-up"),
        (lambda: OptimSpec(poly_step_resets_momentum=True), "poly_step_epochs"),
        (lambda: LossSpec(kind="ohem", reduction="sum_per_image"), "kind 'ce' only"),
        (lambda: AugmentSpec(passes=()), "passes"),
        (lambda: CropPass(crop_size=(8, 8), rotate_degrees=-1), "rotate_degrees"),
    ],
)
def test_invalid_recipe_settings_are_rejected_with_the_key(spec, key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        spec()


def test_passes_per_epoch_counts_liteseg_passes_only() -> None:
    assert AugmentSpec(pipeline="liteseg").passes_per_epoch() == 4
    assert AugmentSpec(pipeline="paddleseg").passes_per_epoch() == 1


def _batches(**kwargs) -> list[list[tuple[int, int, int]]]:
    common = dict(seed=3, rank=0, world_size=1, start_step=0, passes=3, drop_last=False)
    return [list(batch) for batch in ResumableBatchSampler(10, 4, **{**common, **kwargs})]


def test_sampler_walks_passes_with_a_smaller_last_batch_and_resumes_exactly() -> None:
    full = _batches(total_steps=20)  # 3 batches per pass (4, 4, 2), 9 steps per epoch
    assert [len(batch) for batch in full[:4]] == [4, 4, 2, 4]
    assert [batch[0][2] for batch in full] == [0, 0, 0, 1, 1, 1, 2, 2, 2] * 2 + [0, 0]
    for first in (0, 3, 6):  # every pass covers the whole split once
        indices = [i for batch in full[first : first + 3] for i, _, _ in batch]
        assert sorted(indices) == list(range(10))
    assert _batches(total_steps=20, start_step=7) == full[7:]
    seeds = [seed for batch in full for _, seed, _ in batch]
    assert len(set(seeds)) == len(seeds)  # every (epoch, pass, position) augments differently


def test_single_pass_sampler_keeps_its_previous_order() -> None:
    # One pass per epoch: the round is the epoch, so runs planned before passes existed
    # keep their batch order and augmentation seeds.
    batches = _batches(total_steps=4, passes=1, drop_last=True)
    assert batches[2][1][1] == sample_seed(3, 1, 1)  # epoch 1 (2 batches/epoch), position 1
