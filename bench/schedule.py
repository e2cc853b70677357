"""How long a run trains, where a step falls in its epochs, and its learning rate.

One *epoch* is ``passes`` passes over the training split (LiteSeg's multi-crop
epoch has four, every other pipeline one); each pass is shuffled anew and cut
into batches. Optimizer step ``s`` is batch ``s % batches_per_pass`` of round
``s // batches_per_pass``, and round ``r`` is pass ``r % passes`` of epoch
``r // passes``. With one pass a round is an epoch, as before passes existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.utils.data import DistributedSampler

from bench.config import OptimSpec, RunConfig
from bench.errors import ConfigError


def samples_per_rank(dataset_size: int, world_size: int, drop_last: bool) -> int:
    """Images one process sees per pass (``DistributedSampler``'s count: with
    ``drop_last`` the tail that does not divide evenly is dropped, otherwise padded)."""
    sampler = DistributedSampler(
        range(dataset_size), num_replicas=world_size, rank=0, shuffle=False, drop_last=drop_last
    )
    return len(sampler)


@dataclass(frozen=True)
class EpochLayout:
    """The steps of one epoch: ``passes`` rounds of ``batches_per_pass`` batches.

    Args:
        passes: passes over the training split per epoch.
        batches_per_pass: optimizer steps per pass.
        last_batch_size: images per process in a pass's last batch (smaller than the
            batch when ``drop_last`` is off and the split does not divide evenly).
    """

    passes: int
    batches_per_pass: int
    last_batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return self.passes * self.batches_per_pass

    def locate(self, step: int) -> tuple[int, int, int]:
        """``(epoch, pass, batch)`` of optimizer step ``step`` (all 0-based)."""
        round_index, batch = divmod(step, self.batches_per_pass)
        epoch, pass_index = divmod(round_index, self.passes)
        return epoch, pass_index, batch


def epoch_layout(
    dataset_size: int,
    batch_size: int,
    *,
    passes: int = 1,
    world_size: int = 1,
    drop_last: bool = True,
) -> EpochLayout:
    """Batches of one pass over ``dataset_size`` images at a global ``batch_size``.

    With ``drop_last`` a pass has ``floor(per_rank / per_rank_batch)`` batches
    (PaddleSeg's ``DistributedBatchSampler(drop_last=True)``, ``paddleseg/core/train.py``),
    otherwise ``ceil`` (a plain ``DataLoader(shuffle=True)`` as in tahaemara/LiteSeg
    ``train.py``). Raises :class:`ConfigError` when no full batch fits.
    """
    per_rank_batch = batch_size // world_size
    per_rank = samples_per_rank(dataset_size, world_size, drop_last)
    if drop_last:
        layout = EpochLayout(passes, per_rank // per_rank_batch, per_rank_batch)
    else:
        batches = math.ceil(per_rank / per_rank_batch)
        layout = EpochLayout(passes, batches, per_rank - (batches - 1) * per_rank_batch)
    if layout.batches_per_pass == 0:
        raise ConfigError(
            f"train.batch_size ({batch_size}) is larger than the training split "
            f"({dataset_size} images); lower train.batch_size"
        )
    if layout.last_batch_size == 1 < per_rank_batch:
        raise ConfigError(
            f"with train.drop_last = false the last batch of every pass holds 1 image "
            f"({dataset_size} images, batch {batch_size}), which batch norm cannot train on; "
            "set train.drop_last = true or change train.batch_size"
        )
    return layout


def run_epochs(cfg: RunConfig, dataset_size: int, world_size: int = 1) -> EpochLayout:
    """The epoch layout of ``cfg`` for a training split of ``dataset_size`` images."""
    return epoch_layout(
        dataset_size,
        cfg.train.batch_size,
        passes=cfg.augment.passes_per_epoch(),
        world_size=world_size,
        drop_last=cfg.train.drop_last,
    )


def total_steps(cfg: RunConfig, layout: EpochLayout) -> int:
    """Optimizer steps of the run: ``train.epochs`` whole epochs when set, else ``train.iters``."""
    if cfg.train.epochs is None:
        return cfg.train.iters
    return cfg.train.epochs * layout.steps_per_epoch


def lr_at(step: int, total: int, spec: OptimSpec, steps_per_epoch: int = 1) -> float:
    """Learning rate of ``step`` of a ``total``-step run.

    Default: linear warm-up, then poly decay over the remaining steps, as PaddleSeg's
    LinearWarmup(PolynomialDecay): warm-up goes from ``warmup_start_lr`` to ``lr``; the
    decay then restarts its step count. With ``spec.poly_step_epochs``: LiteSeg's
    stepped poly (:func:`stepped_poly_epoch`), where ``steps_per_epoch`` defines epochs.
    """
    if spec.poly_step_epochs is not None:
        epoch = stepped_poly_epoch(step // steps_per_epoch, spec.poly_step_epochs)
        if epoch is None:
            return spec.lr
        progress = min(epoch * steps_per_epoch / total, 1.0)
        return (spec.lr - spec.end_lr) * (1 - progress) ** spec.poly_power + spec.end_lr
    if step < spec.warmup_iters:
        return spec.warmup_start_lr + (spec.lr - spec.warmup_start_lr) * step / spec.warmup_iters
    decay_steps = max(total - spec.warmup_iters, 1)
    progress = min(step - spec.warmup_iters, decay_steps) / decay_steps
    return (spec.lr - spec.end_lr) * (1 - progress) ** spec.poly_power + spec.end_lr


def stepped_poly_epoch(epoch: int, period: int) -> int | None:
    """The epoch whose poly value holds during ``epoch`` under LiteSeg's stepped schedule.

    tahaemara/LiteSeg ``train.py`` sets ``lr = lr_poly(base, e, nEpochs, 0.9)`` at the
    start of every epoch ``e`` with ``e % period == period - 1`` (``p['epoch_size'] = 5``)
    and keeps it until the next such epoch; before the first one the base rate holds
    (None here).
    """
    latest = (epoch + 1) // period * period - 1
    return latest if latest >= 0 else None


def restarts_optimizer(step: int, spec: OptimSpec, steps_per_epoch: int) -> bool:
    """Whether the official LiteSeg code re-creates its SGD optimizer (fresh momentum)
    right before ``step``: the first step of an epoch where the stepped rate changes."""
    if spec.poly_step_epochs is None or step % steps_per_epoch:
        return False
    epoch = step // steps_per_epoch
    return epoch % spec.poly_step_epochs == spec.poly_step_epochs - 1
