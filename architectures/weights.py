"""Official checkpoints into our models: PaddleSeg PP-LiteSeg, LiteSeg, ImageNet encoders.

No Paddle is needed: a ``.pdparams`` file is a pickle of ``{name: numpy array}``, read here
by an unpickler that admits only what numpy arrays and plain containers need, so a crafted
file cannot run code. ``.pth`` files go through ``torch.load(..., weights_only=True)``.
Loading is strict: every key of the model (or of its encoder, for ImageNet backbone files)
must be filled with the right shape, and every key of the file must be used, except the ones
listed here as intentionally unused.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from architectures._registry import create_model

logger = logging.getLogger(__name__)

PADDLE_STRUCTURE_KEY = "StructuredToParameterName@@"
"""Bookkeeping entry that ``paddle.save`` adds to every state dict (layer names); dropped."""

STDC_IMAGENET_UNUSED_PREFIXES = ("conv_last.", "fc.", "bn.", "linear.")
"""Keys of ImageNet STDC files (``PP_STDCNet1/2``) outside ``features.*`` that are dropped.

They belong to the ImageNet classifier of STDCNet (``conv_last`` 1x1 ConvBN, ``fc``, ``bn``,
``linear``; see STDC-Seg's ``nets/stdcnet.py``), which segmentation never runs. PaddleSeg's
own loader skips them the same way; any other key is an error.
"""

_SCALE_KEY = re.compile(r"^ppseg_head\.arm_list\.\d+\._scale$")

# Official PaddleSeg key -> our key, applied in order. Containers first, then Paddle's leaf names.
_PADDLE_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^ppseg_head\.cm\."), "context."),
    (re.compile(r"^ppseg_head\.arm_list\."), "fusions."),
    (re.compile(r"^seg_heads\."), "heads."),
    (re.compile(r"\.conv_xy_atten\."), ".attention."),
    (re.compile(r"\.avd_layer\.0\."), ".avd_layer.conv."),
    (re.compile(r"\.avd_layer\.1\."), ".avd_layer.bn."),
    (re.compile(r"\._conv\."), ".conv."),
    (re.compile(r"\._batch_norm\."), ".bn."),
    (re.compile(r"\._mean$"), ".running_mean"),
    (re.compile(r"\._variance$"), ".running_var"),
)

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
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightLoadError(f"{path}: not a PyTorch checkpoint ({error})") from error
    if isinstance(content, Mapping) and not _is_state_dict(content):
        for wrapper in ("state_dict", "model"):
            if isinstance(content.get(wrapper), Mapping):
                content = content[wrapper]
                break
    if not isinstance(content, Mapping) or not _is_state_dict(content):
        raise WeightLoadError(f"{path}: the checkpoint holds no state dict of tensors")
    return dict(content)


def _is_state_dict(content: Mapping[Any, Any]) -> bool:
    return all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in content.items()
    )


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist or is not a file")


def _paddle_to_ours(key: str) -> str:
    for pattern, replacement in _PADDLE_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def _is_stdc_imagenet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # ImageNet STDC files name the encoder's layers at top level: features.*, no model prefix.
    return any(key.startswith("features.") for key in state_dict)


def convert_official_pp_liteseg(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a PaddleSeg PP-LiteSeg or ImageNet STDC state dict to our keys.

    Full models (``backbone.*``, ``ppseg_head.*``, ``seg_heads.*``) map onto
    :class:`architectures.pp_liteseg.PPLiteSeg`; ImageNet STDC files (``features.*``) map onto
    its encoder (``backbone.features.*``), their classifier keys
    (:data:`STDC_IMAGENET_UNUSED_PREFIXES`) being returned as unused.

    UAFM_SpAtten's ``_scale`` (a frozen 1 standing in for the 1 of ``1 - alpha``, added to
    PaddleSeg after the release) has no counterpart in our model: it is accepted only when
    it is exactly 1 and then returned as unused.

    Returns:
        ``(converted, unused)``: the renamed tensors and the official keys dropped on purpose.

    Raises:
        WeightLoadError: a ``_scale`` entry differs from 1.
    """
    backbone_only = _is_stdc_imagenet(state_dict)
    converted: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, value in state_dict.items():
        if _SCALE_KEY.match(key):
            if value.numel() != 1 or float(value.reshape(-1)[0]) != 1.0:
                raise WeightLoadError(
                    f"{key} is {value.tolist()}; our UAFM computes y*(1-alpha), which equals "
                    "the official y*(_scale-alpha) only for _scale == 1"
                )
            unused.append(key)
        elif backbone_only and key.startswith(STDC_IMAGENET_UNUSED_PREFIXES):
            unused.append(key)
        elif backbone_only:
            converted["backbone." + _paddle_to_ours(key)] = value
        else:
            converted[_paddle_to_ours(key)] = value
    return converted, unused


def load_official(
    name: str, path: str | PathLike[str], *, num_classes: int = 19, **overrides: Any
) -> nn.Module:
    """Build ``name`` and fill it strictly from an official checkpoint.

    Supported files:

    - ``pp_liteseg_*``: a PaddleSeg ``.pdparams`` of a full PP-LiteSeg model, or an ImageNet
      STDC backbone (``features.*``, loaded into the encoder only; the rest of the model keeps
      its initialisation). Read without Paddle (see :func:`read_pdparams`).
    - ``liteseg_*``: the official LiteSeg release checkpoints, or torchvision's ImageNet
      MobileNetV2 weights (encoder only), converted by
      :mod:`architectures.liteseg_weights`.

    ``.pdparams`` files go through the numpy-only unpickler, anything else through
    ``torch.load(weights_only=True)``. The model is returned in training mode, like any
    freshly built module: call ``.eval()`` for inference.

    Args:
        name: a registered model name, e.g. ``"pp_liteseg_t"``.
        path: the checkpoint file.
        num_classes: classes of the model; for a full checkpoint, those of its classifier
            (19 for Cityscapes).
        **overrides: model switches, as for :func:`architectures.create_model`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WeightLoadError: the file is not a readable checkpoint, or any key is missing,
            unexpected or mis-shaped (the message lists them all).
    """
    path = Path(path)
    model = create_model(name, num_classes, **overrides)
    state_dict = read_pdparams(path) if path.suffix == ".pdparams" else read_pth(path)
    if name.startswith("liteseg_"):
        from architectures import liteseg_weights

        if liteseg_weights.is_torchvision_mobilenet_v2(state_dict):
            converted, unused = liteseg_weights.convert_torchvision_mobilenet_v2(state_dict)
            scope = "mobile_features."
        else:
            converted, unused = liteseg_weights.convert_official_liteseg(state_dict, name)
            scope = ""
    elif name.startswith("pp_liteseg"):
        try:
            converted, unused = convert_official_pp_liteseg(state_dict)
        except WeightLoadError as error:
            raise WeightLoadError(f"{path}: {error}") from error
        scope = "backbone." if _is_stdc_imagenet(state_dict) else ""
    else:
        raise WeightLoadError(f"no official checkpoint format is known for model {name!r}")
    if unused:
        logger.info("%s: %d official keys intentionally unused: %s", path, len(unused), unused)
    _load_strict(model, converted, scope=scope, source=f"{path} into {name}")
    return model


def _load_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, scope: str, source: str
) -> None:
    """Load ``state_dict`` into the keys of ``model`` that start with ``scope``, strictly.

    ``num_batches_tracked`` may be absent (Paddle has none; it only matters for momentum=None).
    """
    expected = {key: value for key, value in model.state_dict().items() if key.startswith(scope)}
    missing = sorted(
        key for key in expected if key not in state_dict and not key.endswith("num_batches_tracked")
    )
    unexpected = sorted(key for key in state_dict if key not in expected)
    misshaped = sorted(
        f"{key} (checkpoint {tuple(value.shape)}, model {tuple(expected[key].shape)})"
        for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    )
    problems = [
        f"{len(keys)} {kind}: {', '.join(keys)}"
        for kind, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", misshaped),
        )
        if keys
    ]
    if problems:
        raise WeightLoadError(f"cannot load {source}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=False)
