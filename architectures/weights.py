"""Official checkpoints into our models: reading them safely and loading them strictly.

No Paddle is needed: a ``.pdparams`` file is a pickle of ``{name: numpy array}``, read here
by an unpickler that admits only what numpy arrays and plain containers need, so a crafted
file cannot run code. ``.pth`` files go through ``torch.load(..., weights_only=True)``.
The key mappings live with what they map: each model's metadata names the converter of its
full official checkpoints, each encoder converts its own ImageNet files. Loading is strict:
every key of the model (or of its encoder, for ImageNet files) must be filled with the right
shape, and every key of the file must be used, except the ones a converter returns as
intentionally unused.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from architectures._registry import create_model, model_meta
from architectures.backbones.base import Encoder
from architectures.meta import ModelMeta

logger = logging.getLogger(__name__)

PADDLE_STRUCTURE_KEY = "StructuredToParameterName@@"
"""Bookkeeping entry that ``paddle.save`` adds to every state dict (layer names); dropped."""

PADDLE_LEAF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"\._conv\.", ".conv."),
    (r"\._batch_norm\.", ".bn."),
    (r"\._mean$", ".running_mean"),
    (r"\._variance$", ".running_var"),
)
"""Paddle's leaf names -> PyTorch's (regex, replacement): PaddleSeg's ``layers.ConvBNReLU``
names its children ``_conv``/``_batch_norm``, and Paddle's BN keeps ``_mean``/``_variance``."""


def rename_key(key: str, renames: Sequence[tuple[str, str]]) -> str:
    """Apply ``(regex, replacement)`` pairs to ``key`` in order."""
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


# Globals a pickled {name: numpy array} may reference, and nothing else.
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1").
        ("_codecs", "encode"),
    }
)
# numpy 2 renamed numpy.core to numpy._core; old files name the former.
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class WeightLoadError(ValueError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the few numpy arrays need."""

    def __init__(self, file: BinaryIO, source: Path) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise WeightLoadError(
                f"{self._source}: refusing to unpickle global {module}.{name}; a .pdparams "
                "checkpoint holds only numpy arrays, so this file is not one (or is unsafe)"
            )
        if module.startswith("numpy.core."):
            module = module.replace("numpy.core", _NUMPY_CORE, 1)
        elif module.startswith("numpy._core."):
            module = module.replace("numpy._core", _NUMPY_CORE, 1)
        return super().find_class(module, name)


def read_pdparams(path: str | PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a PaddlePaddle ``.pdparams`` state dict without Paddle.

    Args:
        path: the file written by ``paddle.save(layer.state_dict(), path)``.

    Returns:
        ``{paddle_name: tensor}`` without the ``StructuredToParameterName@@`` entry.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightLoadError: the file is not such a pickle, or references any global beyond
            numpy arrays and plain containers (the message names the global).
    """
    path = Path(path)
    _check_exists(path)
    try:
        with path.open("rb") as file:
            content = _NumpyOnlyUnpickler(file, path).load()
    except WeightLoadError:
        raise
    except Exception as error:
        raise WeightLoadError(
            f"{path}: not a PaddlePaddle .pdparams checkpoint ({error})"
        ) from error
    if not isinstance(content, Mapping):
        raise WeightLoadError(
            f"{path}: a .pdparams checkpoint is a dict of arrays, got {type(content).__name__}"
        )
    state_dict = {}
    for key, value in content.items():
        if key == PADDLE_STRUCTURE_KEY:
            continue
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise WeightLoadError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a numpy array"
            )
        state_dict[key] = torch.tensor(value)
    return state_dict


def read_pth(path: str | PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a PyTorch state dict with ``torch.load(..., weights_only=True)``.

    A checkpoint that wraps the state dict under ``"state_dict"`` or ``"model"`` is unwrapped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightLoadError: the file is not a PyTorch checkpoint holding a state dict.
    """
    path = Path(path)
    _check_exists(path)
    content = load_without_code(path)
    if isinstance(content, Mapping) and not _is_state_dict(content):
        for wrapper in ("state_dict", "model"):
            if isinstance(content.get(wrapper), Mapping):
                content = content[wrapper]
                break
    if not isinstance(content, Mapping) or not _is_state_dict(content):
        raise WeightLoadError(f"{path}: the checkpoint holds no state dict of tensors")
    return dict(content)


def load_without_code(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only.

    Raises:
        WeightLoadError: the file is not a whole PyTorch file, or its pickle asks for an
            object the safe loader refuses (code a weights file never needs; it is not run).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"[Uu]nsupported (?:GLOBAL|global:?(?: GLOBAL)?) ([\w.]+)", str(error))
        if refused is None:
            detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(error))
            reason = detail.group(1) if detail else str(error).strip().splitlines()[-1]
            raise WeightLoadError(
                f"{path}: not a PyTorch checkpoint (unreadable pickle: {reason})"
            ) from None
        raise WeightLoadError(
            f"{path}: refused, nothing in it was run: its pickle asks for {refused.group(1)}, "
            "which a weights file never needs. Use weights only from a source you trust, and "
            "never load this file unsafely"
        ) from None
    except Exception as error:  # truncated zip, garbage, ...: torch raises several types
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WeightLoadError(
            f"{path}: not a PyTorch checkpoint ({type(error).__name__}: {first})"
        ) from None


def _is_state_dict(content: Mapping[Any, Any]) -> bool:
    return all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in content.items()
    )


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist or is not a file")


def load_official(
    name: str, path: str | PathLike[str], *, num_classes: int = 19, **overrides: Any
) -> nn.Module:
    """Build ``name`` and fill it strictly from an official checkpoint.

    Two kinds of file are accepted, chosen by what the model and its encoder know:

    - the ImageNet weights of the model's encoder (e.g. PaddleSeg's ``PP_STDCNet1/2``
      ``features.*`` files for STDC, torchvision's ``mobilenet_v2`` for MobileNetV2), read by
      the encoder's ``convert_imagenet`` whatever decoder the model puts on it, and loaded into
      the encoder only (the rest of the model keeps its initialisation);
    - a full official checkpoint of the model, mapped by its metadata's ``converter``
      (PaddleSeg ``.pdparams`` of PP-LiteSeg, the LiteSeg release files).

    ``.pdparams`` files go through the numpy-only unpickler (:func:`read_pdparams`, no Paddle
    needed), anything else through ``torch.load(weights_only=True)``. The model is returned in
    training mode, like any freshly built module: call ``.eval()`` for inference.

    Args:
        name: a registered model name, e.g. ``"pp_liteseg_t"``.
        path: the checkpoint file.
        num_classes: classes of the model; for a full checkpoint, those of its classifier
            (19 for Cityscapes).
        **overrides: model switches, as for :func:`architectures.create_model`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightLoadError: the file is not a readable checkpoint, no official format is known
            for the model, or any key is missing, unexpected or mis-shaped (the message lists
            them all).
    """
    path = Path(path)
    meta = model_meta(name)
    model = create_model(name, num_classes, **overrides)
    state_dict = read_pdparams(path) if path.suffix == ".pdparams" else read_pth(path)
    try:
        converted, unused, scope = _convert(model, meta, state_dict, name)
    except WeightLoadError as error:
        raise WeightLoadError(f"{path}: {error}") from error
    if unused:
        logger.info("%s: %d official keys intentionally unused: %s", path, len(unused), unused)
    _load_strict(model, converted, scope=scope, source=f"{path} into {name}")
    return model


def _convert(
    model: nn.Module, meta: ModelMeta, state_dict: Mapping[str, torch.Tensor], name: str
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """``(converted, unused, scope)``: an encoder's ImageNet file first, else the model's own."""
    for attribute, child in model.named_children():
        if isinstance(child, Encoder):
            imagenet = child.convert_imagenet(state_dict)
            if imagenet is not None:
                converted, unused = imagenet
                scope = attribute + "."
                return {scope + key: value for key, value in converted.items()}, unused, scope
    if meta.converter is None:
        hint = f"; it takes ImageNet weights: {meta.imagenet.name}" if meta.imagenet else ""
        raise WeightLoadError(f"no official checkpoint format is known for model {name!r}{hint}")
    converted, unused = meta.converter(state_dict)
    return converted, unused, ""


def _load_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, scope: str, source: str
) -> None:
    """Load ``state_dict`` into the keys of ``model`` that start with ``scope``, strictly.

    ``num_batches_tracked`` may be absent (Paddle has none; it only matters for momentum=None).
    """
    expected = {key: value for key, value in model.state_dict().items() if key.startswith(scope)}
    mismatch = key_mismatch(
        expected, state_dict, optional=lambda key: key.endswith("num_batches_tracked")
    )
    if mismatch:
        raise WeightLoadError(f"cannot load {source}: {mismatch}")
    model.load_state_dict(state_dict, strict=False)


# A key mismatch names this many keys of each kind; the rest are counted.
SHOWN_KEYS = 5


def key_mismatch(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    *,
    optional: Callable[[str], bool] = lambda key: False,
) -> str:
    """What keeps ``given`` from filling ``expected`` strictly, summarised; ``""`` if nothing.

    Per kind (missing, unexpected, mis-shaped) the count and the first
    :data:`SHOWN_KEYS` keys in sorted order, e.g. ``"2 missing: a.weight, b.bias"`` or
    ``"412 missing: a, b, c, d, e and 407 more"``; first, when no key is shared, that the
    file is likely of another model. Keys for which ``optional`` is true may be missing.
    """
    missing = sorted(key for key in expected if key not in given and not optional(key))
    unexpected = sorted(key for key in given if key not in expected)
    misshaped = sorted(
        f"{key} (checkpoint {tuple(value.shape)}, model {tuple(expected[key].shape)})"
        for key, value in given.items()
        if key in expected and value.shape != expected[key].shape
    )
    problems = [
        f"{len(keys)} {kind}: {_first_keys(keys)}"
        for kind, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if keys
    ]
    if problems and given and expected and expected.keys().isdisjoint(given):
        problems.insert(0, "no key in common (a checkpoint of another model?)")
    return "; ".join(problems)


def _first_keys(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown if len(keys) <= SHOWN_KEYS else f"{shown} and {len(keys) - SHOWN_KEYS} more"
