"""ONNX Runtime on the ONNX export: CPU execution provider at full graph optimisation,
CUDA execution provider on a GPU.

int8 is static QDQ quantization (:func:`bench.deploy.quantize.quantize_onnx`); fp16 on
CUDA converts the graph with ORT's own float16 converter (inputs and outputs stay fp32).
ORT has no bf16 convolution kernels on CPU, so bf16 is refused rather than emulated.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bench.deploy.export import INPUT_NAME, OUTPUT_NAME
from bench.deploy.quantize import quantize_onnx
from bench.deploy.runtimes.base import Deployment, PrepareContext, Runtime
from bench.hardware import available_cores


class OnnxRuntime(Runtime):
    """ONNX Runtime (``onnxruntime``; ``onnxruntime-gpu`` for the CUDA provider)."""

    name = "onnxruntime"
    module = "onnxruntime"
    distribution = "onnxruntime"
    precisions_by_device: ClassVar[dict[str, tuple[str, ...]]] = {
        "cpu": ("fp32", "int8"),
        "cuda": ("fp32", "fp16"),
    }
    why_not: ClassVar[dict[str, str]] = {
        "bf16": "ONNX Runtime has no bf16 convolution kernels on CPU; use openvino or torch",
        "fp16": "fp16 needs the CUDA execution provider (--device cuda)",
        "int8": "int8 runs on the CPU provider here",
    }

    def version(self) -> str:
        return str(self.load().__version__)

    def _session(self, path: str, context: PrepareContext):
        ort = self.load()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = context.threads or available_cores()
        options.inter_op_num_threads = 1
        if context.device.type == "cuda":
            provider = ("CUDAExecutionProvider", {"device_id": context.device.index or 0})
            providers = [provider, "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        return ort.InferenceSession(path, options, providers=providers)

    def prepare(
        self, model: nn.Module, images: torch.Tensor, precision: str, context: PrepareContext
    ) -> list[Deployment]:
        path = context.exports.path(model, images.shape)
        calibration = None
        if precision == "int8":
            calibration = context.int8_calibration(images)
            path = quantize_onnx(
                path,
                path.with_name(f"{path.stem}-ort-int8.onnx"),
                calibration,
                images.shape,
                INPUT_NAME,
            )
        elif precision == "fp16":
            path = self._to_fp16(path)
        session = self._session(str(path), context)

        def run(array: np.ndarray) -> np.ndarray:
            return session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]

        deployment = self.host_deployment(
            precision,
            context,
            backend=session.get_providers()[0],
            run=run,
            logits=torch.from_numpy,
            calibration=calibration,
            keep_alive=[session],
        )
        deployment(images)
        return [deployment]

    @staticmethod
    def _to_fp16(path):
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        target = path.with_name(f"{path.stem}-fp16.onnx")
        converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
        onnx.save_model(converted, str(target))
        return target
