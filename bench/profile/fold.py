"""Fold inference-mode batch norms into the convolutions that feed them.

In eval mode ``bn(conv(x))`` is an affine map of ``conv(x)`` per output channel, so
it equals one convolution with rescaled weights and a bias. Which conv feeds which
norm is found by running the model once, not from its structure, so any module
layout works (``nn.Sequential`` blocks, separate attributes, custom forwards):
a pair is folded only if every output of the conv goes straight into the same norm
and is used by nothing else.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode

from bench.profile._common import PROBE_SIZE, model_device, random_images

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _tensors(tree) -> Iterator[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _tensors(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tensors(item)


class _DataflowRecorder(TorchFunctionMode):
    """Follows every conv output: which norm consumed it, and whether anything else did."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {module: name for name, module in model.named_modules()}
        self.outputs: dict[int, tuple[torch.Tensor, str]] = {}
        self.conv_calls: Counter[str] = Counter()
        self.feeds: dict[str, Counter[str | None]] = defaultdict(Counter)
        self.consumers: dict[str, set[str]] = defaultdict(set)
        self.escaped: set[str] = set()
        self.norm_depth = 0

    def conv_output(self, module: nn.Module, args, output: torch.Tensor) -> None:
        name = self.names[module]
        self.conv_calls[name] += 1
        # Holding the tensor keeps its id from being reused by a later temporary.
        self.outputs[id(output)] = (output, name)

    def source(self, tensor) -> str | None:
        entry = self.outputs.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def norm_enter(self, module: nn.Module, args) -> None:
        name = self.names[module]
        conv = self.source(args[0]) if args else None
        self.feeds[name][conv] += 1
        if conv is not None:
            self.consumers[conv].add(name)
        self.norm_depth += 1

    def norm_exit(self, module: nn.Module, args, output) -> None:
        self.norm_depth -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        # Metadata queries (shape, dtype) return no tensor and do not count as a use.
        if self.norm_depth == 0 and any(True for _ in _tensors(result)):
            for tensor in _tensors((args, kwargs or {})):
                conv = self.source(tensor)
                if conv is not None:
                    self.escaped.add(conv)
        return result

    def pairs(self) -> list[tuple[str, str]]:
        found = []
        for conv, consumers in self.consumers.items():
            if conv in self.escaped or len(consumers) != 1:
                continue
            (norm,) = consumers
            feeds = self.feeds[norm]
            if set(feeds) == {conv} and feeds[conv] == self.conv_calls[conv]:
                found.append((conv, norm))
        return sorted(found)


def conv_bn_pairs(
    model: nn.Module, input_size: tuple[int, int] = PROBE_SIZE
) -> list[tuple[str, str]]:
    """``(conv name, norm name)`` pairs that can be folded, found by one eval-mode forward.

    ``model`` must be in eval mode. Norms without running statistics are left out.
    """
    recorder = _DataflowRecorder(model)
    handles = []
    for module in model.modules():
        if isinstance(module, _CONVS):
            handles.append(module.register_forward_hook(recorder.conv_output))
        elif isinstance(module, _BatchNorm) and module.track_running_stats:
            handles.append(module.register_forward_pre_hook(recorder.norm_enter))
            handles.append(module.register_forward_hook(recorder.norm_exit))
    try:
        with torch.no_grad(), recorder:
            model(random_images(input_size, device=model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return recorder.pairs()


def fold_batchnorm(model: nn.Module, input_size: tuple[int, int] = PROBE_SIZE) -> nn.Module:
    """An eval-mode copy of ``model`` with every foldable batch norm merged into its conv.

    Each folded conv gets ``weight * gamma / sqrt(var + eps)`` and a bias, and the
    norm is replaced by ``nn.Identity``. The copy computes the same function as
    ``model.eval()`` up to float rounding; ``model`` itself is not changed.

    Args:
        model: any module whose forward takes one ``N x 3 x H x W`` image batch.
        input_size: size of the probe input used to find conv -> norm pairs.
    """
    folded = copy.deepcopy(model).eval()
    for conv_name, norm_name in conv_bn_pairs(folded, input_size):
        conv = folded.get_submodule(conv_name)
        norm = folded.get_submodule(norm_name)
        folded.set_submodule(conv_name, fuse_conv_bn_eval(conv, norm))
        folded.set_submodule(norm_name, nn.Identity())
    return folded
