"""Model registry: every variant is a registered, keyword-only factory.

A factory's keyword arguments (besides ``num_classes``) are the overrides it
accepts, so the registry can reject misspelt switches before building anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

ModelFactory = Callable[..., nn.Module]

_FACTORIES: dict[str, ModelFactory] = {}


class UnknownModelError(ValueError):
    """Raised for a model name that is not registered."""


class UnknownOverrideError(ValueError):
    """Raised for an override that the model's factory does not accept."""


def register_model(factory: ModelFactory) -> ModelFactory:
    """Register ``factory`` under its function name."""
    name = factory.__name__
    if name in _FACTORIES:
        raise ValueError(f"model {name!r} is registered twice")
    _FACTORIES[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_FACTORIES)


def _factory(name: str) -> ModelFactory:
    try:
        return _FACTORIES[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}"
        ) from None


def model_overrides(name: str) -> dict[str, Any]:
    """The overrides ``name`` accepts, with their defaults."""
    parameters = inspect.signature(_factory(name)).parameters
    return {
        key: parameter.default
        for key, parameter in parameters.items()
        if key != "num_classes" and parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def create_model(name: str, num_classes: int, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, e.g. ``"pp_liteseg_t"``.
        num_classes: number of output classes.
        **overrides: constructor switches of that model (see :func:`model_overrides`),
            e.g. ``sppm=False`` or ``fusion="channel"``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists valid names).
        UnknownOverrideError: an override is not accepted (the message lists accepted ones).
    """
    factory = _factory(name)
    accepted = model_overrides(name)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise UnknownOverrideError(
            f"model {name!r} does not accept override(s) {unknown}; "
            f"accepted: {sorted(accepted) or 'none'}"
        )
    return factory(num_classes=num_classes, **overrides)
