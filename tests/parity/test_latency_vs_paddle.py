"""CPU inference latency of our PP-LiteSeg next to the official PaddleSeg model, in one process.

Both run batch 1 at 1x3x512x1024 with the same number of CPU threads and random
weights (latency does not depend on their values). The official model runs eagerly
(PaddleSeg's dygraph, as its ``val.py`` and ``predict.py`` do). Ours runs on the
fastest fp32 path, :data:`bench.profile.CPU_FAST` (inductor, channels_last), and, for
context, eagerly. Calls alternate (ours, ours eager, official, ours, ...), with a
pause before each, so that load from other processes hits all alike. The ratio
ours/official must be below 1; the issue's goal is 0.2. The numbers are printed
even without ``-s``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from architectures import create_model
from bench import profile

pytestmark = [pytest.mark.parity, pytest.mark.slow]

SKIP_REASON = "parity tests need paddlepaddle and paddleseg (run `nox -s parity`)"
paddle = pytest.importorskip("paddle", reason=SKIP_REASON)
paddleseg_models = pytest.importorskip("paddleseg.models", reason=SKIP_REASON)
paddleseg_backbones = pytest.importorskip("paddleseg.models.backbones", reason=SKIP_REASON)

THREADS = 2
SIZE = (512, 1024)
WARMUP = 2
REPEATS = 10
# Paddle's Intel OpenMP workers spin for KMP_BLOCKTIME (200 ms) after each call and would
# steal a core from the next call; pausing longer than that before every call keeps the
# frameworks from slowing each other down.
PAUSE_S = 0.3
GOAL = 0.2
# configs/pp_liteseg/pp_liteseg_stdc{1,2}_*.yml; B uses the PPLiteSeg class defaults.
OFFICIAL = {
    "t": ("STDC1", {"arm_out_chs": [32, 64, 128], "seg_head_inter_chs": [32, 64, 64]}),
    "b": ("STDC2", {}),
}


def _official(variant: str) -> Callable[[], Any]:
    backbone_name, config = OFFICIAL[variant]
    backbone = getattr(paddleseg_backbones, backbone_name)()
    model = paddleseg_models.PPLiteSeg(num_classes=19, backbone=backbone, **config)
    model.eval()
    image = np.random.default_rng(0).standard_normal((1, 3, *SIZE)).astype(np.float32)
    images = paddle.to_tensor(image)

    def forward() -> Any:
        # Paddle runs CPU kernels synchronously: the call returns when the logits exist.
        with paddle.no_grad():
            return model(images)

    return forward


def _ours(model: torch.nn.Module, options: profile.InferenceOptions) -> Callable[[], Any]:
    images = profile.random_images(SIZE, channels_last=options.channels_last)
    run = profile.prepare_inference(model, options, "cpu", images)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return run(images)

    return forward


def _alternate(paths: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Warm up every path, then time them in turns; milliseconds per call."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for step in range(WARMUP + REPEATS):
        for name, forward in paths.items():
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            forward()
            if step >= WARMUP:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def _describe(times: list[float]) -> str:
    median, iqr = profile.latency.summarize(times)
    return f"{median:.0f} ms (IQR {iqr:.0f})"


@pytest.mark.parametrize("variant", ["t", "b"])
def test_cpu_latency_vs_official(variant: str, capsys: pytest.CaptureFixture) -> None:
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(THREADS)
    model = create_model(f"pp_liteseg_{variant}", 19)
    with profile.cpu_threads(THREADS):
        times = _alternate(
            {
                "ours": _ours(model, profile.CPU_FAST),
                "ours eager": _ours(model, profile.InferenceOptions()),
                "official": _official(variant),
            }
        )
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["ours"] / medians["official"]
    gflop = profile.torch_flops(model, SIZE).gflops
    with capsys.disabled():
        print(
            f"\nPP-LiteSeg-{variant.upper()} 1x3x{SIZE[0]}x{SIZE[1]} fp32, {THREADS} threads, "
            f"median of {REPEATS} alternating calls:\n"
            f"  ours {_describe(times['ours'])} [{profile.CPU_FAST}] = "
            f"{gflop / (medians['ours'] / 1e3):.0f} GFLOP/s ({gflop:.1f} GFLOP, {profile.TORCH})\n"
            f"  ours eager {_describe(times['ours eager'])}\n"
            f"  official Paddle {paddle.__version__} eager {_describe(times['official'])}\n"
            f"  ratio ours/official {ratio:.3f} (goal <= {GOAL}), "
            f"eager/official {medians['ours eager'] / medians['official']:.3f}"
        )
    assert ratio < 1
