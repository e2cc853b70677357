"""Accuracy of a trained model deployed on a runtime and precision, scored like training's.

:class:`DeployedModel` wraps the deployments of one model as an ``nn.Module`` whose
forward returns logits, preparing (exporting, quantizing, compiling) once per distinct
input size; :func:`evaluate_deployed` runs it through :func:`bench.evaluate.evaluate`,
the very function that scores every run, so the difference to the run's own metrics
is the cost of the runtime and precision alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from bench.config import EvalSpec, InferenceOptions
from bench.deploy.export import OnnxExports
from bench.deploy.quantize import Calibration
from bench.deploy.runtimes import Deployment, PrepareContext, check_combination, get_runtime
from bench.errors import ConfigError
from bench.evaluate import DEFAULT_EVAL, evaluate
from bench.profile.device import cpu_threads, resolve_device
from bench.results import DeployedAccuracy

# Evaluation runs the eager torch path in NHWC with folded batch norms (same numbers as
# the training loop's evaluation up to float rounding, and faster).
EVAL_OPTIONS = InferenceOptions(channels_last=True, fold_bn=True)


class DeployedModel(nn.Module):
    """``model`` as ``runtime`` runs it in ``precision``: call it like the model (eval mode).

    Args:
        model: the trained eval-mode network (not changed).
        runtime: ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        device: where it runs.
        threads: CPU threads of the runtime (default: all cores).
        calibration: images calibrating int8 (required for int8).
        options: options of the torch runtime.

    Each distinct ``N x 3 x H x W`` input shape is prepared once (the ONNX export is
    static) and kept; call :meth:`close` (or use ``with``) to delete the exported files.
    """

    def __init__(
        self,
        model: nn.Module,
        runtime: str,
        precision: str,
        *,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        calibration: Calibration | None = None,
        options: InferenceOptions = EVAL_OPTIONS,
    ) -> None:
        super().__init__()
        device = resolve_device(device)
        check_combination(runtime, precision, device)
        if precision == "int8" and calibration is None:
            raise ConfigError(
                f"{runtime} int8 accuracy needs calibration images (e.g. "
                "bench.deploy.calibration_from_dataset over the training split)"
            )
        self.model = model
        self.runtime = get_runtime(runtime)
        self.precision = precision
        self.exports = OnnxExports()
        self.context = PrepareContext(device, threads, options, self.exports, calibration)
        self._prepared: dict[tuple[int, ...], Deployment] = {}

    def deployment(self, images: torch.Tensor) -> Deployment:
        """The deployment for inputs shaped like ``images`` (prepared on first use)."""
        shape = tuple(images.shape)
        if shape not in self._prepared:
            prepared = self.runtime.prepare(self.model, images, self.precision, self.context)
            # TensorRT's end-to-end and engine-only deployments compute the same logits.
            self._prepared[shape] = prepared[0]
        return self._prepared[shape]

    def train(self, mode: bool = True) -> DeployedModel:
        """Only the flag changes: deployments are inference-only and every runtime prepares
        an eval-mode copy, so the wrapped model keeps its own training flag."""
        self.training = mode
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float().contiguous()
        return self.deployment(images)(images).to(images.device)

    def close(self) -> None:
        """Release the deployments and delete their exported files."""
        self._prepared.clear()
        self.exports.close()

    def __enter__(self) -> DeployedModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evaluate_deployed(
    model: nn.Module,
    runtime: str,
    precision: str,
    val_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    class_names: Sequence[str],
    *,
    calibration: Calibration | None = None,
    ignore_index: int = 255,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    spec: EvalSpec = DEFAULT_EVAL,
) -> DeployedAccuracy:
    """Validation metrics of ``model`` deployed on ``runtime`` in ``precision``.

    Args:
        model: the trained network (eval mode; not changed).
        runtime: ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        val_batches: ``(normalised images, labels)`` batches of the validation split,
            as the training loop evaluates them; sizes may differ between batches.
        num_classes: classes of the dataset.
        class_names: their names (keys of the per-class metrics).
        calibration: images calibrating int8 (required for int8), e.g. from
            :func:`bench.deploy.calibration_from_dataset` on the training split.
        ignore_index: label value left out of the metrics.
        threads: CPU threads of the runtime (default: all cores).
        device: ``cpu`` or ``cuda``.
        spec: evaluation settings (scale, multi-scale, flip), as the fp32 run's; every
            distinct input size they produce is exported and compiled once.

    Returns:
        A :class:`~bench.results.DeployedAccuracy` with the runtime's version and the
        calibration used, its metrics computed by :func:`bench.evaluate.evaluate`.
    """
    with (
        DeployedModel(
            model,
            runtime,
            precision,
            device=device,
            threads=threads,
            calibration=calibration if precision == "int8" else None,
        ) as deployed,
        cpu_threads(threads) as used_threads,
    ):
        metrics = evaluate(
            deployed,
            val_batches,
            num_classes,
            class_names,
            ignore_index=ignore_index,
            device=deployed.context.device,
            spec=spec,
        )
        version = deployed.runtime.version()
    used_int8 = precision == "int8" and calibration is not None
    return DeployedAccuracy(
        runtime=runtime,
        runtime_version=version,
        precision=precision,
        device=deployed.context.device.type,
        threads=None if deployed.context.device.type == "cuda" else used_threads,
        calibration_images=len(calibration.images) if used_int8 else None,
        calibration_source=calibration.source if used_int8 else None,
        metrics=metrics,
    )
