"""Variant literals: frozen configs validated against their own type annotations.

Every model variant is one frozen dataclass instance deriving from :class:`VariantConfig`
(as timm's ``_cfg`` literals). Its ``OVERRIDES`` name the fields that
:func:`architectures.create_model` accepts as overrides; their defaults are the literal's
values and their types the field annotations, so nothing about a switch is written twice.
Values are checked on creation: lists become tuples where a tuple is annotated (TOML has
no tuples), and a wrong value raises ``ValueError`` naming the key, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, ClassVar, Literal


class VariantConfig:
    """Base of the variant literals (subclasses are ``@dataclass(frozen=True)``).

    Supported field annotations: ``bool``, ``int`` (positive), ``str``, ``Literal[...]`` of
    strings, ``tuple[int, ...]`` and ``tuple[int, int, int]`` (positive ints), and any of
    these ``| None``.
    """

    OVERRIDES: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, list) and typing.get_origin(hints[field.name]) is tuple:
                value = tuple(value)
                object.__setattr__(self, field.name, value)
            check_value(field.name, value, hints[field.name])


@functools.cache
def field_types(config_class: type) -> dict[str, Any]:
    """The resolved annotation of every field of a variant config class."""
    return typing.get_type_hints(config_class)


def override_defaults(config: VariantConfig) -> dict[str, Any]:
    """The overrides a variant accepts, with its values as defaults."""
    return {key: getattr(config, key) for key in config.OVERRIDES}


def override_types(config: VariantConfig) -> dict[str, Any]:
    """The annotation of every override a variant accepts."""
    hints = field_types(type(config))
    return {key: hints[key] for key in config.OVERRIDES}


def describe(annotation: Any) -> str:
    """What ``annotation`` accepts, in words."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "a non-empty list of positive ints"
        return f"a list of {len(args)} positive ints"
    return {bool: "True or False", int: "a positive int", str: "a string", type(None): "None"}[
        annotation
    ]


def _valid(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_valid(value, arg) for arg in args)
    if origin is Literal:
        return isinstance(value, str) and value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        length_ok = len(value) > 0 if args[-1] is Ellipsis else len(value) == len(args)
        return length_ok and all(_valid(item, int) for item in value)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if annotation is type(None):
        return value is None
    return isinstance(value, annotation)


def check_value(key: str, value: Any, annotation: Any) -> None:
    """Raise ``ValueError`` naming ``key``, ``value`` and what is valid unless it fits."""
    if not _valid(value, annotation):
        raise ValueError(f"{key}={value!r} is not valid; expected {describe(annotation)}")


def check_num_classes(num_classes: Any) -> None:
    """``num_classes`` must be a positive int."""
    check_value("num_classes", num_classes, int)
