"""Training loop: schedule, data order, resumability, divergence and DDP."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.distributed import DistContext
from bench.execute import read_events
from bench.layout import RunLayout
from bench.locks import read_lock
from bench.train import ResumableBatchSampler, Trainer

SUITE = """
name = "train-test"
seeds = [0]

[protocol.data]
dataset = "synthetic"

[protocol.data.synthetic]
num_train = 16
num_val = 4
image_size = [64, 64]
num_classes = 4

[protocol.augment]
pipeline = "seed"
crop_size = [64, 64]

[protocol.optim]
lr = {lr}
warmup_iters = 2

[protocol.train]
iters = {iters}
batch_size = 4
checkpoint_every = 2
log_every = 1

[protocol.eval]
visualize = [0]

[protocol.profile]
flops_sizes = [[64, 64]]
latency_size = [64, 64]
warmup = 0
repeats = 2

[[variants]]
name = "tiny"
model = "liteseg_mobilenetv2"
"""


def _batches(sampler):
    return [list(batch) for batch in sampler]


def test_batch_order_resumes_exactly_mid_epoch():
    common = dict(seed=3, rank=0, world_size=1, total_steps=11)
    full = _batches(ResumableBatchSampler(10, 3, start_step=0, **common))
    resumed = _batches(ResumableBatchSampler(10, 3, start_step=4, **common))
    assert len(full) == 11 and resumed == full[4:]
    epoch0 = {index for batch in full[:3] for index, _, _ in batch}
    assert len(epoch0) == 9  # drop_last: 3 batches of 3 distinct images per epoch
    assert full[:3] != full[3:6]  # a new order every epoch


def test_ddp_shards_are_disjoint_and_seeds_unique():
    shards = [
        _batches(
            ResumableBatchSampler(12, 3, seed=0, rank=r, world_size=2, start_step=0, total_steps=2)
        )
        for r in range(2)
    ]
    for step in range(2):
        rank0 = {i for i, _, _ in shards[0][step]}
        rank1 = {i for i, _, _ in shards[1][step]}
        assert not rank0 & rank1
    seeds = [s for shard in shards for batch in shard for _, s, _ in batch]
    assert len(set(seeds)) == len(seeds)


def test_batch_larger_than_split_is_a_config_error():
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lower train\.batch_size"):
        ResumableBatchSampler(2, 4, seed=0, rank=0, world_size=1, start_step=0, total_steps=1)


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, **kwargs
    )


def _suite(tmp_path: Path, *, iters: int = 8, lr: float = 0.01) -> Path:
    path = tmp_path / "train-test.toml"
    path.write_text(SUITE.format(iters=iters, lr=lr))
    return path


def _run_dirs(out: Path) -> list[Path]:
    return sorted((out / "train-test" / "runs").iterdir())


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.numerics
def test_killed_run_resumes_to_identical_result(tmp_path):
    """A SIGKILLed run resumes to the uninterrupted run's metrics, curves and weights, bit for
    bit: both run on this machine, at the same thread count."""
    suite = _suite(tmp_path, iters=40)
    common = ["--data-root", str(tmp_path / "data"), "--device", "cpu", "--no-progress"]
    reference = _cli("run", str(suite), "--out", str(tmp_path / "ref"), *common)
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", str(suite), "--out", str(out), *common],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = out / "train-test" / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = list(checkpoint.glob("*/checkpoint.pt")) if checkpoint.exists() else []
        if found and torch.load(found[0], weights_only=True)["step"] >= 6:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (run_dir,) = _run_dirs(out)
    assert not (run_dir / "result.json").exists()
    stale = read_lock(RunLayout(run_dir).lock)
    assert stale is not None and stale.pid == process.pid, "the killed worker's claim is left"
    status = _cli("status", str(suite), "--out", str(out)).stdout
    assert f"partial, stale claim of {stale.host}:{process.pid}" in status

    resumed = _cli("run", str(suite), "--out", str(out), *common)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run_dir / "result.json").read_text())
    (ref_dir,) = _run_dirs(tmp_path / "ref")
    ref_record = json.loads((ref_dir / "result.json").read_text())
    assert record["training"]["resumed_from"] >= 6
    claims = [e for e in read_events(RunLayout(run_dir)) if e["event"] == "claimed"]
    assert [claim["previous_status"] for claim in claims] == ["missing", "partial"]
    assert str(process.pid) in claims[1]["took_over"]
    assert record["metrics"] == ref_record["metrics"]
    assert record["training"]["curves"]["loss"] == ref_record["training"]["curves"]["loss"]
    weights = torch.load(run_dir / "model_final.pt", weights_only=True)
    ref_weights = torch.load(ref_dir / "model_final.pt", weights_only=True)
    assert all(torch.equal(weights[key], ref_weights[key]) for key in ref_weights)

    again = _cli("run", str(suite), "--out", str(out), *common)
    assert again.returncode == 0 and "0 to do" in again.stderr


@pytest.mark.slow
def test_diverging_run_is_marked_failed_and_keeps_last_good_checkpoint(tmp_path):
    suite = _suite(tmp_path, iters=30, lr=1e12)
    out = tmp_path / "out"
    common = ["--out", str(out), "--data-root", str(tmp_path / "data"), "--device", "cpu"]
    result = _cli("run", str(suite), *common, "--no-progress")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (run_dir,) = _run_dirs(out)
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "failed"
    assert "NaN" in record["error"] or "nan" in record["error"] or "inf" in record["error"]
    assert "Lower optim.lr" in record["error"]
    if (run_dir / "checkpoint.pt").exists():
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
        assert all(
            torch.isfinite(value).all() for value in state.values() if value.is_floating_point()
        )
    skipped = _cli("run", str(suite), *common, "--no-progress")
    assert skipped.returncode == 0 and "0 to do" in skipped.stderr


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.mark.slow
@pytest.mark.numerics
def test_ddp_with_gloo_two_processes_matches_single_process_evaluation(tmp_path):
    """Two gloo processes score the val split as one process scores it with the saved weights.

    Compared image by image, in split order (``ConfusionMatrix.all_reduce``):

    - the labelled pixels of each class (the row sums of an image's confusion matrix) do not
      depend on the logits, so they match on any CPU and at any thread count;
    - the predictions are compared bit for bit, so the reference runs at the workers' thread
      count (1, pinned through OMP_NUM_THREADS): CPU kernels choose their algorithm and split
      their reductions by thread count, and a barely trained model has pixels whose argmax
      flips with the last bits of its logits. Bit-exact only within this machine's run.
    """
    suite = _suite(tmp_path, iters=4)
    out = tmp_path / "out"
    data_root = tmp_path / "data"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "bench.cli", "run", str(suite), "--out", str(out),
        "--data-root", str(data_root), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = _run_dirs(out)
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "done" and record["environment"]["world_size"] == 2
    assert record["environment"]["threads"] == 1

    from architectures import create_model
    from bench.config import load_suite, resolve_runs
    from bench.data import build_dataset
    from bench.data.transforms import build_eval_transform
    from bench.evaluate import evaluate

    (cfg,) = resolve_runs(load_suite(suite))
    model = create_model("liteseg_mobilenetv2", 4)
    model.load_state_dict(torch.load(run_dir / "model_final.pt", weights_only=True))
    val = build_dataset(cfg.data, data_root, "val", transform=build_eval_transform(cfg.augment))
    loader = torch.utils.data.DataLoader(val, batch_size=cfg.eval.batch_size)
    names = record["dataset"]["class_names"]
    with _torch_threads(record["environment"]["threads"]):
        single = evaluate(model, loader, 4, names, spec=cfg.eval)

    def labelled(per_image: list[list[int]]) -> list[list[int]]:
        return [torch.tensor(cells).view(4, 4).sum(dim=1).tolist() for cells in per_image]

    ddp = record["metrics"]
    assert single.num_images == ddp["num_images"] == 4
    assert labelled(ddp["per_image_confusion"]) == labelled(single.per_image_confusion)
    assert ddp["per_image_confusion"] == single.per_image_confusion
    assert (ddp["miou"], ddp["pixel_acc"]) == (single.miou, single.pixel_acc)


def _trainer(tmp_path: Path, updates: dict) -> Trainer:
    from bench.config import load_suite, resolve_runs

    tmp_path.mkdir(parents=True, exist_ok=True)
    (cfg,) = resolve_runs(load_suite(_suite(tmp_path, iters=2)), updates)
    context = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    (tmp_path / "data").mkdir(exist_ok=True)
    return Trainer(cfg, RunLayout(tmp_path / "run"), tmp_path / "data", context, progress=False)


@pytest.mark.numerics  # bf16 convolutions: native with AVX512-BF16 or AMX, emulated on AVX2
def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path):
    trainer = _trainer(tmp_path, {"train.amp": "bf16", "train.channels_last": True})
    outcome = trainer.fit()
    assert outcome.training.curves.loss and all(map(math.isfinite, outcome.training.curves.loss))
    assert 0.0 <= outcome.metrics.pixel_acc <= 1.0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_fp16_needs_cuda(tmp_path):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16"):
        _trainer(tmp_path, {"train.amp": "fp16"})


def _script_evaluations(trainer: Trainer, mious: list) -> None:
    """Real evaluations whose mIoU is replaced by the next scripted value (an exception
    in the list is raised instead, as a crash during that evaluation)."""
    real, values = trainer.evaluate, iter(mious)

    def scripted():
        value = next(values)
        if isinstance(value, Exception):
            raise value
        return real().model_copy(update={"miou": value})

    trainer.evaluate = scripted


def _weights(path: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(path, weights_only=True)
    return payload.get("model", payload)


def _same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
@pytest.mark.numerics
def test_best_evaluation_keeps_its_weights_and_survives_a_crash(tmp_path):
    """The best evaluation's weights are kept, and a run crashed while evaluating resumes to the
    uninterrupted run's weights bit for bit (both runs in this process)."""
    updates = {"train.iters": 3, "train.eval_every": 1, "train.checkpoint_every": 1}
    reference = _trainer(tmp_path / "reference", updates)
    _script_evaluations(reference, [0.5, 0.3, 0.4])  # steps 1, 2 and the final 3
    outcome = reference.fit()
    assert (outcome.best.step, outcome.best.metrics.miou, outcome.metrics.miou) == (1, 0.5, 0.4)
    assert outcome.training.curves.val_step == [1, 2, 3]
    assert outcome.training.curves.val_miou == [0.5, 0.3, 0.4]

    crashed = _trainer(tmp_path / "crashed", updates)
    _script_evaluations(crashed, [0.5, RuntimeError("crash while evaluating step 2")])
    with pytest.raises(RuntimeError, match="crash"):
        crashed.fit()
    checkpoint = torch.load(crashed.checkpoint_path, weights_only=True)
    assert checkpoint["step"] == 1 and checkpoint["best"]["step"] == 1
    best_file = reference.layout.root / outcome.best.weights
    assert _same_weights(_weights(best_file), checkpoint["model"])  # the weights of step 1

    resumed = _trainer(tmp_path / "crashed", updates)
    _script_evaluations(resumed, [0.3, 0.4])
    again = resumed.fit()
    assert again.training.resumed_from == 1
    assert again.best == outcome.best
    assert _same_weights(_weights(resumed.layout.best_weights), _weights(best_file))
    assert _same_weights(again.model.state_dict(), outcome.model.state_dict())


def test_evaluation_runs_in_fp32_when_training_in_bf16(tmp_path):
    trainer = _trainer(tmp_path, {"train.amp": "bf16"})
    seen = []
    trainer.model.register_forward_pre_hook(
        lambda module, args: seen.append((args[0].dtype, torch.is_autocast_enabled("cpu")))
    )
    trainer.evaluate()
    assert seen and set(seen) == {(torch.float32, False)}


def test_epochs_resolve_to_steps_and_the_final_evaluation_can_be_best(tmp_path):
    trainer = _trainer(tmp_path, {"train.epochs": 1, "train.iters": 999})
    assert trainer.epochs.steps_per_epoch == 4  # 16 synthetic images at batch 4
    outcome = trainer.fit()
    training = outcome.training
    assert (training.iters, training.steps_per_epoch, training.epochs) == (4, 4, 1.0)
    assert training.curves.step[-1] == 4
    # No periodic evaluation: the final one is the only candidate, so it is the best.
    assert outcome.best.step == 4 and outcome.best.metrics == outcome.metrics
    assert _same_weights(_weights(trainer.layout.best_weights), outcome.model.state_dict())


# Two rules keep this recipe stable on every CPU (measured with oneDNN's and ATen's AVX2 and
# AVX-512 kernels):
# - Crops of >= 48 px a side, so that the stride-32 maps have >= 2 positions a side.
#   LiteSeg-MobileNetV2 trains its BatchNorms on batch statistics; at a 32 px crop its last
#   stages are 1x1, each of their BatchNorms normalises only the 2 or 3 values of a batch and
#   divides by sqrt(var + eps) with var ~ 0, so the summed loss's gradient is ~1e8 and its
#   direction is set by rounding (the two kernel sets give first-step gradients up to 200 %
#   apart): the loss is NaN at step 5 at lr 1e-7 on AVX-512 and the weights move by 90-210 %
#   at 1e-8. At 64x64 and 48x80 the stride-32 maps are 2x2 and 2x3, every BatchNorm but the
#   image-pooling one normalises >= 8 values, and the kernel sets agree to < 1 %.
# - lr 1e-6. With the summed loss, lr times the pixels per image is the equivalent pixel-mean
#   rate (bench.losses.mean_loss_settings): 1e-6 * 4096 ~ 4e-3, at which the loss falls over
#   the two epochs; steps grow erratic from 3e-5 and stay finite at 1e-4. tahaemara/LiteSeg's
#   1e-7 is for crops of 360x640 to 768x1536 (experiments/recipes/liteseg-cityscapes.toml),
#   56 to 288 times the pixels.
LITESEG_TEST_LR = 1e-6
LITESEG_RECIPE = {
    "data.synthetic.num_train": 5,
    "data.synthetic.image_size": [128, 128],
    "augment.pipeline": "liteseg",
    "augment.passes": [
        {"crop_size": [64, 64], "rotate_degrees": 5.0},
        {"crop_size": [48, 80]},
    ],
    "augment.scale_range": [0.5, 0.8],
    "train.batch_size": 3,  # 5 images: batches of 3 and 2 per pass, 4 steps per epoch
    "train.drop_last": False,
    "train.epochs": 2,
    "train.checkpoint_every": 2,
    "optim.lr": LITESEG_TEST_LR,
    "optim.warmup_iters": 0,
    "optim.poly_step_epochs": 1,
    "optim.poly_step_resets_momentum": True,
    "loss.reduction": "sum_per_image",
}


@pytest.mark.slow
@pytest.mark.numerics
def test_liteseg_recipe_trains_over_its_passes_and_resumes_bit_exactly(tmp_path):
    """Passes, stepped poly and momentum resets of LiteSeg's recipe; a resume across the epoch
    boundary gives the uninterrupted run's weights bit for bit (both runs in this process)."""
    reference = _trainer(tmp_path / "reference", LITESEG_RECIPE)
    assert (reference.epochs.steps_per_epoch, reference.total_steps) == (4, 8)
    sizes = [tuple(images.shape) for images, _ in reference._train_loader()]
    assert sizes[:4] == [(3, 3, 64, 64), (2, 3, 64, 64), (3, 3, 48, 80), (2, 3, 48, 80)]
    outcome = reference.fit()
    # Stepped poly with a period of one epoch: epoch 1 of 2 runs at (1 - 1/2) ** 0.9.
    first, second = LITESEG_TEST_LR, pytest.approx(LITESEG_TEST_LR * 0.5**0.9)
    assert outcome.training.curves.lr == [first] * 4 + [second] * 4
    loss = outcome.training.curves.loss
    assert sum(loss[4:]) < 0.95 * sum(loss[:4])  # it trains: ~14 % lower in epoch 1

    crashed = _trainer(tmp_path / "crashed", LITESEG_RECIPE)
    train_step = crashed._train_step

    def crash_at_step_3(images, labels):
        if crashed.state.step == 3:
            raise RuntimeError("killed")
        return train_step(images, labels)

    crashed._train_step = crash_at_step_3
    with pytest.raises(RuntimeError, match="killed"):
        crashed.fit()
    resumed = _trainer(tmp_path / "crashed", LITESEG_RECIPE)
    again = resumed.fit()  # from step 2, across the epoch boundary's momentum reset
    assert again.training.resumed_from == 2
    assert _same_weights(again.model.state_dict(), outcome.model.state_dict())
    assert again.metrics == outcome.metrics
