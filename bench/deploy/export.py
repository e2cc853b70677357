"""ONNX export of any registered model at a static input size, checked with ONNX Runtime.

The model is exported in eval mode with its batch norms folded into the convolutions
(:func:`bench.profile.fold_batchnorm`) by PyTorch's ``torch.export``-based exporter
(``torch.onnx.export(..., dynamo=True)``). That exporter decomposes
``adaptive_avg_pool2d`` into exact fixed-window averages at the traced size, so
PP-LiteSeg's SPPM exports at sizes its bins (1, 2, 4) do not divide, where the
TorchScript exporter refuses (pytorch#42653, PaddleSeg #2095/#2369). The file is
validated with ``onnx.checker`` and strict ``onnx.shape_inference`` before it is
written; :func:`onnx_error` compares it with the PyTorch eval logits in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from bench.deploy.packages import require
from bench.errors import ConfigError
from bench.files import unwritable_reason
from bench.profile._common import eval_mode, random_images
from bench.profile.fold import fold_batchnorm

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# The exporter and onnxscript log every decomposition and optimisation step at INFO.
_NOISY_LOGGERS = ("torch.onnx", "torch._export", "torch.export", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_onnx_destination(path: str | Path) -> Path:
    """``path`` as a :class:`Path` if an ONNX file can be written there, else a ConfigError.

    Checked before any export work: the name ends in ``.onnx``; it is not a folder and
    not a read-only file; its folder can be created and written
    (:func:`bench.files.unwritable_reason`).
    """
    path = Path(path)
    where = f"cannot write the ONNX file {path}"
    try:
        if path.is_dir():
            raise ConfigError(f"{where}: it is a folder; name a file, e.g. {path / 'model.onnx'}")
        if path.suffix != ".onnx":
            raise ConfigError(
                f"{where}: the name must end in .onnx, e.g. {path.with_name(path.stem + '.onnx')}"
            )
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"{where}: the file exists and is read-only")
        problem = unwritable_reason(path.parent)
    except OSError as error:
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    if problem is not None:
        raise ConfigError(f"{where}: {problem}; choose a writable folder")
    return path


def export_onnx(
    model: nn.Module,
    input_size: tuple[int, int],
    path: str | Path,
    *,
    batch: int = 1,
    fold_bn: bool = True,
) -> Path:
    """Write the eval-mode ``model`` as an ONNX file for ``batch x 3 x H x W`` float inputs.

    Args:
        model: any module taking one image batch (not changed).
        input_size: static ``(height, width)``; any size the model accepts, odd ones too.
        path: the ``.onnx`` file to write (one file, weights included).
        batch: static batch size.
        fold_bn: fold eval-mode batch norms into their convolutions first.

    The graph has one input ``images`` and one output ``logits`` and passes
    ``onnx.checker.check_model`` and strict shape inference.

    Raises:
        ConfigError: ``path`` cannot be written (:func:`check_onnx_destination`, checked
            before the export).
    """
    onnx = require("onnx", "onnx export")
    require("onnxscript", "onnx export")
    path = check_onnx_destination(path)
    with eval_mode(model), torch.no_grad():
        prepared = fold_batchnorm(model) if fold_bn else model
        images = random_images(input_size, batch)
        with _quiet():
            program = torch.onnx.export(
                prepared,
                (images,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                optimize=True,
                verify=False,
                verbose=False,
            )
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    return path


def onnx_logits(path: str | Path, images: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """Run the ONNX file on ``images`` with ONNX Runtime's CPU provider (full optimisation)."""
    ort = require("onnxruntime", "onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.float().cpu().numpy()})
    return torch.from_numpy(output)


def onnx_error(model: nn.Module, path: str | Path, images: torch.Tensor) -> float:
    """``max|ONNX Runtime - PyTorch| / std(PyTorch)`` of the eval logits on ``images``."""
    with eval_mode(model), torch.no_grad():
        expected = model(images.float().cpu())
    actual = onnx_logits(path, images)
    if actual.shape != expected.shape:
        raise ValueError(f"ONNX logits {tuple(actual.shape)} != PyTorch {tuple(expected.shape)}")
    return float((actual - expected).abs().max() / expected.std())


class OnnxExports:
    """ONNX files of several models in a temporary folder, exported once per model and shape.

    Use as a context manager; the folder is removed on exit.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="liteseg-onnx-")
        self._paths: dict[tuple[int, tuple[int, ...]], Path] = {}
        self._models: list[nn.Module] = []  # keeps ids unique while their files exist

    @property
    def folder(self) -> Path:
        """Where the files are written (also for files derived from them)."""
        return Path(self._folder.name)

    def path(self, model: nn.Module, shape: torch.Size | tuple[int, ...]) -> Path:
        """The ONNX file of ``model`` for inputs of ``shape`` (N, 3, H, W); exported once."""
        key = (id(model), tuple(shape))
        if key not in self._paths:
            batch, _, height, width = shape
            self._models.append(model)
            target = self.folder / f"model{len(self._paths)}_{batch}x{height}x{width}.onnx"
            self._paths[key] = export_onnx(model, (height, width), target, batch=batch)
        return self._paths[key]

    def close(self) -> None:
        """Delete the files."""
        self._folder.cleanup()
        self._paths.clear()
        self._models.clear()

    def __enter__(self) -> OnnxExports:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
