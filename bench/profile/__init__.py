"""Honest cost numbers: parameters, FLOPs in two conventions, latency with its settings.

- :func:`count_parameters`: total, trainable, used by an eval-mode forward, per top-level module.
- :func:`count_flops`: fvcore (1 per multiply-add) and ``torch.utils.flop_counter``
  (2 per multiply-add), each a :class:`~bench.results.FlopCount` naming its counter,
  convention and input size (see :mod:`bench.profile.flops`).
- :func:`measure_deployments`: several models on several (runtime, precision) pairs,
  side by side in interleaved rounds; :func:`measure_latency` / :func:`measure_latencies`
  for the torch runtime alone (see :mod:`bench.profile.latency`).
- :func:`fold_batchnorm`: an inference copy with batch norms merged into convolutions.
- :func:`profile_model`: all of the above for one :class:`~bench.config.ProfileSpec`;
  :func:`profile_models` for several models, their latencies measured side by side;
  :func:`check_profile_spec` rejects what a spec cannot measure on a device, at plan time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from bench.config import ProfileSpec
from bench.errors import ConfigError
from bench.profile._common import random_images
from bench.profile.flops import FVCORE, TORCH, conv_gmacs, count_flops, fvcore_flops, torch_flops
from bench.profile.fold import conv_bn_pairs, fold_batchnorm
from bench.profile.latency import (
    BACKENDS,
    CPU_FAST,
    DTYPES,
    DeviceUnavailableError,
    InferenceOptions,
    check_settings,
    cpu_threads,
    device_name,
    measure_deployments,
    measure_latencies,
    measure_latency,
    prepare_inference,
    resolve_device,
)
from bench.profile.params import count_parameters, inference_parameters
from bench.results import Cost

if TYPE_CHECKING:
    from bench.deploy.quantize import Calibration

K = TypeVar("K")

__all__ = [
    "BACKENDS",
    "CPU_FAST",
    "DTYPES",
    "FVCORE",
    "TORCH",
    "DeviceUnavailableError",
    "InferenceOptions",
    "check_profile_spec",
    "check_settings",
    "conv_bn_pairs",
    "conv_gmacs",
    "count_cost",
    "count_flops",
    "count_parameters",
    "cpu_threads",
    "device_name",
    "fold_batchnorm",
    "fvcore_flops",
    "inference_parameters",
    "measure_deployments",
    "measure_latencies",
    "measure_latency",
    "prepare_inference",
    "profile_model",
    "profile_models",
    "random_images",
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


def check_profile_spec(spec: ProfileSpec, device: str | torch.device) -> None:
    """Raise a :class:`ConfigError` naming the key and value for anything ``spec`` cannot
    measure on ``device``: a runtime that is not installed or does not run there (TensorRT
    on CPU), a precision a runtime does not run there (fp16 on CPU, int8 on torch, bf16 on
    a CPU without it), and settings such as CUDA graphs on CPU. Nothing is skipped silently.
    """
    from bench.deploy.runtimes import check_combination

    resolved = resolve_device(device)
    try:
        check_settings(
            resolved,
            spec.inference,
            batch=spec.latency_batch,
            warmup=spec.warmup,
            repeats=spec.repeats,
            threads=spec.threads,
        )
    except ConfigError as error:
        raise ConfigError(f"profile: {error}") from None
    for runtime, precision in spec.combinations(resolved.type):
        own = getattr(spec.runtime_precisions, runtime) is not None
        key = f"runtime_precisions.{runtime}" if own else "precisions"
        try:
            check_combination(runtime, precision, resolved)
        except ConfigError as error:
            raise ConfigError(
                f"profile.runtimes = {list(spec.runtimes)}, profile.{key} includes "
                f"{precision!r}: {error}"
                + (
                    ""
                    if own
                    else f" (give {runtime} its own list: profile.runtime_precisions.{runtime})"
                )
            ) from None


def profile_model(
    model: nn.Module,
    spec: ProfileSpec,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
) -> Cost:
    """Parameters, FLOPs (both counters) at ``spec.flops_sizes``, latency at ``spec.latency_size``.

    FLOPs are counted on the model as given (eval mode, on its own device); the
    latencies are measured for every combination of ``spec`` on inference copies on
    ``device`` (see :func:`measure_deployments`), the torch runtime run as ``options``
    says (default: ``spec.inference``). ``model`` is left unchanged, including its
    training flag.
    """
    return profile_models({"model": model}, spec, device, options=options)["model"]


def profile_models(
    models: Mapping[K, nn.Module],
    spec: ProfileSpec,
    device: str | torch.device = "cpu",
    rounds: int = 1,
    calibration: Calibration | Mapping[K, Calibration] | None = None,
    *,
    options: InferenceOptions | None = None,
) -> dict[K, Cost]:
    """:func:`profile_model` for several models, all their latencies measured side by side.

    Every model runs on every ``(runtime, precision)`` of ``spec.combinations()``; the
    latencies come from :func:`measure_deployments` in ``rounds`` interleaved rounds,
    so the numbers compared with each other share the machine's conditions. Each
    ``Cost.latency`` holds one record per combination (two for TensorRT: engine only
    and end-to-end).

    Args:
        models: the networks (not changed).
        spec: sizes, settings, runtimes and precisions (check it at plan time with
            :func:`check_profile_spec`).
        device: ``cpu`` or ``cuda``.
        rounds: interleaved rounds the timed calls are split into.
        calibration: normalised training images calibrating int8 (e.g.
            :func:`bench.deploy.calibration_from_dataset` with ``spec.calibration_images``);
            None calibrates on random inputs, which times int8 but means nothing for
            its accuracy (the records say which).
        options: torch runtime options instead of ``spec.inference``.
    """
    check_profile_spec(spec, device)
    # Latency first: counting FLOPs at large sizes leaves the allocator holding big
    # freed blocks, which made later timings depend on the counting history.
    latencies = measure_deployments(
        models,
        spec.latency_size,
        spec.combinations(resolve_device(device).type),
        device=resolve_device(device),
        options=options or spec.inference,
        batch=spec.latency_batch,
        warmup=spec.warmup,
        repeats=spec.repeats,
        threads=spec.threads,
        rounds=rounds,
        calibration=calibration,
    )
    return {
        key: count_cost(model, spec).model_copy(update={"latency": latencies[key]})
        for key, model in models.items()
    }
