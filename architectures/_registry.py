"""Model registry: every model is a builder, a variant literal and its metadata.

``register_model(name, build, config, meta)`` is all a new model needs. The accepted
overrides, their defaults and their types are derived from the literal (see
:mod:`architectures.variants`), so misspelt or ill-typed switches are rejected before
anything is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from architectures.meta import ModelMeta
from architectures.variants import (
    VariantConfig,
    check_num_classes,
    field_types,
    override_defaults,
    override_types,
)

ModelBuilder = Callable[..., nn.Module]
"""Builds a model: ``build(config, *, num_classes)``."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model."""

    name: str
    build: ModelBuilder
    config: VariantConfig
    meta: ModelMeta


_MODELS: dict[str, ModelEntry] = {}


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered."""


class UnknownOverrideError(ValueError):
    """Raised for an override that the model does not accept."""


def register_model(
    name: str, build: ModelBuilder, config: VariantConfig, meta: ModelMeta
) -> ModelEntry:
    """Register a model variant.

    Args:
        name: registry name, e.g. ``"pp_liteseg_t"``.
        build: called as ``build(config, num_classes=...)``.
        config: the variant literal; its ``OVERRIDES`` fields are the accepted overrides.
        meta: the model's metadata.
    """
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    missing = [key for key in config.OVERRIDES if key not in field_types(type(config))]
    if missing:
        raise ValueError(f"model {name!r}: OVERRIDES name no field of its config: {missing}")
    entry = ModelEntry(name, build, config, meta)
    _MODELS[name] = entry
    return entry


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    """The registration of ``name``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists valid names).
    """
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}"
        ) from None


def model_meta(name: str) -> ModelMeta:
    """The metadata of ``name`` (paper, counts, results, converters)."""
    return model_entry(name).meta


def model_overrides(name: str) -> dict[str, Any]:
    """The overrides ``name`` accepts, with their defaults."""
    return override_defaults(model_entry(name).config)


def model_override_types(name: str) -> dict[str, Any]:
    """The type annotation of every override ``name`` accepts (lists are accepted for tuples)."""
    return override_types(model_entry(name).config)


def create_model(name: str, num_classes: int, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, e.g. ``"pp_liteseg_t"``.
        num_classes: number of output classes.
        **overrides: switches of that model (see :func:`model_overrides`), e.g. ``sppm=False``
            or ``fusion="channel"``; lists are accepted where tuples are expected.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists valid names).
        UnknownOverrideError: an override is not accepted (the message lists accepted ones).
        ValueError: a value is invalid (the message names the key, the value and what is valid).
    """
    entry = model_entry(name)
    accepted = entry.config.OVERRIDES
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise UnknownOverrideError(
            f"model {name!r} does not accept override(s) {unknown}; "
            f"accepted: {sorted(accepted) or 'none'}"
        )
    check_num_classes(num_classes)
    config = dataclasses.replace(entry.config, **overrides)  # type: ignore[type-var]
    return entry.build(config, num_classes=num_classes)
