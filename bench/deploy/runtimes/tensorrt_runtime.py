"""TensorRT engines built from the ONNX export (NVIDIA GPUs only; the ``gpu`` nox session).

Each engine is timed two ways, both recorded: ``compute`` runs the engine on input and
output buffers already in GPU memory (the PP-LiteSeg paper's method: PaddleSeg's
``deploy/python/infer_onnx_trt.py`` times the engine without host/device copies), and
``end_to_end`` copies a pinned host input in and the logits back out around it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.deploy.runtimes.base import Deployment, PrepareContext, Runtime
from bench.errors import ConfigError

GPU_SESSION = "the GPU extras: nox -s gpu, or pip install tensorrt onnxruntime-gpu"
WORKSPACE_BYTES = 2 << 30


class TensorRtRuntime(Runtime):
    """TensorRT (``tensorrt``), fp32 or fp16 engines."""

    name = "tensorrt"
    module = "tensorrt"
    distribution = "tensorrt"
    install = GPU_SESSION
    precisions_by_device: ClassVar[dict[str, tuple[str, ...]]] = {"cuda": ("fp32", "fp16")}
    why_not: ClassVar[dict[str, str]] = {
        "cpu": "TensorRT needs an NVIDIA GPU (--device cuda)",
        "int8": "int8 engines need their own calibration here; use onnxruntime or openvino",
        "bf16": "bf16 engines are not built here; use fp16",
    }

    def version(self) -> str:
        return str(self.load().__version__)

    def _engine(self, onnx_path: str, precision: str):
        trt = self.load()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        with open(onnx_path, "rb") as handle:
            if not parser.parse(handle.read()):
                errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise ConfigError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            # TensorRT would use TF32 tensor cores for "fp32" on Ampere and later; the paper's
            # 1080Ti had none, and fp32 should mean fp32.
            config.clear_flag(trt.BuilderFlag.TF32)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        return trt.Runtime(logger).deserialize_cuda_engine(serialized)

    def prepare(
        self, model: nn.Module, images: torch.Tensor, precision: str, context: PrepareContext
    ) -> list[Deployment]:
        trt = self.load()
        device = context.device
        engine = self._engine(str(context.exports.path(model, images.shape)), precision)
        execution = engine.create_execution_context()
        buffers: dict[str, torch.Tensor] = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            shape = tuple(engine.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=torch.float32, device=device)
            execution.set_tensor_address(name, buffers[name].data_ptr())
        inputs = [
            name for name in buffers if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        ]
        outputs = [name for name in buffers if name not in inputs]
        (input_name,), (output_name,) = inputs, outputs
        host_output = torch.empty_like(buffers[output_name], device="cpu").pin_memory()

        def execute() -> None:
            execution.execute_async_v3(torch.cuda.current_stream(device).cuda_stream)

        def compute(_: object) -> torch.Tensor:
            execute()
            return buffers[output_name]

        def end_to_end(host_input: torch.Tensor) -> torch.Tensor:
            buffers[input_name].copy_(host_input, non_blocking=True)
            execute()
            host_output.copy_(buffers[output_name], non_blocking=True)
            return host_output

        def to_device(batch: torch.Tensor) -> torch.Tensor:
            buffers[input_name].copy_(batch)
            return buffers[input_name]

        common = {
            "runtime": self.name,
            "runtime_version": self.version(),
            "precision": precision,
            "device": device,
            "backend": "engine",
            "synchronize": lambda: torch.cuda.synchronize(device),
            "logits": lambda output: output.clone(),
            "bn_folded": True,
            "keep_alive": [engine, execution, buffers, host_output],
        }
        deployments = [
            Deployment(timing="compute", feed=to_device, run=compute, **common),
            Deployment(
                timing="end_to_end",
                feed=lambda batch: batch.float().cpu().pin_memory(),
                run=end_to_end,
                **common,
            ),
        ]
        for deployment in deployments:
            deployment(images)
        return deployments
