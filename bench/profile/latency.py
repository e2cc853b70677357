"""Forward latency on CPU or CUDA: warm-up, many timed calls, median and IQR.

Conventions (kornia's benchmark habits):

- the model is prepared once (copy, eval, optional batch-norm folding, dtype,
  memory format, compilation) and called once before anything is timed, so
  compilation and CUDA-graph capture are never part of a number;
- then ``warmup`` untimed calls (continued for at least ``MIN_WARMUP_SECONDS``
  when ``warmup > 0``), then ``repeats`` timed calls on the same
  random ``batch x 3 x H x W`` input under ``torch.inference_mode()``;
- CPU calls are timed with ``time.perf_counter`` under a fixed thread count
  (``torch.set_num_threads``; the previous count is restored afterwards);
- CUDA calls are timed with CUDA events; the device is synchronised before the
  timed loop and after every call, so each number is one call's full latency;
- several models compared with each other are measured side by side in interleaved
  rounds (:func:`measure_latencies`), so a drifting machine speed is shared evenly;
- the result is the median and the interquartile range in milliseconds, and
  ``fps = batch / median``; every setting is recorded in the :class:`Latency`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import torch
from torch import nn

from bench.config import InferenceOptions
from bench.errors import ConfigError, UserError
from bench.profile.fold import fold_batchnorm
from bench.results import Latency

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
BACKENDS: tuple[str, ...] = ("eager", "inductor", "torchscript")

Runner = Callable[[torch.Tensor], torch.Tensor]
K = TypeVar("K")


class DeviceUnavailableError(UserError):
    """The requested device (CUDA) is not available in this process."""


# The fastest fp32 path found for the five models on a 2-core AVX-512 CPU at 512x1024:
# inductor with frozen, pre-packed oneDNN convolutions in NHWC was 1.3-2.8x faster than
# eager NCHW, 1.2-1.7x faster than eager NHWC with folded batch norms, and ahead of
# TorchScript's optimize_for_inference on every model.
CPU_FAST = InferenceOptions(channels_last=True, fold_bn=True, backend="inductor")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`; raises if it is CUDA and CUDA is unavailable."""
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {str(device)!r}; use 'cpu' or 'cuda'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {str(device)!r} was requested but CUDA is not available "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
            "use --device cpu or run on a machine with an NVIDIA GPU"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {str(device)!r}; use 'cpu' or 'cuda'")
    return resolved


def device_name(device: torch.device) -> str:
    """A human-readable name of the CPU model or GPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (default: all available cores); restore afterwards."""
    previous = torch.get_num_threads()
    wanted = threads or available_cores()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


def make_input(
    batch: int, input_size: tuple[int, int], device: torch.device, options: InferenceOptions
) -> torch.Tensor:
    """The fixed random input of a timing: dtype and memory format as ``options`` say."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, *input_size, generator=generator)
    images = images.to(device=device, dtype=DTYPES[options.dtype])
    if options.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def _torchscript(model: nn.Module, images: torch.Tensor) -> Runner:
    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.compile but is still the
        # fastest oneDNN path on some CPUs; its deprecation warnings are noise here.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, images, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def _inductor(model: nn.Module, images: torch.Tensor, cuda_graphs: bool) -> Runner:
    """``torch.compile`` with weight freezing, compiled now (freezing is read at compile time)."""
    from torch._inductor import config as inductor_config

    # Each preparation compiles a fresh copy; isolating its cache keeps earlier copies of the
    # same architecture from using up the recompile limit (dynamo would then run eagerly).
    compiled = torch.compile(
        model, mode="reduce-overhead" if cuda_graphs else None, isolate_recompiles=True
    )
    # Freezing turns weights into constants, which lets inductor fold batch norms and
    # pre-pack convolution weights for oneDNN; passing it in torch.compile(options=...)
    # does not reach the freezing pass, so it is patched around the compiling call.
    with inductor_config.patch(freezing=True):
        compiled(images)
    return compiled


def _cuda_graph(run: Runner, images: torch.Tensor) -> Runner:
    """Capture ``run(images)`` once; each call copies its input in and replays the graph."""
    static_input = images.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            run(static_input)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = run(static_input)

    def replay(batch: torch.Tensor) -> torch.Tensor:
        static_input.copy_(batch)
        graph.replay()
        return static_output

    return replay


def prepare_inference(
    model: nn.Module,
    options: InferenceOptions,
    device: str | torch.device,
    images: torch.Tensor,
) -> Runner:
    """A callable running an inference copy of ``model`` as ``options`` say.

    ``model`` is not changed. The copy is called once on ``images`` (which
    triggers compilation or capture) before it is returned; call it under
    ``torch.inference_mode()``.
    """
    device = resolve_device(device)
    check_settings(device, options)
    with torch.inference_mode(False):
        prepared = fold_batchnorm(model) if options.fold_bn else copy.deepcopy(model).eval()
    prepared = prepared.to(device=device, dtype=DTYPES[options.dtype])
    if options.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    run: Runner = prepared
    with torch.inference_mode():
        if options.backend == "torchscript":
            run = _torchscript(prepared, images)
        elif options.backend == "inductor":
            run = _inductor(prepared, images, options.cuda_graphs)
        if options.cuda_graphs and options.backend != "inductor":
            run = _cuda_graph(run, images)
        run(images)
    return run


# Warm-up also lasts at least this long: a cold process (page faults, oneDNN kernel
# generation, clock ramp-up) measured up to 15% slow after a handful of calls.
MIN_WARMUP_SECONDS = 1.0


def _warm_up(run: Runner, images: torch.Tensor, warmup: int, sync: Callable[[], None]) -> None:
    """At least ``warmup`` untimed calls, continued until ``MIN_WARMUP_SECONDS`` have passed."""
    if warmup == 0:
        return
    started = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - started < MIN_WARMUP_SECONDS:
        run(images)
        sync()
        calls += 1


def _time_cpu(run: Runner, images: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    with torch.inference_mode():
        _warm_up(run, images, warmup, lambda: None)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(images)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def _time_cuda(run: Runner, images: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    with torch.inference_mode():
        _warm_up(run, images, warmup, lambda: torch.cuda.synchronize(images.device))
        torch.cuda.synchronize(images.device)
        times = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            run(images)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
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
    if options.cuda_graphs and device.type != "cuda":
        raise ConfigError("CUDA graphs need --device cuda")
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
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> Latency:
    """Median and IQR of ``repeats`` forward calls on a random ``batch x 3 x H x W`` input.

    Args:
        model: the network (not changed; an inference copy is timed).
        input_size: ``(height, width)``.
        device: ``"cpu"`` or ``"cuda"`` (a :class:`DeviceUnavailableError` without CUDA).
        options: dtype, memory format, folding, backend, CUDA graphs.
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
    batch: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    rounds: int = 1,
) -> dict[K, Latency]:
    """The latency of several models measured side by side, in interleaved rounds.

    On a machine whose speed drifts (a shared VM, a throttling laptop), timing one
    model after another charges the drift to the models. Here every model is prepared
    first, then each of ``rounds`` rounds warms up and times every model in turn,
    ``ceil(repeats / rounds)`` calls each; a model's median and IQR are over all its
    timed calls. Arguments as in :func:`measure_latency`.
    """
    options = options or InferenceOptions()
    device = resolve_device(device)
    check_settings(device, options, batch=batch, warmup=warmup, repeats=repeats, threads=threads)
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    images = make_input(batch, input_size, device, options)
    per_round = math.ceil(repeats / rounds)
    time_calls = _time_cuda if device.type == "cuda" else _time_cpu
    threads_context = contextlib.nullcontext() if device.type == "cuda" else cpu_threads(threads)
    times: dict[K, list[float]] = {key: [] for key in models}
    with threads_context as used_threads:
        runs = {
            key: prepare_inference(model, options, device, images) for key, model in models.items()
        }
        for _ in range(rounds):
            for key, run in runs.items():
                times[key] += time_calls(run, images, warmup, per_round)
    records = {}
    for key, timings in times.items():
        median, iqr = summarize(timings)
        records[key] = Latency(
            device=device.type,
            device_name=device_name(device),
            dtype=options.dtype,
            input_size=tuple(input_size),
            batch=batch,
            threads=used_threads,
            warmup=warmup,
            repeats=len(timings),
            rounds=rounds,
            median_ms=median,
            iqr_ms=iqr,
            fps=batch / (median / 1e3),
            channels_last=options.channels_last,
            cuda_graphs=options.cuda_graphs,
            bn_folded=options.fold_bn,
            backend=options.backend,
        )
    return records
