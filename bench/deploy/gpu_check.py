"""The GPU latency table in one script (``nox -s gpu``; ``python -m bench.deploy.gpu_check``).

On one CUDA GPU it measures every model at the papers' resolutions (512x1024,
768x1536, 960x720, 360x640) on torch eager / compiled / CUDA graphs in fp32 and fp16,
ONNX Runtime's CUDA execution provider and TensorRT fp32/fp16 (engine only and
end-to-end), plus a mixed-precision channels_last training throughput, and writes
one JSON and one markdown table with the device, driver and versions. Measurements
start in priority order (the papers' methods first) and stop starting once the time
budget is spent; what was left out is listed as skipped, so the script ends in time.

``--dry-run`` does the same on the CPU at tiny sizes with the runtimes present (torch,
ONNX Runtime's CPU provider, OpenVINO), so the script is known to work before a GPU is
at hand; a test runs it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from architectures import create_model, list_models
from bench.config import InferenceOptions
from bench.deploy.runtimes import check_combination
from bench.errors import ConfigError
from bench.files import atomic_write_text
from bench.profile import measure_deployments, random_images
from bench.profile.device import device_name
from bench.results import TIMING_LABELS, Latency

log = logging.getLogger(__name__)

PAPER_SIZES: tuple[tuple[int, int], ...] = ((512, 1024), (768, 1536), (720, 960), (360, 640))
DRY_RUN_SIZES: tuple[tuple[int, int], ...] = ((64, 96),)
NUM_CLASSES = 19
DEFAULT_BUDGET_S = 420.0
EAGER = InferenceOptions(channels_last=True, fold_bn=True)
COMPILED = InferenceOptions(channels_last=True, fold_bn=True, backend="inductor")
GRAPHS = InferenceOptions(channels_last=True, fold_bn=True, cuda_graphs=True)
TORCH_FP32_FP16 = (("torch", "fp32"), ("torch", "fp16"))
PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")


@dataclass(frozen=True)
class Job:
    """One group of measurements timed side by side: some combinations under one torch path."""

    label: str
    options: InferenceOptions
    combinations: tuple[tuple[str, str], ...]


def jobs_for(device: torch.device) -> list[Job]:
    """What to measure per model and size, the papers' methods first."""
    if device.type == "cuda":
        return [
            Job("tensorrt (paper method: PP-LiteSeg)", EAGER, (("tensorrt", "fp32"),)),
            Job(
                "torch eager (paper method: LiteSeg)", EAGER, (("torch", "fp32"), ("torch", "fp16"))
            ),
            Job("tensorrt fp16", EAGER, (("tensorrt", "fp16"),)),
            Job("onnxruntime CUDA EP", EAGER, (("onnxruntime", "fp32"),)),
            Job("torch CUDA graphs", GRAPHS, TORCH_FP32_FP16),
            Job("torch compiled", COMPILED, TORCH_FP32_FP16),
        ]
    return [
        Job("torch eager", EAGER, (("torch", "fp32"),)),
        Job("onnxruntime / openvino", EAGER, (("onnxruntime", "fp32"), ("openvino", "fp32"))),
        Job("torch compiled", COMPILED, (("torch", "fp32"),)),
    ]


def _present(job: Job, device: torch.device) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    kept, reasons = [], []
    for runtime, precision in job.combinations:
        try:
            check_combination(runtime, precision, device)
        except ConfigError as error:
            reasons.append(str(error))
        else:
            kept.append((runtime, precision))
    return tuple(kept), reasons


def _row(model: str, job: Job, latency: Latency) -> dict[str, Any]:
    return {
        "model": model,
        "job": job.label,
        "size": list(latency.input_size),
        "runtime": latency.runtime,
        "runtime_version": latency.runtime_version,
        "backend": latency.backend + (" + CUDA graphs" if latency.cuda_graphs else ""),
        "precision": latency.precision,
        "timing": latency.timing,
        "median_ms": latency.median_ms,
        "iqr_ms": latency.iqr_ms,
        "fps": latency.fps,
        "repeats": latency.repeats,
        "session": latency.session,
    }


def training_throughput(device: torch.device, size: tuple[int, int], batch: int, steps: int):
    """Images/s of SGD steps of PP-LiteSeg-T in mixed precision (fp16 on CUDA, bf16 on CPU)
    with channels_last, on a random batch (the data pipeline is not part of this figure)."""
    model = create_model("pp_liteseg_t", NUM_CLASSES).to(device).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    images = random_images(size, batch, device=device, channels_last=True)
    labels = torch.randint(0, NUM_CLASSES, (batch, *size), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp):
            outputs = model(images)
            loss = sum(torch.nn.functional.cross_entropy(o.float(), labels) for o in outputs)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {
        "model": "pp_liteseg_t",
        "amp": str(amp).removeprefix("torch."),
        "channels_last": True,
        "batch": batch,
        "size": list(size),
        "steps": steps,
        "images_per_s": batch * steps / seconds,
    }


def environment(device: torch.device) -> dict[str, Any]:
    """Device, driver and the versions every number depends on."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    driver = None
    if device.type == "cuda" and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = subprocess.run(query, capture_output=True, text=True, check=False).stdout
        driver = driver.strip().splitlines()[0] if driver.strip() else None
    return {
        "device": device.type,
        "device_name": device_name(device),
        "driver": driver,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a markdown document: environment, latency table, skipped, training."""
    env = result["environment"]
    lines = [
        f"# GPU check ({'dry run on CPU' if result['dry_run'] else env['device_name']})",
        "",
        f"Device: {env['device']} ({env['device_name']}), driver {env['driver'] or '—'}, "
        f"CUDA {env['cuda'] or '—'}; "
        + ", ".join(f"{name} {version}" for name, version in env["versions"].items()),
        "",
        "| model | size | runtime | backend | precision | timing | median ms | IQR ms | FPS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        height, width = row["size"]
        lines.append(
            f"| {row['model']} | {height}×{width} | {row['runtime']} {row['runtime_version']} | "
            f"{row['backend']} | {row['precision']} | {TIMING_LABELS[row['timing']]} | "
            f"{row['median_ms']:.2f} | {row['iqr_ms']:.2f} | {row['fps']:.1f} |"
        )
    if result["skipped"]:
        lines += ["", "Not measured:", *(f"- {item}" for item in result["skipped"])]
    training = result["training"]
    if training:
        lines += [
            "",
            f"Training throughput ({training['model']}, {training['amp']} autocast, "
            f"channels_last, batch {training['batch']} at {training['size'][0]}×"
            f"{training['size'][1]}, random data): {training['images_per_s']:.1f} images/s",
        ]
    return "\n".join(lines) + "\n"


def run_check(
    out: Path,
    *,
    dry_run: bool,
    models: Sequence[str],
    budget_s: float,
    repeats: int,
    warmup: int,
) -> dict[str, Any]:
    """Measure, write ``out/gpu_check.json`` and ``out/gpu_check.md``, return the result."""
    device = torch.device("cpu" if dry_run else "cuda")
    if not dry_run and not torch.cuda.is_available():
        raise ConfigError("gpu_check needs a CUDA GPU; use --dry-run to check it on the CPU")
    sizes = DRY_RUN_SIZES if dry_run else PAPER_SIZES
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for job in jobs_for(device):
        combinations, reasons = _present(job, device)
        skipped += [f"{job.label}: {reason}" for reason in reasons]
        for name in models:
            for size in sizes:
                where = f"{job.label}, {name} at {size[0]}×{size[1]}"
                if not combinations:
                    continue
                if time.perf_counter() - started > budget_s:
                    skipped.append(f"{where}: time budget of {budget_s:.0f} s spent")
                    continue
                model = create_model(name, NUM_CLASSES)
                measured = measure_deployments(
                    {name: model},
                    size,
                    combinations,
                    device=device,
                    options=job.options,
                    warmup=warmup,
                    repeats=repeats,
                    threads=None,
                )
                rows += [_row(name, job, latency) for latency in measured[name]]
    training = None
    if time.perf_counter() - started <= budget_s:
        if dry_run:
            training = training_throughput(device, (64, 96), batch=2, steps=2)
        else:
            training = training_throughput(device, (512, 1024), batch=8, steps=20)
    else:
        skipped.append("training throughput: time budget spent")
    result = {
        "dry_run": dry_run,
        "environment": environment(device),
        "budget_s": budget_s,
        "wall_s": time.perf_counter() - started,
        "rows": rows,
        "skipped": skipped,
        "training": training,
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "gpu_check.json", json.dumps(result, indent=2))
    atomic_write_text(out / "gpu_check.md", markdown(result))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m bench.deploy.gpu_check``."""
    parser = argparse.ArgumentParser(prog="python -m bench.deploy.gpu_check", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu"), help="output folder")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, no GPU needed")
    parser.add_argument("--models", nargs="+", choices=list_models(), help="default: all")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="time budget")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up calls per measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = run_check(
            args.out,
            dry_run=args.dry_run,
            models=args.models or list_models(),
            budget_s=args.budget_s,
            repeats=args.repeats,
            warmup=args.warmup,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
