"""Which device and how many CPU threads a measurement runs on, and their names."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from bench.errors import ConfigError, UserError


class DeviceUnavailableError(UserError):
    """The requested device (CUDA) is not available in this process."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`; raises if it is CUDA and CUDA is unavailable."""
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {str(device)!r}; use 'cpu' or 'cuda'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {str(device)!r} was requested but CUDA is not available "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
            "use --device cpu or run on a machine with an NVIDIA GPU"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {str(device)!r}; use 'cpu' or 'cuda'")
    return resolved


def device_name(device: torch.device) -> str:
    """A human-readable name of the CPU model or GPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (default: all available cores); restore afterwards."""
    previous = torch.get_num_threads()
    wanted = threads or available_cores()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
