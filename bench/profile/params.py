"""Parameter counts: total, trainable, used at inference, and per top-level module."""

from __future__ import annotations

import torch
from torch import nn

from bench.profile._common import PROBE_SIZE, eval_mode, model_device, random_images
from bench.results import ParamCount


def _numel(parameters) -> int:
    return sum(parameter.numel() for parameter in parameters)


def _unique(parameters) -> list[nn.Parameter]:
    """Parameters deduplicated by identity (shared weights count once)."""
    seen: dict[int, nn.Parameter] = {}
    for parameter in parameters:
        seen.setdefault(id(parameter), parameter)
    return list(seen.values())


def called_modules(model: nn.Module, input_size: tuple[int, int] = PROBE_SIZE) -> set[nn.Module]:
    """The modules an eval-mode forward on a ``1x3xHxW`` input calls (found with forward hooks)."""
    called: set[nn.Module] = set()
    handles = [
        module.register_forward_hook(lambda module, args, output: called.add(module))
        for module in model.modules()
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(random_images(input_size, device=model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return called


def inference_parameters(
    model: nn.Module, input_size: tuple[int, int] = PROBE_SIZE
) -> list[nn.Parameter]:
    """Parameters owned by the modules that an eval-mode forward calls.

    Training-only parts (auxiliary heads, an ImageNet classifier kept for its
    weights) are never called in eval mode, so they drop out without knowing
    the architecture. A parameter counts if the module that directly owns it
    runs; shared parameters count once.
    """
    called = called_modules(model, input_size)
    return _unique(
        parameter
        for module in model.modules()
        if module in called
        for parameter in module.parameters(recurse=False)
    )


def count_parameters(model: nn.Module, input_size: tuple[int, int] = PROBE_SIZE) -> ParamCount:
    """Total, trainable and inference-only parameter counts, plus totals per top-level module.

    ``per_module`` keys are the names of ``model``'s direct children; parameters
    registered on ``model`` itself appear under ``"(root)"``.
    """
    everything = _unique(model.parameters())
    per_module = {
        name: _numel(_unique(child.parameters())) for name, child in model.named_children()
    }
    own = _numel(model.parameters(recurse=False))
    if own:
        per_module["(root)"] = own
    return ParamCount(
        total=_numel(everything),
        trainable=_numel(p for p in everything if p.requires_grad),
        inference=_numel(inference_parameters(model, input_size)),
        per_module=per_module,
    )
