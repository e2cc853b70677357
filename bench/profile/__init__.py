"""Honest cost numbers: parameters, FLOPs in two conventions, latency with its settings.

- :func:`count_parameters`: total, trainable, used by an eval-mode forward, per top-level module.
- :func:`count_flops`: fvcore (1 per multiply-add) and ``torch.utils.flop_counter``
  (2 per multiply-add), each a :class:`~bench.results.FlopCount` naming its counter,
  convention and input size (see :mod:`bench.profile.flops`).
- :func:`measure_latency` / :func:`measure_latencies` (several models in interleaved
  rounds): median and IQR of many timed calls on CPU or CUDA, with the
  options of :class:`InferenceOptions` (see :mod:`bench.profile.latency`).
- :func:`fold_batchnorm`: an inference copy with batch norms merged into convolutions.
- :func:`profile_model`: all of the above for one :class:`~bench.config.ProfileSpec`;
  :func:`profile_models` for several models, their latencies measured side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import torch
from torch import nn

from bench.config import ProfileSpec
from bench.profile.flops import FVCORE, TORCH, conv_gmacs, count_flops, fvcore_flops, torch_flops
from bench.profile.fold import conv_bn_pairs, fold_batchnorm
from bench.profile.latency import (
    BACKENDS,
    CPU_FAST,
    DTYPES,
    DeviceUnavailableError,
    InferenceOptions,
    available_cores,
    check_settings,
    cpu_threads,
    measure_latencies,
    measure_latency,
    prepare_inference,
    resolve_device,
)
from bench.profile.params import count_parameters, inference_parameters
from bench.results import Cost

K = TypeVar("K")

__all__ = [
    "BACKENDS",
    "CPU_FAST",
    "DTYPES",
    "FVCORE",
    "TORCH",
    "DeviceUnavailableError",
    "InferenceOptions",
    "available_cores",
    "check_settings",
    "conv_bn_pairs",
    "conv_gmacs",
    "count_cost",
    "count_flops",
    "count_parameters",
    "cpu_threads",
    "fold_batchnorm",
    "fvcore_flops",
    "inference_parameters",
    "measure_latencies",
    "measure_latency",
    "prepare_inference",
    "profile_model",
    "profile_models",
    "resolve_device",
    "torch_flops",
]


def count_cost(model: nn.Module, spec: ProfileSpec) -> Cost:
    """Parameters and FLOPs (both counters, at ``spec.flops_sizes``) without timing anything.

    Counting is deterministic, so it can run anywhere and any time; latency needs a quiet
    machine and comparable conditions (:func:`profile_models`).
    """
    return Cost(
        params=count_parameters(model, spec.latency_size),
        flops=[record for size in spec.flops_sizes for record in count_flops(model, size)],
        latency=[],
    )


def profile_model(
    model: nn.Module,
    spec: ProfileSpec,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
) -> Cost:
    """Parameters, FLOPs (both counters) at ``spec.flops_sizes``, latency at ``spec.latency_size``.

    FLOPs are counted on the model as given (eval mode, on its own device); the
    latency is measured on an inference copy on ``device`` (see :func:`measure_latency`),
    run as ``options`` says (default: ``spec.inference``). ``model`` is left unchanged,
    including its training flag.
    """
    return profile_models({"model": model}, spec, device, options)["model"]


def profile_models(
    models: Mapping[K, nn.Module],
    spec: ProfileSpec,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    rounds: int = 1,
) -> dict[K, Cost]:
    """:func:`profile_model` for several models, their latencies measured side by side.

    The latencies come from :func:`measure_latencies` in ``rounds`` interleaved rounds,
    so models compared with each other share the machine's conditions.
    """
    # Latency first: counting FLOPs at large sizes leaves the allocator holding big
    # freed blocks, which made later timings depend on the counting history.
    latencies = measure_latencies(
        models,
        spec.latency_size,
        device=resolve_device(device),
        options=options or spec.inference,
        batch=spec.latency_batch,
        warmup=spec.warmup,
        repeats=spec.repeats,
        threads=spec.threads,
        rounds=rounds,
    )
    return {
        key: count_cost(model, spec).model_copy(update={"latency": [latencies[key]]})
        for key, model in models.items()
    }
