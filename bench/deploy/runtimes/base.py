"""The one small interface every inference runtime implements, and what it hands back.

A :class:`Runtime` turns an eval-mode model into :class:`Deployment` objects for one
precision on one device. A deployment separates what is timed from what is not:
``feed`` converts a torch image batch into the runtime's own input (untimed), ``run``
is one inference (timed), ``logits`` turns its output back into a torch tensor
(untimed), and ``synchronize`` waits for the device. :mod:`bench.profile.latency`
times ``run`` the same way for every runtime.
"""

from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from bench.config import InferenceOptions
from bench.deploy.packages import DEPLOY_EXTRA, require
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.deploy.export import OnnxExports
    from bench.deploy.quantize import Calibration


def _no_sync() -> None:
    return None


@dataclass
class Deployment:
    """A model prepared on one runtime, precision and device, ready to be called.

    Args:
        runtime: ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``.
        runtime_version: the runtime package's version.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        device: where it runs.
        backend: the runtime's own path (torch backend, ORT execution provider, ...).
        timing: ``compute`` (device-resident input/output) or ``end_to_end``.
        feed: torch batch -> the runtime's input (not timed).
        run: one inference on a fed input (timed).
        logits: the output of ``run`` -> float torch logits on the CPU or the device.
        synchronize: waits until ``run`` has finished on the device.
    """

    runtime: str
    runtime_version: str
    precision: str
    device: torch.device
    backend: str
    timing: str
    feed: Callable[[torch.Tensor], Any]
    run: Callable[[Any], Any]
    logits: Callable[[Any], torch.Tensor]
    synchronize: Callable[[], None] = _no_sync
    channels_last: bool = False
    cuda_graphs: bool = False
    bn_folded: bool = False
    calibration: str | None = None
    keep_alive: list[Any] = field(default_factory=list, repr=False)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``images`` (a float NCHW batch on the host or the device)."""
        output = self.run(self.feed(images))
        self.synchronize()
        return self.logits(output)


@dataclass
class PrepareContext:
    """What a runtime may need besides the model, shared by the deployments of one session.

    Args:
        device: where to run.
        threads: CPU intra-op threads (None on CUDA).
        options: options of the ``torch`` runtime.
        exports: ONNX files of the models, exported once per model and input shape.
        calibration: images calibrating int8 ranges (None: random inputs, speed only).
    """

    device: torch.device
    threads: int | None
    options: InferenceOptions
    exports: OnnxExports
    calibration: Calibration | None = None

    def int8_calibration(self, images: torch.Tensor) -> Calibration:
        """The calibration images, or random inputs of ``images``' size (speed only)."""
        from bench.deploy.quantize import random_calibration

        return self.calibration or random_calibration(tuple(images.shape[-2:]))


class Runtime(abc.ABC):
    """An inference runtime: which precisions it runs where, and how to prepare a model."""

    name: ClassVar[str]
    module: ClassVar[str]
    distribution: ClassVar[str]
    install: ClassVar[str] = DEPLOY_EXTRA
    precisions_by_device: ClassVar[dict[str, tuple[str, ...]]]
    why_not: ClassVar[dict[str, str]] = {}

    def load(self) -> ModuleType:
        """The runtime's Python module (a :class:`RuntimeMissingError` if it is absent)."""
        return require(self.module, self.name, self.install)

    def version(self) -> str:
        """The installed version of the runtime's package."""
        self.load()
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return str(getattr(self.load(), "__version__", "unknown"))

    def check(self, precision: str, device: torch.device) -> None:
        """Raise a :class:`ConfigError` if this runtime cannot run ``precision`` on ``device``."""
        supported = self.precisions_by_device.get(device.type, ())
        if not supported:
            raise ConfigError(
                f"runtime {self.name!r} does not run on {device.type}: "
                f"{self.why_not.get(device.type, 'not supported')}"
            )
        if precision not in supported:
            reason = self.why_not.get(precision, "")
            raise ConfigError(
                f"runtime {self.name!r} on {device.type} runs precisions {list(supported)}, "
                f"not {precision!r}" + (f": {reason}" if reason else "")
            )
        self.load()

    def host_deployment(
        self,
        precision: str,
        context: PrepareContext,
        *,
        backend: str,
        run: Callable[[Any], Any],
        logits: Callable[[Any], torch.Tensor],
        calibration: Calibration | None,
        keep_alive: list[Any],
    ) -> Deployment:
        """A deployment of an ONNX-based CPU runtime: a float32 NumPy batch in, logits out,
        timed end to end, batch norms folded by the export."""
        return Deployment(
            runtime=self.name,
            runtime_version=self.version(),
            precision=precision,
            device=context.device,
            backend=backend,
            timing="end_to_end",
            feed=lambda batch: batch.float().cpu().numpy(),
            run=run,
            logits=logits,
            bn_folded=True,
            calibration=None if calibration is None else calibration.describe(),
            keep_alive=keep_alive,
        )

    @abc.abstractmethod
    def prepare(
        self, model: nn.Module, images: torch.Tensor, precision: str, context: PrepareContext
    ) -> list[Deployment]:
        """Deployments of the eval-mode ``model`` for inputs shaped like ``images``.

        Most runtimes return one; TensorRT returns the engine-only and the end-to-end
        timing of one engine. Every deployment has been called once before it is returned.
        """
