"""Where a run ran: versions, device, its CPU features, threads and the git commit of this
checkout."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import torch

from bench.distributed import DistContext
from bench.hardware import detect
from bench.profile.device import device_name
from bench.results import Environment

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    """The checked-out commit of this repository, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def environment(ctx: DistContext) -> Environment:
    """Versions, device and threads of this process."""
    return Environment(
        python=sys.version.split()[0],
        torch=torch.__version__,
        torchvision=importlib.metadata.version("torchvision"),
        platform=platform.platform(),
        device=ctx.device.type,
        device_name=device_name(ctx.device),
        threads=torch.get_num_threads(),
        cores=detect().cores,
        cpu_features=detect().feature_names(),
        git_commit=git_commit(),
        world_size=ctx.world_size,
    )
