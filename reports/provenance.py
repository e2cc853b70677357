"""Where a report's numbers came from: code version, suite file, packages and machines."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from bench.results import RunRecord

REPO_ROOT = Path(__file__).resolve().parents[1]
# Distribution names of the packages whose versions change numbers.
PACKAGES = ("torch", "torchvision", "numpy", "albumentations", "fvcore", "liteseg-bench")
GIT_TIMEOUT_S = 10


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout


def git_state() -> dict[str, str]:
    """The checked-out commit of this repository and whether tracked files differ from it."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown (not a git checkout)", "dirty": "unknown"}
    changes = _git("status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if changes is None else "yes" if changes.strip() else "no"
    return {"commit": commit.strip(), "dirty": dirty}


def package_versions() -> dict[str, str]:
    """Installed versions of Python and of :data:`PACKAGES` ("not installed" if absent)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, or a note saying the file is gone."""
    if not path.is_file():
        return f"unavailable: {path} does not exist"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render_machine() -> dict[str, str]:
    """The machine rendering the report: platform, processor, CPUs, torch threads and GPU."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def run_environments(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Distinct environments the runs were produced in, each with how many runs used it."""
    counts: dict[tuple[str, ...], int] = {}
    for record in records:
        env = record.environment
        if env is None:
            continue
        key = (
            env.device,
            env.device_name,
            str(env.threads),
            str(env.world_size),
            env.python,
            env.torch,
            env.torchvision,
            env.platform,
            env.git_commit or "unknown",
        )
        counts[key] = counts.get(key, 0) + 1
    fields = (
        "device",
        "device_name",
        "threads",
        "world_size",
        "python",
        "torch",
        "torchvision",
        "platform",
        "git_commit",
    )
    return [{**dict(zip(fields, key, strict=True)), "runs": str(n)} for key, n in counts.items()]


def provenance(suite_name: str, suite_file: Path, records: Iterable[RunRecord]) -> dict[str, Any]:
    """Everything the provenance section shows, as plain data."""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": git_state(),
        "suite": suite_name,
        "suite_file": str(suite_file),
        "suite_sha256": file_sha256(suite_file),
        "versions": package_versions(),
        "machine": render_machine(),
        "run_environments": run_environments(records),
    }
