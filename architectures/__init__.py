"""Model code for liteseg-bench: PP-LiteSeg and LiteSeg, with their ablation switches.

Use :func:`create_model` with a name from :func:`list_models`; official
checkpoints load with :func:`architectures.weights.load_official`.
"""

from architectures import liteseg, pp_liteseg  # noqa: F401  (registers the factories)
from architectures._registry import (
    UnknownModelError,
    UnknownOverrideError,
    create_model,
    list_models,
    model_overrides,
)

__all__ = [
    "UnknownModelError",
    "UnknownOverrideError",
    "create_model",
    "list_models",
    "model_overrides",
]
