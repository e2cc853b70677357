"""Model code for liteseg-bench: PP-LiteSeg and LiteSeg, with their ablation switches.

Use :func:`create_model` with a name from :func:`list_models`; :func:`model_meta` gives each
model's paper, parameter counts, paper results and weight sources; official checkpoints load
with :func:`architectures.weights.load_official`.
"""

from architectures import liteseg, pp_liteseg  # noqa: F401  (registers the models)
from architectures._registry import (
    UnknownModelError,
    UnknownOverrideError,
    create_model,
    list_models,
    model_meta,
    model_override_types,
    model_overrides,
    register_model,
)

__all__ = [
    "UnknownModelError",
    "UnknownOverrideError",
    "create_model",
    "list_models",
    "model_meta",
    "model_override_types",
    "model_overrides",
    "register_model",
]
