"""Post-training static int8 quantization of an exported model, calibrated on images.

- OpenVINO: NNCF ``nncf.quantize`` (the ``MIXED`` preset: symmetric weights,
  asymmetric activations; fast bias correction) on the OpenVINO model read from ONNX.
- ONNX Runtime: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel
  int8 weights and uint8 activations, MinMax calibration, after ORT's own
  ``quant_pre_process`` (shape inference and graph optimisation). Weights use 7 bits
  (``reduce_range``): on x86 CPUs without VNNI the u8 x s8 kernels saturate their 16-bit
  intermediate sums with full-range weights (a tiny test network's int8 error grew
  from 1.5 % to 17 % of its largest logit on the AVX2 CPU this was built on).

Calibration images are normalised images (as the model sees them); images of another
size than the exported one are resized bilinearly, since only activation ranges are
collected from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.deploy.packages import require
from bench.errors import ConfigError

RANDOM_SOURCE = "random normal inputs (speed only: no accuracy meaning)"
DEFAULT_RANDOM_IMAGES = 8


@dataclass(frozen=True)
class Calibration:
    """Normalised images that calibrate int8 activation ranges, and where they came from.

    Args:
        images: float tensors ``3 x H x W`` (or ``1 x 3 x H x W``), normalised like the
            model's input; sizes may differ.
        source: what they are, e.g. ``"camvid train"``.
    """

    images: tuple[torch.Tensor, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.images:
            raise ConfigError("int8 calibration needs at least one image")

    def describe(self) -> str:
        """``"32 images: camvid train"``."""
        return f"{len(self.images)} images: {self.source}"

    def batches(self, shape: Sequence[int]) -> list[np.ndarray]:
        """The images as float32 arrays of ``shape`` (N, 3, H, W), resized where needed."""
        batch, _, height, width = shape
        arrays = []
        for image in self.images:
            image = image.float().cpu()
            image = image if image.dim() == 4 else image.unsqueeze(0)
            if tuple(image.shape[-2:]) != (height, width):
                image = F.interpolate(
                    image, size=(height, width), mode="bilinear", align_corners=False
                )
            arrays.append(image.expand(batch, -1, -1, -1).contiguous().numpy())
        return arrays


def random_calibration(
    input_size: tuple[int, int], count: int = DEFAULT_RANDOM_IMAGES, seed: int = 0
) -> Calibration:
    """Standard-normal images: enough to time int8, meaningless for its accuracy."""
    generator = torch.Generator().manual_seed(seed)
    images = tuple(torch.randn(3, *input_size, generator=generator) for _ in range(count))
    return Calibration(images, RANDOM_SOURCE)


def calibration_from_dataset(
    dataset: torch.utils.data.Dataset, count: int, source: str, seed: int = 0
) -> Calibration:
    """``count`` images of ``dataset`` (drawn without replacement with ``seed``).

    ``dataset[i]`` must return ``(normalised image, label)`` as the evaluation transform
    gives them (:func:`bench.data.transforms.build_eval_transform`).
    """
    if count < 1:
        raise ConfigError(f"calibration needs at least one image, got {count}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:count].tolist()
    return Calibration(tuple(dataset[index][0] for index in order), source)


def quantize_openvino(model: Any, calibration: Calibration, shape: Sequence[int]) -> Any:
    """An int8 copy of the OpenVINO ``model`` (inputs of ``shape``), quantized with NNCF."""
    nncf = require("nncf", "openvino int8")
    batches = calibration.batches(shape)
    return nncf.quantize(
        model,
        nncf.Dataset(batches),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(batches),
        fast_bias_correction=True,
    )


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of input arrays."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self._items = iter([{input_name: array} for array in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def quantize_onnx(
    source: Path, target: Path, calibration: Calibration, shape: Sequence[int], input_name: str
) -> Path:
    """Write an int8 QDQ copy of the ONNX file ``source`` to ``target``."""
    require("onnxruntime", "onnxruntime int8")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name(target.stem + "-pre.onnx")
    # onnx shape inference already ran strictly at export; ORT's symbolic one fails on
    # some of the exporter's Concat nodes (PP-LiteSeg) and adds nothing for static shapes.
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        _Reader(input_name, calibration.batches(shape)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        reduce_range=True,
    )
    prepared.unlink(missing_ok=True)
    return target
