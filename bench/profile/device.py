"""Which device and how many CPU threads a measurement runs on, and their names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from bench.errors import ConfigError, UserError
from bench.hardware import available_cores, detect


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
    return detect().cpu


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
