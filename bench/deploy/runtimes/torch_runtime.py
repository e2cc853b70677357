"""PyTorch itself as a runtime: eager, ``torch.compile`` (inductor) or TorchScript.

Precisions are casts of weights and input (not autocast): fp32 and bf16 on CPU,
fp32, fp16 and bf16 on CUDA. On CUDA the input stays on the device, so its time is
``compute`` (no host/device copies); on CPU it is ``end_to_end``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
from torch import nn

from bench.deploy.runtimes.base import Deployment, PrepareContext, Runtime
from bench.profile.inference import prepare_inference, torch_input

log = logging.getLogger(__name__)


class TorchRuntime(Runtime):
    """PyTorch eager, inductor or TorchScript (see :class:`~bench.config.InferenceOptions`)."""

    name = "torch"
    module = "torch"
    distribution = "torch"
    precisions_by_device: ClassVar[dict[str, tuple[str, ...]]] = {
        "cpu": ("fp32", "bf16"),
        "cuda": ("fp32", "fp16", "bf16"),
    }
    why_not: ClassVar[dict[str, str]] = {
        "int8": "post-training int8 runs on onnxruntime or openvino",
        "fp16": "fp16 convolutions need CUDA (use bf16 on CPU)",
    }

    def check(self, precision: str, device: torch.device) -> None:
        super().check(precision, device)
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        if precision == "bf16" and device.type == "cpu" and not native:
            log.warning(
                "this CPU has no native bf16 (AVX512-BF16/AMX): torch bf16 runs emulated "
                "and is usually slower than fp32 here"
            )

    def prepare(
        self, model: nn.Module, images: torch.Tensor, precision: str, context: PrepareContext
    ) -> list[Deployment]:
        options = context.options
        device = context.device
        run = prepare_inference(
            model, options, device, torch_input(images.to(device), precision, options), precision
        )
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
        deployment = Deployment(
            runtime=self.name,
            runtime_version=torch.__version__,
            precision=precision,
            device=device,
            backend=options.backend,
            timing="compute" if device.type == "cuda" else "end_to_end",
            feed=lambda batch: torch_input(batch.to(device), precision, options),
            run=run,
            logits=lambda output: output.float(),
            channels_last=options.channels_last,
            cuda_graphs=options.cuda_graphs,
            bn_folded=options.fold_bn,
        )
        if sync is not None:
            deployment.synchronize = sync
        return [deployment]
