"""Helpers shared by the profiling modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

# Which modules run and which convs feed which norms does not depend on the input size;
# a small probe keeps those forwards cheap.
PROBE_SIZE = (128, 128)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each submodule's own training flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def random_images(
    input_size: tuple[int, int],
    batch: int = 1,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """A reproducible random ``batch x 3 x H x W`` image batch (standard normal, like a
    normalised image) with the given device, dtype and memory format."""
    height, width = input_size
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, height, width, generator=generator)
    images = images.to(device=device, dtype=dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
