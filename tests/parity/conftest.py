"""Fixtures for the parity tests: official PaddleSeg layers with randomised weights.

Every weight AND every BatchNorm statistic is drawn from a seeded generator, so a wrong key
mapping, a swapped branch or a BN convention mismatch changes the outputs. Conv weights are
drawn with std sqrt(2 / fan_in) and BN variances near 1 so activations stay bounded through
the whole network and the outputs have a sane spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SKIP_REASON = "parity tests need paddlepaddle and paddleseg (run `nox -s parity`)"


def random_state(layer: Any, seed: int) -> dict[str, np.ndarray]:
    """Seeded random values for every entry of a Paddle layer's state dict."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, tensor in layer.state_dict().items():
        shape = tuple(tensor.shape)
        if key.endswith("_scale"):
            value = np.ones(shape)
        elif key.endswith("_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith("_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, math.sqrt(2.0 / math.prod(shape[1:])), shape)
        elif key.endswith("weight"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        state[key] = value.astype(np.float32)
    return state


@pytest.fixture(scope="session")
def paddle() -> Any:
    """The paddle module on CPU (skips the test when paddle or paddleseg is missing)."""
    module = pytest.importorskip("paddle", reason=SKIP_REASON)
    pytest.importorskip("paddleseg", reason=SKIP_REASON)
    module.set_device("cpu")
    return module


@pytest.fixture(scope="session")
def randomized(paddle: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Randomise a Paddle layer in place and ``paddle.save`` its state dict; return the path.

    ``extra`` adds arrays to the saved file (e.g. an ImageNet classifier's keys).
    """

    def randomize_and_save(
        layer: Any, *, seed: int, name: str, extra: dict[str, np.ndarray] | None = None
    ) -> Path:
        layer.set_state_dict(random_state(layer, seed))
        state = dict(layer.state_dict())
        state.update({key: paddle.to_tensor(value) for key, value in (extra or {}).items()})
        path = tmp_path_factory.mktemp("official") / f"{name}.pdparams"
        paddle.save(state, str(path))
        return path

    return randomize_and_save
