"""The inference runtimes behind one interface (:class:`Runtime` -> :class:`Deployment`).

``torch`` (eager / inductor / TorchScript), ``onnxruntime`` (CPU or CUDA execution
provider), ``openvino`` (CPU) and ``tensorrt`` (NVIDIA GPU) run the same model; the
last three run its ONNX export (:mod:`bench.deploy.export`). :func:`check_combination`
says, before anything is built, whether a runtime runs a precision on a device.
"""

from __future__ import annotations

import torch

from bench.deploy.runtimes.base import Deployment, PrepareContext, Runtime
from bench.deploy.runtimes.onnx_runtime import OnnxRuntime
from bench.deploy.runtimes.openvino_runtime import OpenVinoRuntime
from bench.deploy.runtimes.tensorrt_runtime import TensorRtRuntime
from bench.deploy.runtimes.torch_runtime import TorchRuntime
from bench.errors import ConfigError

RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (TorchRuntime(), OnnxRuntime(), OpenVinoRuntime(), TensorRtRuntime())
}

__all__ = [
    "RUNTIMES",
    "Deployment",
    "PrepareContext",
    "Runtime",
    "check_combination",
    "get_runtime",
]


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``; a :class:`ConfigError` listing the known ones otherwise."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}") from None


def check_combination(runtime: str, precision: str, device: torch.device) -> None:
    """Raise a :class:`ConfigError` unless ``runtime`` runs ``precision`` on ``device``
    here (package installed, hardware support where the runtime would silently fall back)."""
    get_runtime(runtime).check(precision, device)
