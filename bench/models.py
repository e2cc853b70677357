"""A run's model from its :class:`~bench.config.ModelSpec`: the one wrapper around the registry.

Validation, training, re-profiling, evaluation and the ``profile`` command all build
models here, so a wrong name, override or weights file gives the same clear error
everywhere.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from architectures import UnknownModelError, UnknownOverrideError, create_model
from architectures.weights import WeightLoadError, key_mismatch, load_official, read_pth
from bench.config import ModelSpec
from bench.errors import ConfigError
from bench.pretrained import IMAGENET, resolve_imagenet


def resolve_pretrained(spec: ModelSpec, data_root: Path | None, where: str = "") -> Path:
    """The file named by ``model.pretrained``.

    ``"imagenet"`` is the ImageNet weights file of the model's encoder
    (:func:`bench.pretrained.resolve_imagenet`); anything else is a path, absolute or
    relative to the data root.

    Raises:
        ConfigError: the file does not exist (the message names it and how to obtain it).
    """
    if spec.pretrained == IMAGENET:
        return resolve_imagenet(spec.name, data_root, where)
    path = Path(spec.pretrained).expanduser()
    if not path.is_absolute() and data_root is not None:
        path = data_root / path
    if not path.is_file():
        raise ConfigError(f"{where}model.pretrained file {path} does not exist")
    return path


def build_model(
    spec: ModelSpec,
    num_classes: int,
    *,
    data_root: Path | None = None,
    weights: Path | None = None,
    where: str = "",
) -> nn.Module:
    """Build ``spec``'s model with its overrides, then fill it with weights if any.

    Args:
        spec: model name, overrides and ``pretrained`` (``"imagenet"``, or an official
            checkpoint read by :func:`architectures.weights.load_official`, resolved
            against ``data_root``).
        num_classes: classes of the dataset.
        data_root: where relative ``pretrained`` paths point into.
        weights: a state dict of ours (``model_final.pt``); takes precedence over
            ``pretrained``, which only initialises training.
        where: prefix of error messages, e.g. ``"suite.toml: variant 'X': "``.

    Raises:
        ConfigError: unknown model or override, an invalid override value, or a weights
            file that is missing or does not fit the model.
    """
    overrides = dict(spec.overrides)
    try:
        if weights is None and spec.pretrained is not None:
            path = resolve_pretrained(spec, data_root, where)
            return load_official(spec.name, path, num_classes=num_classes, **overrides)
        model = create_model(spec.name, num_classes, **overrides)
    except (UnknownModelError, UnknownOverrideError) as error:
        raise ConfigError(f"{where}{error}") from None
    except WeightLoadError as error:
        raise ConfigError(f"{where}{error}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"{where}model {spec.name!r} with overrides {overrides}: {error}"
        ) from None
    if weights is not None:
        load_weights(model, weights, where)
    return model


def load_weights(model: nn.Module, path: Path, where: str = "") -> None:
    """Load a state dict of ours strictly, without executing code from the file."""
    if not path.is_file():
        raise ConfigError(f"{where}weights file {path} does not exist")
    try:
        state_dict = read_pth(path)
    except WeightLoadError as error:
        raise ConfigError(f"{where}cannot read weights {error}") from None
    misfit = (
        f"{where}weights {path} do not fit this model (check the model, its overrides "
        "and the number of classes)"
    )
    mismatch = key_mismatch(model.state_dict(), state_dict)
    if mismatch:
        raise ConfigError(f"{misfit}: {mismatch}")
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"{misfit}: {error}") from None
