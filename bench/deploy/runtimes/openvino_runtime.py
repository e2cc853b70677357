"""OpenVINO on the ONNX export, on the CPU plugin with the latency performance hint.

The inference precision is set explicitly (``INFERENCE_PRECISION_HINT`` f32 or bf16):
OpenVINO would otherwise pick bf16 by itself on CPUs that have it. On a CPU without
native bf16 it silently runs f32 under a bf16 hint, so bf16 is refused there instead
of recorded under a wrong name. int8 is NNCF post-training quantization
(:func:`bench.deploy.quantize.quantize_openvino`) with the rest of the graph in f32.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bench.deploy.quantize import quantize_openvino
from bench.deploy.runtimes.base import Deployment, PrepareContext, Runtime
from bench.errors import ConfigError
from bench.hardware import available_cores

PLUGIN = "CPU"
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


@functools.cache
def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin says this CPU can run (``FP32``, ``BF16``, ``INT8``, ...)."""
    import openvino

    return tuple(openvino.Core().get_property(PLUGIN, "OPTIMIZATION_CAPABILITIES"))


class OpenVinoRuntime(Runtime):
    """OpenVINO (``openvino``; int8 through ``nncf``)."""

    name = "openvino"
    module = "openvino"
    distribution = "openvino"
    precisions_by_device: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": ("fp32", "bf16", "int8")}
    why_not: ClassVar[dict[str, str]] = {
        "cuda": "its GPU plugin is for Intel GPUs; use onnxruntime or tensorrt on NVIDIA",
        "fp16": "fp16 is a GPU precision; use bf16 or int8 on CPU",
    }

    def check(self, precision: str, device: torch.device) -> None:
        super().check(precision, device)
        if precision == "bf16" and "BF16" not in cpu_capabilities():
            raise ConfigError(
                f"runtime 'openvino' precision 'bf16': this CPU has no native bf16 "
                f"(OpenVINO CPU capabilities: {list(cpu_capabilities())}); OpenVINO would "
                "run f32 under that name. Use int8, or torch bf16 (emulated, slow)"
            )

    def prepare(
        self, model: nn.Module, images: torch.Tensor, precision: str, context: PrepareContext
    ) -> list[Deployment]:
        openvino = self.load()
        core = openvino.Core()
        network = core.read_model(str(context.exports.path(model, images.shape)))
        calibration = None
        if precision == "int8":
            calibration = context.int8_calibration(images)
            network = quantize_openvino(network, calibration, images.shape)
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": context.threads or available_cores(),
            "INFERENCE_PRECISION_HINT": HINTS[precision],
        }
        compiled = core.compile_model(network, PLUGIN, config)
        used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if used != HINTS[precision]:
            raise ConfigError(
                f"OpenVINO compiled the model in {used} although {HINTS[precision]} was asked "
                f"for precision {precision!r}"
            )
        request = compiled.create_infer_request()

        def run(array: np.ndarray):
            return request.infer({0: array}, share_inputs=True, share_outputs=True)

        deployment = self.host_deployment(
            precision,
            context,
            backend=PLUGIN,
            run=run,
            logits=lambda result: torch.from_numpy(np.array(result[0], copy=True)),
            calibration=calibration,
            keep_alive=[compiled, request],
        )
        deployment(images)
        return [deployment]
