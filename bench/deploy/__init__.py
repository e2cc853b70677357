"""Deployment: ONNX export, inference runtimes, int8 quantization and their accuracy cost.

- :func:`export_onnx` / :func:`onnx_error`: a static-size ONNX file of any model
  (batch norms folded, checked by onnx's checker and shape inference), compared with
  the PyTorch logits in ONNX Runtime.
- :mod:`bench.deploy.runtimes`: torch, onnxruntime, openvino and tensorrt behind one
  interface that :mod:`bench.profile.latency` times.
- :mod:`bench.deploy.quantize`: int8 post-training quantization (NNCF for OpenVINO,
  static QDQ for ONNX Runtime) calibrated on stated images.
- :func:`evaluate_deployed`: validation metrics of a deployed model with the same
  metric code as training (:func:`bench.evaluate.evaluate`).

The runtimes are optional: ``pip install 'liteseg-bench[deploy]'`` (TensorRT: the GPU
session). A missing one raises :class:`RuntimeMissingError` naming what to install.
"""

# Order matters: the runtimes import the exporter and the quantizers.
from bench.deploy.accuracy import DeployedModel, evaluate_deployed
from bench.deploy.export import OnnxExports, export_onnx, onnx_error, onnx_logits
from bench.deploy.packages import DEPLOY_EXTRA, RuntimeMissingError, require
from bench.deploy.quantize import (
    Calibration,
    calibration_from_dataset,
    random_calibration,
)
from bench.deploy.runtimes import RUNTIMES, Deployment, check_combination, get_runtime

__all__ = [
    "DEPLOY_EXTRA",
    "RUNTIMES",
    "Calibration",
    "DeployedModel",
    "Deployment",
    "OnnxExports",
    "RuntimeMissingError",
    "calibration_from_dataset",
    "check_combination",
    "evaluate_deployed",
    "export_onnx",
    "get_runtime",
    "onnx_error",
    "onnx_logits",
    "random_calibration",
    "require",
]
