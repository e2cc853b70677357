"""The training loop every model goes through: one process, or DDP under ``torchrun``.

A run is a pure function of its :class:`~bench.config.RunConfig`: the batch
order and every sample's augmentation are derived from ``(seed, epoch, pass,
position)`` (:mod:`bench.schedule`), and checkpoints hold model, optimizer,
scheduler, scaler and RNG states and the best evaluation so far. A run killed
at any point therefore resumes from its last checkpoint and, on CPU, ends with
the same weights as an uninterrupted run.
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from tqdm import tqdm

from architectures.weights import WeightLoadError, key_mismatch, load_without_code
from bench.config import RunConfig
from bench.data import SegmentationDataset, build_dataset, dataset_info
from bench.data.transforms import build_eval_transform, build_train_transforms
from bench.distributed import DistContext
from bench.errors import ConfigError, NonFiniteOutputs, TrainingDiverged
from bench.evaluate import evaluate, predict_samples
from bench.files import atomic_write_bytes, set_aside
from bench.layout import RunLayout
from bench.losses import build_criterion, weighted_loss
from bench.models import build_model
from bench.results import BestEvaluation, Curves, Metrics, Training
from bench.schedule import epoch_layout, lr_at, restarts_optimizer, run_epochs, total_steps

log = logging.getLogger(__name__)

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    """Give every DataLoader worker its own, reproducible NumPy/Python seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def sample_seed(seed: int, round_index: int, position: int) -> int:
    """The augmentation seed of the sample at ``position`` of a round's order.

    A round is one pass of one epoch (``epoch * passes + pass``, see
    :mod:`bench.schedule`), so the seed derives from (seed, epoch, pass, position); with
    one pass per epoch the round is the epoch.
    """
    return int(np.random.SeedSequence([seed, round_index, position]).generate_state(1)[0])


class SeededSamples(Dataset):
    """Training view of a dataset whose items are ``(index, augmentation_seed, pass)``.

    ``transforms[pass]`` augments the sample; seeding it per sample makes augmentation
    independent of worker count, process count and where a resumed run starts.
    """

    def __init__(self, dataset: SegmentationDataset, transforms: Sequence[A.Compose]) -> None:
        self.dataset = dataset
        self.transforms = list(transforms)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed, pass_index = item
        image, label = self.dataset.load_pair(index)
        transform = self.transforms[pass_index]
        transform.set_random_seed(seed)
        out = transform(image=image, mask=label)
        return _as_tensors(out["image"], out["mask"])


def _as_tensors(image, label) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.as_tensor(image)
    if image.dim() == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)
    return image.float().contiguous(), torch.as_tensor(label).long()


class ResumableBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Yields this process's batches for steps ``start_step .. total_steps - 1``.

    Round ``r`` (pass ``r % passes`` of epoch ``r // passes``; :mod:`bench.schedule`)
    uses ``DistributedSampler(seed=seed)`` order with ``set_epoch(r)`` (one replica
    outside DDP), cut into batches of ``batch_size`` per process; with ``drop_last`` the
    incomplete last batch is dropped, otherwise it is yielded smaller. Items are
    ``(index, augmentation_seed, pass)``.
    """

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        *,
        seed: int,
        rank: int,
        world_size: int,
        start_step: int,
        total_steps: int,
        passes: int = 1,
        drop_last: bool = True,
    ) -> None:
        self.layout = epoch_layout(
            dataset_size,
            batch_size * world_size,
            passes=passes,
            world_size=world_size,
            drop_last=drop_last,
        )
        self.sampler = DistributedSampler(
            range(dataset_size),
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
        )
        self.batch_size = batch_size
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.start_step = start_step
        self.total_steps = total_steps

    def __len__(self) -> int:
        return self.total_steps - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start_step
        batches_per_pass = self.layout.batches_per_pass
        while step < self.total_steps:
            round_index, first = divmod(step, batches_per_pass)
            pass_index = round_index % self.layout.passes
            self.sampler.set_epoch(round_index)
            order = list(self.sampler)
            for batch_index in range(first, batches_per_pass):
                if step >= self.total_steps:
                    return
                start = batch_index * self.batch_size
                yield [
                    (
                        index,
                        sample_seed(
                            self.seed, round_index, (start + k) * self.world_size + self.rank
                        ),
                        pass_index,
                    )
                    for k, index in enumerate(order[start : start + self.batch_size])
                ]
                step += 1


def check_device_support(cfg: RunConfig, device: str, world_size: int = 1, where: str = "") -> None:
    """Reject training settings that ``device`` cannot run (fp16 autocast, SyncBN off CUDA).

    Args:
        cfg: the run.
        device: ``"cpu"`` or ``"cuda"``.
        world_size: processes of the run (SyncBatchNorm matters only above 1).
        where: prefix of error messages (the suite file and variant).
    """
    if cfg.train.amp == "fp16" and device != "cuda":
        raise ConfigError(
            f"{where}train.amp = 'fp16' needs --device cuda; use 'bf16' or 'none' on CPU"
        )
    if cfg.train.sync_bn and world_size > 1 and device != "cuda":
        raise ConfigError(
            f"{where}train.sync_bn needs --device cuda (SyncBatchNorm has no CPU kernel)"
        )


class Progress:
    """A tqdm bar (it/s, ETA, loss, lr) on a terminal; periodic log lines otherwise.

    Log files and CI logs get about ten lines per run instead of a bar redrawn
    with carriage returns.
    """

    def __init__(self, description: str, start: int, total: int, *, enabled: bool) -> None:
        self.description = description
        self.start = self.step = start
        self.total = total
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self.log_every = max(1, (total - start) // 10)
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=total,
            initial=start,
            desc=description,
            unit="it",
            disable=not self.interactive,
            dynamic_ncols=True,
        )

    def advance(self) -> None:
        self.step += 1
        self.bar.update(1)

    def report(self, loss: float, lr: float) -> None:
        """Show the latest windowed loss and learning rate."""
        if self.interactive:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            return
        done = self.step - self.start
        if not self.enabled or (done % self.log_every and self.step != self.total):
            return
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        eta = (self.total - self.step) / rate if rate > 0 else float("inf")
        log.info(
            "%s: step %d/%d  loss %.4f  lr %.2e  %.2f it/s  ETA %s",
            self.description,
            self.step,
            self.total,
            loss,
            lr,
            rate,
            tqdm.format_interval(eta),
        )

    def close(self) -> None:
        self.bar.close()


@dataclass
class TrainState:
    """What a checkpoint holds besides the module/optimizer states."""

    step: int = 0
    train_seconds: float = 0.0
    curves: Curves = field(default_factory=Curves)
    resumed_from: int | None = None
    best: BestEvaluation | None = None


@dataclass
class TrainOutcome:
    """What a finished run hands to the runner.

    ``model`` and ``metrics`` are the final weights and their evaluation (step
    ``training.iters``); ``best`` is the best evaluation of the run (periodic ones and
    the final one), whose weights are in ``RunLayout.best_weights``.
    """

    model: nn.Module
    metrics: Metrics
    training: Training
    predictions: dict[int, np.ndarray]
    best: BestEvaluation | None = None


def _rng_states() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any], previous: Path | None = None) -> None:
    """Atomically write a training checkpoint; the one it replaces moves to ``previous``."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    if previous is not None and path.is_file():
        os.replace(path, previous)
    atomic_write_bytes(path, buffer.getvalue())


CHECKPOINT_KEYS = (
    "run_id", "step", "train_seconds", "curves", "model", "optimizer", "scheduler", "scaler", "rng"
)  # fmt: skip


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without executing code from it (``weights_only=True``).

    Raises:
        UnreadableCheckpoint: the file is not a whole checkpoint of this code (truncated,
            garbage, refused by the safe unpickler, or missing a part).
    """
    try:
        payload = load_without_code(path)
    except WeightLoadError as error:
        raise UnreadableCheckpoint(str(error).removeprefix(f"{path}: ")) from None
    keys = payload.keys() if isinstance(payload, dict) else ()
    missing = [key for key in CHECKPOINT_KEYS if key not in keys]
    if missing:
        raise UnreadableCheckpoint(f"not a training checkpoint (no {', '.join(missing)})")
    return payload


class UnreadableCheckpoint(Exception):
    """A checkpoint file that cannot be resumed from (see :func:`load_checkpoint`)."""


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _finite_parameters(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


class Trainer:
    """Trains and evaluates one :class:`RunConfig` in its run folder (resuming if possible).

    Args:
        cfg: the run.
        layout: the run's files (checkpoint, weights).
        data_root: the datasets folder.
        ctx: this process's place in the (DDP) job.
        progress: show progress (rank 0 only).
        step_callback: called with the step number after every training step, e.g. to
            stop the run when its lock was lost (it raises to stop).

    Attributes set at construction: ``epochs`` (the epoch layout of the training split,
    :func:`bench.schedule.run_epochs`) and ``total_steps`` (``train.iters``, or
    ``train.epochs`` whole epochs).
    """

    def __init__(
        self,
        cfg: RunConfig,
        layout: RunLayout,
        data_root: Path,
        ctx: DistContext,
        *,
        progress: bool = True,
        step_callback: Callable[[int], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.layout = layout
        self.ctx = ctx
        self.progress = progress
        self.step_callback = step_callback
        self.info = dataset_info(cfg.data.dataset, cfg.data.synthetic)
        self.amp_dtype = AMP_DTYPES[cfg.train.amp]
        check_device_support(cfg, ctx.device.type, ctx.world_size)
        if cfg.train.batch_size % ctx.world_size:
            raise ConfigError(
                f"train.batch_size ({cfg.train.batch_size}) must be divisible by the number "
                f"of processes ({ctx.world_size})"
            )
        self.train_set = build_dataset(cfg.data, data_root, cfg.data.train_split)
        self.val_set = build_dataset(
            cfg.data, data_root, cfg.data.val_split, transform=build_eval_transform(cfg.augment)
        )
        self.epochs = run_epochs(cfg, len(self.train_set), ctx.world_size)
        self.total_steps = total_steps(cfg, self.epochs)
        seed_everything(cfg.seed)
        model = build_model(cfg.model, self.info.num_classes, data_root=data_root)
        if cfg.train.sync_bn and ctx.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.memory_format = (
            torch.channels_last if cfg.train.channels_last else torch.preserve_format
        )
        model = model.to(ctx.device, memory_format=self.memory_format)
        if ctx.distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids)
        self.model = model
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            nesterov=cfg.optim.nesterov,
            weight_decay=cfg.optim.weight_decay,
        )
        steps_per_epoch = self.epochs.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_at(step, self.total_steps, cfg.optim, steps_per_epoch) / cfg.optim.lr,
        )
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.train.amp == "fp16")
        self.criterion = build_criterion(cfg.loss, self.info.ignore_index)
        self.state = TrainState()

    @property
    def checkpoint_path(self) -> Path:
        return self.layout.checkpoint

    def _resume(self) -> None:
        """Restore the newest readable checkpoint; one that cannot be read is set aside."""
        set_aside_any = False
        for path in self.layout.checkpoints:
            if not path.is_file():
                continue
            try:
                payload = load_checkpoint(path)
                self._check_fits(path, payload)
            except UnreadableCheckpoint as error:
                set_aside(path, str(error), "training resumes from an earlier state")
                set_aside_any = True
                continue
            self._restore(payload)
            log.info("resuming %s from step %d (%s)", self.cfg.run_id(), self.state.step, path.name)
            return
        if set_aside_any:
            log.warning("run %s: no readable checkpoint; trains from step 0", self.cfg.run_id())

    def _check_fits(self, path: Path, payload: dict[str, Any]) -> None:
        if payload["run_id"] != self.cfg.run_id():
            raise ConfigError(
                f"{path} belongs to run {payload['run_id']}, not "
                f"{self.cfg.run_id()}; delete it to start this run afresh"
            )
        mismatch = key_mismatch(_unwrap(self.model).state_dict(), payload["model"])
        if mismatch:
            raise UnreadableCheckpoint(f"its weights do not fit this run's model: {mismatch}")

    def _restore(self, payload: dict[str, Any]) -> None:
        _unwrap(self.model).load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        _set_rng_states(payload["rng"])
        best = payload.get("best")
        self.state = TrainState(
            step=payload["step"],
            train_seconds=payload["train_seconds"],
            curves=Curves.model_validate(payload["curves"]),
            resumed_from=payload["step"],
            best=None if best is None else BestEvaluation.model_validate(best),
        )

    def _save(self) -> None:
        if not self.ctx.is_main:
            return
        if not _finite_parameters(_unwrap(self.model)):
            raise TrainingDiverged(
                f"run {self.cfg.run_id()}: weights became NaN/inf before step {self.state.step}; "
                f"the last good checkpoint is kept at {self.checkpoint_path}. "
                "Lower optim.lr or check the data."
            )
        best = self.state.best
        save_checkpoint(
            self.checkpoint_path,
            {
                "run_id": self.cfg.run_id(),
                "step": self.state.step,
                "train_seconds": self.state.train_seconds,
                "curves": self.state.curves.model_dump(),
                "best": None if best is None else best.model_dump(),
                "model": _unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": _rng_states(),
            },
            previous=self.layout.previous_checkpoint,
        )

    def _train_loader(self) -> DataLoader:
        per_rank_batch = self.cfg.train.batch_size // self.ctx.world_size
        sampler = ResumableBatchSampler(
            len(self.train_set),
            per_rank_batch,
            seed=self.cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            start_step=self.state.step,
            total_steps=self.total_steps,
            passes=self.epochs.passes,
            drop_last=self.cfg.train.drop_last,
        )
        transforms = build_train_transforms(self.cfg.augment, self.info.ignore_index)
        workers = self.cfg.data.num_workers
        return DataLoader(
            SeededSamples(self.train_set, transforms),
            batch_sampler=sampler,
            num_workers=workers,
            worker_init_fn=_seed_worker,
            pin_memory=self.ctx.device.type == "cuda",
            persistent_workers=workers > 0,
        )

    def _val_loader(self) -> DataLoader:
        shard = Subset(self.val_set, range(self.ctx.rank, len(self.val_set), self.ctx.world_size))
        return DataLoader(shard, batch_size=self.cfg.eval.batch_size, shuffle=False)

    def evaluate(self) -> Metrics:
        """Score the current weights on the whole val split (summed over processes).

        Always in fp32, whatever ``train.amp`` says (mixed precision is for training);
        scale, multi-scale and flip as in ``cfg.eval``.
        """
        if self.ctx.distributed:
            # Batch-norm running statistics are per process (DDP broadcasts rank 0's only
            # before a training forward): score every shard with rank 0's, the ones saved.
            for buffer in _unwrap(self.model).buffers():
                torch.distributed.broadcast(buffer, src=0)
        try:
            return evaluate(
                _unwrap(self.model),
                self._val_loader(),
                self.info.num_classes,
                self.info.class_names,
                ignore_index=self.info.ignore_index,
                device=self.ctx.device,
                channels_last=self.cfg.train.channels_last,
                spec=self.cfg.eval,
            )
        except NonFiniteOutputs as error:
            raise TrainingDiverged(
                f"run {self.cfg.run_id()}: {error} (step {self.state.step}): training "
                "diverged. Lower optim.lr (or use train.amp = 'none') and run again"
            ) from None

    def _evaluate_at(self, step: int) -> Metrics:
        """Evaluate, add the result to the curves, and keep the weights if they are the best.

        As PaddleSeg's ``best_model`` (``paddleseg/core/train.py``): an evaluation
        replaces the best only with a strictly higher mIoU (the earliest wins ties);
        a NaN mIoU never beats a number.
        """
        metrics = self.evaluate()
        self.state.curves.val_step.append(step)
        self.state.curves.val_miou.append(metrics.miou)
        best = self.state.best
        if best is None or _beats(metrics.miou, best.metrics.miou):
            weights = self.layout.relative(self.layout.best_weights)
            self.state.best = BestEvaluation(step=step, metrics=metrics, weights=weights)
            if self.ctx.is_main:
                write_weights(self.layout.best_weights, _unwrap(self.model))
        return metrics

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.to(self.ctx.device, memory_format=self.memory_format, non_blocking=True)
        labels = labels.to(self.ctx.device, non_blocking=True)
        with torch.autocast(
            self.ctx.device.type, self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            outputs = self.model(images)
        loss = weighted_loss(self.criterion, outputs, labels, self.cfg.loss.weights)
        value = loss.item()
        if self.ctx.any_true(not math.isfinite(value)):
            raise TrainingDiverged(
                f"run {self.cfg.run_id()}: loss is {value} at step {self.state.step}; the run is "
                f"marked failed and the last good checkpoint is kept at {self.checkpoint_path}. "
                "Lower optim.lr (or use train.amp = 'none') and run again."
            )
        optim = self.cfg.optim
        if optim.poly_step_resets_momentum and restarts_optimizer(
            self.state.step, optim, self.epochs.steps_per_epoch
        ):
            self.optimizer.state.clear()  # LiteSeg re-creates its SGD optimizer here
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return value

    def fit(self) -> TrainOutcome:
        """Train to :attr:`total_steps` (resuming if a checkpoint exists), then evaluate.

        Periodic evaluations (``train.eval_every``) run before the checkpoint of the same
        step, so a resumed run keeps their curve points and the best evaluation so far.
        """
        self._resume()
        spec = self.cfg.train
        total = self.total_steps
        curves = self.state.curves
        window: list[float] = []
        self.model.train()
        progress = Progress(
            f"{self.cfg.variant} seed {self.cfg.seed}",
            self.state.step,
            total,
            enabled=self.progress and self.ctx.is_main,
        )
        started = time.perf_counter()
        for images, labels in self._train_loader():
            lr = self.optimizer.param_groups[0]["lr"]
            window.append(self._train_step(images, labels))
            self.state.step += 1
            progress.advance()
            step = self.state.step
            if self.step_callback is not None:
                self.step_callback(step)
            if step % spec.log_every == 0 or step == total:
                curves.step.append(step)
                curves.loss.append(float(np.mean(window)))
                curves.lr.append(lr)
                progress.report(curves.loss[-1], lr)
                window.clear()
            evaluate_now = spec.eval_every and step % spec.eval_every == 0 and step < total
            if evaluate_now or step % spec.checkpoint_every == 0 or step == total:
                self.state.train_seconds += time.perf_counter() - started
                if evaluate_now:
                    self._evaluate_at(step)
                    self.model.train()
                self._save()
                started = time.perf_counter()
        progress.close()
        metrics = self._evaluate_at(total)
        model = _unwrap(self.model).eval()
        training = Training(
            iters=total,
            steps_per_epoch=self.epochs.steps_per_epoch,
            epochs=total / self.epochs.steps_per_epoch,
            wall_time_s=self.state.train_seconds,
            images_per_s=total * spec.batch_size / max(self.state.train_seconds, 1e-9),
            final_loss=curves.loss[-1] if curves.loss else float("nan"),
            resumed_from=self.state.resumed_from,
            curves=curves,
        )
        return TrainOutcome(model, metrics, training, self._predictions(model), self.state.best)

    def _predictions(self, model: nn.Module) -> dict[int, np.ndarray]:
        return predict_samples(
            model,
            self.val_set,
            self.cfg.eval.visualize,
            self.cfg.eval,
            device=self.ctx.device,
            channels_last=self.cfg.train.channels_last,
        )

    def save_weights(self, model: nn.Module) -> Path:
        """Keep the final weights (state dict only) next to the record."""
        write_weights(self.layout.final_weights, model)
        return self.layout.final_weights


def _beats(candidate: float, incumbent: float) -> bool:
    if math.isnan(candidate):
        return False
    return math.isnan(incumbent) or candidate > incumbent


def write_weights(path: Path, model: nn.Module) -> None:
    """Atomically save ``model``'s state dict (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
