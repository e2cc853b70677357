"""Training-loop and evaluation speed on real CamVid with the camvid-quick protocol.

Targets (issue: one engine for every model), measured side by side in one run:
- the full loop (data loading + augmentation + step) keeps >= 0.85x the throughput of
  bare fwd+bwd+step on pre-loaded tensors, for PP-LiteSeg-T at the quick crop and batch;
- evaluating the 101 CamVid val images with PP-LiteSeg-T takes < 60 s on CPU.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from bench.config import load_suite, resolve_runs
from bench.distributed import DistContext
from bench.layout import RunLayout
from bench.train import Trainer

MIN_LOOP_RATIO = 0.85
MAX_EVAL_SECONDS = 60.0
STEPS = 6


@pytest.fixture(scope="module")
def trainer(real_data_root, tmp_path_factory) -> Trainer:
    runs = resolve_runs(load_suite("camvid-quick"), {"train.iters": 4 * STEPS + 2})
    config = next(run for run in runs if run.model.name == "pp_liteseg_t")
    context = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    trainer = Trainer(
        config, RunLayout(tmp_path_factory.mktemp("run")), real_data_root, context, progress=False
    )
    for index in range(len(trainer.train_set)):  # the suite caches decoded images
        trainer.train_set.load_pair(index)
    return trainer


@pytest.mark.benchmark
def test_full_training_loop_keeps_up_with_bare_steps(benchmark, trainer):
    batches = iter(trainer._train_loader())
    preloaded = next(batches)
    trainer._train_step(*preloaded)  # warm-up

    def bare_step() -> float:
        started = time.perf_counter()
        trainer._train_step(*preloaded)
        return time.perf_counter() - started

    bare_before = [bare_step() for _ in range(STEPS)]
    benchmark.pedantic(lambda: trainer._train_step(*next(batches)), rounds=STEPS, iterations=1)
    bare_after = [bare_step() for _ in range(STEPS)]

    bare = statistics.median(bare_before + bare_after)
    full = benchmark.stats.stats.median
    ratio = bare / full
    benchmark.extra_info.update(bare_step_s=bare, full_step_s=full, ratio=ratio)
    print(f"\ntraining loop: full {full:.3f} s/step, bare {bare:.3f} s/step, ratio {ratio:.3f}")
    assert ratio >= MIN_LOOP_RATIO


@pytest.mark.benchmark
def test_camvid_val_evaluation_time(benchmark, trainer):
    metrics = benchmark.pedantic(trainer.evaluate, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.median
    print(f"\nCamVid val ({metrics.num_images} images) evaluation: {seconds:.1f} s")
    assert metrics.num_images == 101
    assert seconds < MAX_EVAL_SECONDS
