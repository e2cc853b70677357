"""Forward latency on CPU or CUDA, on any runtime: warm-up, many timed calls, median and IQR.

Conventions (kornia's benchmark habits), the same for every runtime and precision:

- each model is prepared once per (runtime, precision) (copy, eval, batch-norm folding,
  dtype, memory format, compilation; ONNX export, quantization, engine building) and
  called once before anything is timed, so preparation is never part of a number;
- then ``warmup`` untimed calls (continued for at least ``MIN_WARMUP_SECONDS``
  when ``warmup > 0``), then ``repeats`` timed calls on the same random
  ``batch x 3 x H x W`` input, converted to the runtime's own input beforehand;
- CPU calls are timed with ``time.perf_counter`` under a fixed thread count
  (``torch.set_num_threads``, ONNX Runtime ``intra_op_num_threads``, OpenVINO
  ``INFERENCE_NUM_THREADS``; torch's previous count is restored afterwards);
- CUDA calls are timed with CUDA events; the device is synchronised before the
  timed loop and after every call, so each number is one call's full latency;
- several models and (runtime, precision) combinations compared with each other are
  measured side by side in interleaved rounds (:func:`measure_deployments`), so a
  drifting machine speed is shared evenly; their records share one ``session`` id;
- the result is the median and the interquartile range in milliseconds, and
  ``fps = batch / median``; every setting is recorded in the :class:`Latency`.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from bench.config import InferenceOptions
from bench.errors import ConfigError
from bench.hardware import detect
from bench.profile._common import random_images
from bench.profile.device import (
    DeviceUnavailableError,
    cpu_threads,
    device_name,
    resolve_device,
)
from bench.profile.inference import (
    BACKENDS,
    CPU_FAST,
    DTYPES,
    check_torch_options,
    prepare_inference,
)
from bench.results import Latency

K = TypeVar("K")
Combination = tuple[str, str]
TORCH_FP32: tuple[Combination, ...] = (("torch", "fp32"),)

__all__ = [
    "BACKENDS",
    "CPU_FAST",
    "DTYPES",
    "DeviceUnavailableError",
    "check_settings",
    "cpu_threads",
    "device_name",
    "measure_deployments",
    "measure_latencies",
    "measure_latency",
    "prepare_inference",
    "resolve_device",
    "summarize",
]


# Warm-up also lasts at least this long: a cold process (page faults, oneDNN kernel
# generation, clock ramp-up) measured up to 15% slow after a handful of calls.
MIN_WARMUP_SECONDS = 1.0


def _warm_up(run: Callable[[], Any], warmup: int) -> None:
    """At least ``warmup`` untimed calls, continued until ``MIN_WARMUP_SECONDS`` have passed."""
    if warmup == 0:
        return
    started = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - started < MIN_WARMUP_SECONDS:
        run()
        calls += 1


def _time_calls(deployment: Any, fed: Any, warmup: int, repeats: int) -> list[float]:
    """``repeats`` timed calls of ``deployment.run(fed)`` after the warm-up, in ms.

    CUDA calls are timed with events around the call and synchronised after each one;
    CPU calls with ``time.perf_counter``.
    """

    def call() -> None:
        deployment.run(fed)
        deployment.synchronize()

    times = []
    with torch.inference_mode():
        _warm_up(call, warmup)
        if deployment.device.type == "cuda":
            torch.cuda.synchronize(deployment.device)
            for _ in range(repeats):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                deployment.run(fed)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(repeats):
                start_s = time.perf_counter()
                call()
                times.append((time.perf_counter() - start_s) * 1e3)
    return times


def summarize(times_ms: list[float]) -> tuple[float, float]:
    """Median and interquartile range of a list of timings."""
    if len(times_ms) < 2:
        return times_ms[0], 0.0
    first, _, third = statistics.quantiles(times_ms, n=4, method="inclusive")
    return statistics.median(times_ms), third - first


def check_settings(
    device: torch.device,
    options: InferenceOptions,
    *,
    batch: int = 1,
    warmup: int = 0,
    repeats: int = 1,
    threads: int | None = None,
) -> None:
    """Raise a :class:`ConfigError` for settings that cannot be measured."""
    check_torch_options(device, options)
    for name, value, least in (("batch", batch, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")


def measure_latency(
    model: nn.Module,
    input_size: tuple[int, int],
    *,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    precision: str = "fp32",
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> Latency:
    """Median and IQR of ``repeats`` torch forward calls on a random ``batch x 3 x H x W`` input.

    Args:
        model: the network (not changed; an inference copy is timed).
        input_size: ``(height, width)``.
        device: ``"cpu"`` or ``"cuda"`` (a :class:`DeviceUnavailableError` without CUDA).
        options: memory format, folding, backend, CUDA graphs.
        precision: ``fp32``, ``bf16`` or (CUDA) ``fp16``: weights and input are cast.
        batch: images per call; ``fps`` is ``batch / median``.
        warmup: untimed calls after the first (compiling) call.
        repeats: timed calls.
        threads: CPU intra-op threads (default: all available cores); ignored on CUDA,
            where the record says ``threads=None``.
    """
    return measure_latencies(
        {"model": model},
        input_size,
        device=device,
        options=options,
        precision=precision,
        batch=batch,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
    )["model"]


def measure_latencies(
    models: Mapping[K, nn.Module],
    input_size: tuple[int, int],
    *,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    precision: str = "fp32",
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    rounds: int = 1,
) -> dict[K, Latency]:
    """The torch latency of several models measured side by side, in interleaved rounds.

    :func:`measure_deployments` with the one combination ``("torch", precision)``.
    Arguments as in :func:`measure_latency`.
    """
    latencies = measure_deployments(
        models,
        input_size,
        (("torch", precision),),
        device=device,
        options=options,
        batch=batch,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
        rounds=rounds,
    )
    return {key: records[0] for key, records in latencies.items()}


def measure_deployments(
    models: Mapping[K, nn.Module],
    input_size: tuple[int, int],
    combinations: Sequence[Combination] = TORCH_FP32,
    *,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    rounds: int = 1,
    calibration: Any = None,
) -> dict[K, list[Latency]]:
    """The latency of several models on several (runtime, precision) pairs, side by side.

    On a machine whose speed drifts (a shared VM, a throttling laptop), timing one
    model after another charges the drift to the models. Here every model is prepared
    on every combination first, then each of ``rounds`` rounds warms up and times every
    prepared deployment in turn, ``ceil(repeats / rounds)`` calls each; a deployment's
    median and IQR are over all its timed calls, and all records share one ``session``.

    Args:
        models: the networks (not changed).
        input_size: ``(height, width)``.
        combinations: ``(runtime, precision)`` pairs (see :mod:`bench.deploy.runtimes`),
            each checked before anything is prepared.
        device: ``"cpu"`` or ``"cuda"``.
        options: options of the torch runtime.
        batch, warmup, repeats, threads, rounds: as in :func:`measure_latency`.
        calibration: a :class:`bench.deploy.Calibration` for int8, or one per model key
            (models normalise their inputs differently); None: random inputs, which time
            int8 correctly but say nothing of its accuracy.

    Returns:
        Per model, one :class:`Latency` per deployment in the order of ``combinations``
        (TensorRT gives two per combination: engine only, then end-to-end).
    """
    from bench.deploy.export import OnnxExports
    from bench.deploy.runtimes import PrepareContext, check_combination, get_runtime

    options = options or InferenceOptions()
    device = resolve_device(device)
    check_settings(device, options, batch=batch, warmup=warmup, repeats=repeats, threads=threads)
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    for runtime, precision in combinations:
        check_combination(runtime, precision, device)
    images = random_images(input_size, batch, device=device)
    per_round = math.ceil(repeats / rounds)
    threads_context = contextlib.nullcontext() if device.type == "cuda" else cpu_threads(threads)
    with threads_context as used_threads, OnnxExports() as exports:
        contexts = {
            key: PrepareContext(
                device,
                used_threads,
                options,
                exports,
                calibration.get(key) if isinstance(calibration, Mapping) else calibration,
            )
            for key in models
        }
        prepared = [
            (key, deployment)
            for key, model in models.items()
            for runtime, precision in combinations
            for deployment in get_runtime(runtime).prepare(model, images, precision, contexts[key])
        ]
        fed = [deployment.feed(images) for _, deployment in prepared]
        by_round: list[list[list[float]]] = [[] for _ in prepared]
        for _ in range(rounds):
            for index, (_, deployment) in enumerate(prepared):
                by_round[index].append(_time_calls(deployment, fed[index], warmup, per_round))
    session = uuid.uuid4().hex[:12]
    records: dict[K, list[Latency]] = {key: [] for key in models}
    for (key, deployment), rounds_ms in zip(prepared, by_round, strict=True):
        timings = [ms for round_ms in rounds_ms for ms in round_ms]
        median, iqr = summarize(timings)
        records[key].append(
            Latency(
                runtime=deployment.runtime,
                runtime_version=deployment.runtime_version,
                precision=deployment.precision,
                timing=deployment.timing,
                device=device.type,
                device_name=device_name(device),
                cpu_features=detect().feature_names(),
                input_size=tuple(input_size),
                batch=batch,
                threads=used_threads,
                warmup=warmup,
                repeats=len(timings),
                rounds=rounds,
                session=session,
                round_medians_ms=[statistics.median(round_ms) for round_ms in rounds_ms],
                median_ms=median,
                iqr_ms=iqr,
                fps=batch / (median / 1e3),
                channels_last=deployment.channels_last,
                cuda_graphs=deployment.cuda_graphs,
                bn_folded=deployment.bn_folded,
                backend=deployment.backend,
                calibration=deployment.calibration,
            )
        )
    return records
