"""Forward latency of every registered model (``pytest --benchmark-only``; ``nox -s benchmark``).

Each benchmark times eval-mode forwards of an inference copy built by
:func:`bench.profile.prepare_inference` on a fixed random input: batch 1, fp32,
19 classes, at two input sizes; and the ONNX export of every model run by ONNX Runtime
and OpenVINO (fp32) at one size, so a regression in the export or a runtime is caught.
The default test run skips these (``--benchmark-skip`` in pyproject); ``nox -s
benchmark`` saves each run and fails when a median grew by more than the threshold set
in noxfile.py.
"""

from __future__ import annotations

import pytest
import torch

from architectures import create_model, list_models
from bench.deploy import DeployedModel
from bench.profile import InferenceOptions, prepare_inference, random_images

NUM_CLASSES = 19
SIZES = {"360x480": (360, 480), "512x1024": (512, 1024)}
# Timed rounds per size: the CPU run of all five models takes about a minute on an idle
# 2-core machine (at 512x1024 all five together take about 1.5 s per round, half of it
# LiteSeg-DarkNet19) and a few minutes on a busy one.
CPU_ROUNDS = {(360, 480): 25, (512, 1024): 15}
CUDA_ROUNDS = 50
# Eager with NHWC and folded batch norms: the fastest path that needs no compilation
# (10-55% faster than plain eager NCHW on the 2-core CPU, depending on the model).
CPU_OPTIONS = InferenceOptions(channels_last=True, fold_bn=True)
CUDA_OPTIONS = InferenceOptions(channels_last=True, fold_bn=True)

sizes = pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
models = pytest.mark.parametrize("name", list_models())


def _inputs(size: tuple[int, int], device: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(1, 3, *size, generator=generator).to(device)
    return images.contiguous(memory_format=torch.channels_last)


def _describe(benchmark, device: str, size: tuple[int, int], options: InferenceOptions) -> None:
    benchmark.group = f"{device} {size[0]}x{size[1]}"
    benchmark.extra_info.update(
        device=device,
        input_size=list(size),
        batch=1,
        threads=torch.get_num_threads() if device == "cpu" else None,
        **options.model_dump(),
    )


@sizes
@models
def test_cpu_forward(benchmark, name, size):
    images = _inputs(size, "cpu")
    run = prepare_inference(create_model(name, NUM_CLASSES), CPU_OPTIONS, "cpu", images)
    _describe(benchmark, "cpu", size, CPU_OPTIONS)
    with torch.inference_mode():
        benchmark.pedantic(
            run, args=(images,), rounds=CPU_ROUNDS[size], iterations=1, warmup_rounds=1
        )


RUNTIME_SIZE = (360, 480)
RUNTIME_ROUNDS = 25


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@models
def test_cpu_runtime_forward(benchmark, name, runtime):
    """The ONNX export on another runtime: one call of the prepared deployment, timed."""
    images = random_images(RUNTIME_SIZE)
    model = create_model(name, NUM_CLASSES)
    with DeployedModel(model, runtime, "fp32", threads=torch.get_num_threads()) as deployed:
        deployment = deployed.deployment(images)
        fed = deployment.feed(images)
        benchmark.group = f"cpu {runtime} {RUNTIME_SIZE[0]}x{RUNTIME_SIZE[1]}"
        benchmark.extra_info.update(
            device="cpu",
            input_size=list(RUNTIME_SIZE),
            batch=1,
            threads=torch.get_num_threads(),
            runtime=runtime,
            runtime_version=deployment.runtime_version,
            precision="fp32",
            backend=deployment.backend,
        )
        benchmark.pedantic(deployment.run, args=(fed,), rounds=RUNTIME_ROUNDS, warmup_rounds=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@sizes
@models
def test_cuda_forward(benchmark, name, size):
    images = _inputs(size, "cuda")
    run = prepare_inference(create_model(name, NUM_CLASSES), CUDA_OPTIONS, "cuda", images)
    _describe(benchmark, "cuda", size, CUDA_OPTIONS)

    def forward() -> torch.Tensor:
        logits = run(images)
        torch.cuda.synchronize()
        return logits

    with torch.inference_mode():
        benchmark.pedantic(forward, rounds=CUDA_ROUNDS, iterations=1, warmup_rounds=10)
