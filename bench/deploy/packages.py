"""The optional packages of the runtimes, and the error that says how to install one."""

from __future__ import annotations

import importlib
from types import ModuleType

from bench.errors import ConfigError

DEPLOY_EXTRA = "pip install 'liteseg-bench[deploy]'"


class RuntimeMissingError(ConfigError):
    """A runtime's Python package is not installed."""


def require(module: str, runtime: str, install: str = DEPLOY_EXTRA) -> ModuleType:
    """Import ``module`` or raise a :class:`RuntimeMissingError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise RuntimeMissingError(
            f"runtime {runtime!r} needs the Python package {module!r}, which is not "
            f"installed ({error}); install it with: {install}"
        ) from None
