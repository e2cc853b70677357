"""FLOPs of an eval-mode forward, with two counters that follow different conventions.

- ``fvcore`` (``fvcore.nn.FlopCountAnalysis``) counts **one FLOP per multiply-add**
  (its "FLOPs" are MACs) for convolutions and matrix products. It also has handles for
  batch norm (one or two per element), bilinear upsampling (four per output element)
  and adaptive average pooling (one per input element). Operators without a handle
  (sigmoid, element-wise add and mul, mean/max reductions, ...) are skipped; they are
  returned in ``unsupported_ops`` with their call counts instead of being logged.
- ``torch.utils.flop_counter`` (``FlopCounterMode``) counts **two FLOPs per
  multiply-add** and only matrix products and convolutions.

So for a network made of convolutions only, the second number is twice the first.
Both records carry a per-operator breakdown in GFLOPs (``by_operator``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.profile._common import eval_mode, model_device, random_images
from bench.results import FlopCount

FVCORE = "fvcore"
TORCH = "torch.utils.flop_counter"
FVCORE_CONVENTION = (
    "1 per multiply-add (MACs) for conv/matmul; also batch_norm, bilinear upsample, "
    "adaptive avg pool; element-wise ops skipped"
)
TORCH_CONVENTION = "2 per multiply-add; matmul and convolution only"
GIGA = 1e9


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Mute fvcore's logger and the warnings that tracing emits, restoring both afterwards."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fvcore_flops(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> FlopCount:
    """fvcore's count (1 per multiply-add) of an eval-mode forward on ``batch x 3 x H x W``."""
    images = random_images(input_size, batch, device=model_device(model))
    with _silenced(), eval_mode(model), torch.no_grad():
        # Imported here: fvcore scripts a function at import time, which warns.
        from fvcore.nn import FlopCountAnalysis

        analysis = (
            FlopCountAnalysis(model, images)
            .unsupported_ops_warnings(False)
            .uncalled_modules_warnings(False)
            .tracer_warnings("none")
        )
        total = analysis.total()
        by_operator = dict(analysis.by_operator())
        unsupported = dict(analysis.unsupported_ops())
    return FlopCount(
        counter=FVCORE,
        convention=FVCORE_CONVENTION,
        input_size=input_size,
        gflops=total / GIGA,
        unsupported_ops=dict(sorted(unsupported.items())),
        by_operator={name: count / GIGA for name, count in sorted(by_operator.items())},
    )


def torch_flops(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> FlopCount:
    """``torch.utils.flop_counter``'s count (2 per multiply-add) of an eval-mode forward."""
    images = random_images(input_size, batch, device=model_device(model))
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(images)
    by_operator = {
        str(op).removeprefix("aten."): count / GIGA
        for op, count in counter.get_flop_counts().get("Global", {}).items()
    }
    return FlopCount(
        counter=TORCH,
        convention=TORCH_CONVENTION,
        input_size=input_size,
        gflops=counter.get_total_flops() / GIGA,
        by_operator=dict(sorted(by_operator.items())),
    )


def count_flops(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> list[FlopCount]:
    """Both counters at one input size: ``[fvcore, torch.utils.flop_counter]``."""
    return [fvcore_flops(model, input_size, batch), torch_flops(model, input_size, batch)]


def conv_gmacs(record: FlopCount) -> float:
    """Convolution multiply-adds (GMACs) in a record of either counter."""
    per_mac = 1 if record.counter == FVCORE else 2
    return sum(_conv_entries(record)) / per_mac


def _conv_entries(record: FlopCount) -> Iterator[float]:
    for name, gflops in record.by_operator.items():
        if name.startswith("conv"):
            yield gflops
