"""Frozen, typed configuration of runs and suites.

Config flows one way (as in detectron2): built-in defaults < the suite file's
``[protocol]`` < a variant's ``set`` < ``--set`` on the command line. The result
is a frozen :class:`RunConfig` whose :meth:`RunConfig.run_id` is a hash of
everything that can change a run's outcome, so finished runs are recognised and
interrupted ones resumed.

Suite files are TOML (see ``experiments/``); unknown keys and wrong types are
reported with the file and the dotted key.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from architectures import UnknownModelError, model_meta
from architectures.meta import UnknownResultError
from bench.errors import ConfigError
from bench.hardware import Hardware, auto_precisions, detect

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"

PositiveInt = Annotated[int, Field(ge=1)]
Size = tuple[PositiveInt, PositiveInt]
"""``(height, width)`` in pixels, both at least 1."""
UNIONS = (typing.Union, types.UnionType)
# One path component of safe characters: a suite's name is its output folder's name.
SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"


class FrozenSpec(BaseModel):
    """Base of every file-backed spec: immutable, and unknown keys are errors.

    Numbers must be numbers: ``inf`` and ``nan`` are refused, and so are booleans where
    a number is expected (pydantic would read ``true`` as 1, so ``train.iters = true``
    would silently train one step).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and _is_numeric(field.annotation):
                    raise ValueError(f"{name} = {str(value).lower()}: a number is expected")
        return data


def _is_numeric(annotation: Any) -> bool:
    """Whether a field's type is a number, optional or not (``int``, ``float | None``)."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) in UNIONS else ()
    return annotation in (int, float) or any(member in (int, float) for member in members)


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    names = list(names)
    return sorted({name for name in names if names.count(name) > 1})


class SyntheticSpec(FrozenSpec):
    """Procedural dataset used by fast tests (written to a temporary folder)."""

    num_train: int = Field(24, ge=1)
    num_val: int = Field(8, ge=1)
    image_size: Size = (64, 64)
    num_classes: int = Field(4, ge=2)
    seed: int = 0


class DataSpec(FrozenSpec):
    """Which dataset and splits a run reads, and how it is loaded."""

    dataset: Literal["camvid", "camvid_paddleseg", "voc_sbd", "cityscapes", "synthetic"]
    train_split: str = "train"
    val_split: str = "val"
    cache: bool = Field(True, description="keep decoded images in memory (small datasets)")
    num_workers: int = Field(0, ge=0)
    synthetic: SyntheticSpec = SyntheticSpec()


class CropPass(FrozenSpec):
    """One pass of LiteSeg's multi-crop epoch: its crop size and rotation range.

    Args:
        crop_size: ``(height, width)`` of the crops of this pass.
        rotate_degrees: each crop is rotated by an angle uniform in ``[-d, d]``; 0 = none.
    """

    crop_size: Size
    rotate_degrees: float = Field(0.0, ge=0, le=180)


LITESEG_CITYSCAPES_PASSES = (
    CropPass(crop_size=(512, 1024), rotate_degrees=5.0),
    CropPass(crop_size=(768, 1536)),
    CropPass(crop_size=(360, 640)),
    CropPass(crop_size=(720, 1280)),
)
"""The four loaders of one official LiteSeg epoch, in order (tahaemara/LiteSeg train.py)."""


class AugmentSpec(FrozenSpec):
    """Training augmentation and normalisation.

    ``pipeline`` selects the recipe (details in :mod:`bench.data.transforms`):

    - ``"seed"``: HorizontalFlip, VerticalFlip, RandomBrightnessContrast,
      RandomScale(``scale_limit``), PadIfNeeded(constant; label padded with
      ignore), RandomCrop(``crop_size``).
    - ``"paddleseg"``: random scale in steps (``scale_range``, ``scale_step``),
      pad + random crop, horizontal flip, colour jitter (``color_jitter`` for
      brightness, contrast and saturation, ``hue_jitter`` for hue).
    - ``"liteseg"``: tahaemara/LiteSeg's epoch of ``passes``: every pass goes over
      the whole split with its own crop size (and rotation); flip, scale uniform in
      ``scale_range``, crop, where an image smaller than the crop is resized to it.
      ``crop_size`` is not used.
    - ``"none"``: pad + crop only.

    Evaluation always runs on the full image, normalised the same way.
    """

    pipeline: Literal["seed", "paddleseg", "liteseg", "none"] = "seed"
    crop_size: Size = (320, 320)
    scale_limit: tuple[float, float] = (-0.5, 1.0)
    scale_range: tuple[float, float] = (0.5, 2.0)
    scale_step: float = Field(0.25, gt=0)
    hflip: bool = True
    vflip: bool = True
    color_jitter: float = Field(0.5, ge=0)
    hue_jitter: float = Field(
        18.0,
        ge=0,
        le=128,
        description="PaddleSeg RandomDistort hue_range: shift in Pillow's 0-255 hue units",
    )
    passes: tuple[CropPass, ...] = Field(
        LITESEG_CITYSCAPES_PASSES,
        min_length=1,
        description="pipeline 'liteseg' only: the passes of one epoch, in order",
    )
    normalize: Literal["imagenet", "half"] = "imagenet"

    def passes_per_epoch(self) -> int:
        """How many times one epoch goes over the training split (``len(passes)`` for liteseg)."""
        return len(self.passes) if self.pipeline == "liteseg" else 1


class OptimSpec(FrozenSpec):
    """SGD with per-iteration poly decay after a linear warm-up, or LiteSeg's stepped poly.

    ``poly_step_epochs`` = S switches to tahaemara/LiteSeg's schedule (train.py): the
    learning rate is ``lr`` until epoch S-1, then at the start of every epoch e with
    ``e % S == S - 1`` it becomes ``(lr - end_lr) * (1 - e / epochs) ** poly_power +
    end_lr`` and stays until the next such epoch (epochs as defined by the augmentation
    passes; see :mod:`bench.schedule`). ``poly_step_resets_momentum`` clears the momentum
    buffers at those epochs, as the official code re-creates its SGD optimizer there.
    """

    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    warmup_iters: int = Field(0, ge=0)
    warmup_start_lr: float = Field(1e-5, ge=0)
    poly_power: float = Field(0.9, ge=0)
    end_lr: float = Field(0.0, ge=0)
    poly_step_epochs: int | None = Field(None, ge=1)
    poly_step_resets_momentum: bool = False

    @model_validator(mode="after")
    def _stepped_poly_has_no_warmup(self) -> OptimSpec:
        if self.poly_step_epochs is not None and self.warmup_iters:
            raise ValueError(
                "poly_step_epochs (LiteSeg's stepped poly) has no warm-up; "
                "set warmup_iters = 0 or leave poly_step_epochs unset"
            )
        if self.poly_step_resets_momentum and self.poly_step_epochs is None:
            raise ValueError("poly_step_resets_momentum needs poly_step_epochs")
        return self


class LossSpec(FrozenSpec):
    """Cross-entropy (``"ce"``) or OHEM cross-entropy (``"ohem"``, PaddleSeg semantics).

    ``weights`` weigh the model outputs in order (main first); a model with
    fewer outputs uses the leading weights.
    """

    kind: Literal["ce", "ohem"] = "ce"
    reduction: Literal["mean", "sum_per_image"] = Field(
        "mean",
        description="ce only: 'mean' over valid pixels, or LiteSeg's sum over valid pixels "
        "divided by the batch size (tahaemara/LiteSeg utils/loss.py)",
    )
    ohem_thresh: float = Field(0.7, gt=0, le=1)
    ohem_min_kept: int | None = Field(None, ge=1, description="default: batch*H*W // 16")
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)

    @model_validator(mode="after")
    def _sum_is_for_ce(self) -> LossSpec:
        if self.reduction != "mean" and self.kind != "ce":
            raise ValueError(
                f"reduction {self.reduction!r} applies to kind 'ce' only "
                f"(OHEM averages over its kept pixels); use reduction = 'mean'"
            )
        return self


class TrainSpec(FrozenSpec):
    """Length, batch and numerics of the training loop.

    The length is ``iters`` optimizer steps, or, when ``epochs`` is set, ``epochs``
    times the steps of one epoch, derived from the training split's size when the run
    starts (:func:`bench.schedule.epoch_layout`): per augmentation pass,
    ``floor(images / batch_size)`` batches with ``drop_last`` (PaddleSeg's
    DistributedBatchSampler), ``ceil`` without (the last batch of a pass is then
    smaller, as in LiteSeg's DataLoader). ``iters`` is ignored when ``epochs`` is set;
    the resolved count is recorded in the run record (``training.iters``).
    """

    iters: int = Field(1000, ge=1)
    epochs: int | None = Field(None, ge=1, description="when set, replaces iters (see above)")
    batch_size: int = Field(8, ge=1)
    drop_last: bool = Field(True, description="drop each pass's last incomplete batch")
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    sync_bn: bool = False
    checkpoint_every: int = Field(100, ge=1)
    eval_every: int = Field(0, ge=0, description="0: evaluate only at the end")
    log_every: int = Field(10, ge=1)


class EvalSpec(FrozenSpec):
    """Evaluation on the whole val split (no shuffle), in fp32, scored at label resolution.

    As PaddleSeg's ``aug_inference`` (``paddleseg/core/infer.py``; see
    :func:`bench.evaluate.predict_logits`):

    - ``scale`` resizes the network input (PaddleSeg's Cityscapes "scale0.5"
      protocol evaluates at 0.5); logits are resized back to the label size.
    - ``multiscale``: factors of ``scale`` to evaluate at and combine; PaddleSeg's
      "ms" columns use ``[0.75, 1.0, 1.25]``. ``[1.0]``: single scale.
    - ``flip``: also run the left-right mirrored input and combine (PaddleSeg's
      "flip" columns: ``flip_horizontal``).
    - ``combine``: ``"logits_mean"`` (PaddleSeg >= 2.8.0) or ``"softmax_sum"``
      (PaddleSeg <= 2.7); equal argmax for one scale without flip.
    """

    batch_size: int = Field(1, ge=1)
    scale: float = Field(1.0, gt=0)
    multiscale: tuple[float, ...] = Field((1.0,), min_length=1)
    flip: bool = False
    combine: Literal["logits_mean", "softmax_sum"] = "logits_mean"
    visualize: tuple[int, ...] = Field((0, 1, 2), description="val indices saved as predictions")

    @field_validator("multiscale")
    @classmethod
    def _positive_factors(cls, factors: tuple[float, ...]) -> tuple[float, ...]:
        if any(factor <= 0 for factor in factors):
            raise ValueError(f"every factor must be > 0, got {list(factors)}")
        return factors


RuntimeName = Literal["torch", "onnxruntime", "openvino", "tensorrt"]
Precision = Literal["fp32", "bf16", "fp16", "int8"]
RUNTIME_NAMES: tuple[RuntimeName, ...] = ("torch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16", "int8")


class InferenceOptions(FrozenSpec):
    """How the ``torch`` runtime runs the model when its latency is measured.

    The precision is not an option here: it is a dimension of every measurement
    (:attr:`ProfileSpec.precisions`, ``precision=`` of :func:`bench.profile.measure_latency`).

    Args:
        channels_last: NHWC memory format for the weights and the input.
        fold_bn: merge eval-mode batch norms into their convolutions
            (:func:`bench.profile.fold_batchnorm`).
        backend: ``eager``; ``inductor`` = ``torch.compile`` with weight freezing;
            ``torchscript`` = ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``
            (on CPU: oneDNN convolutions with pre-packed weights).
        cuda_graphs: replay the forward as a captured CUDA graph (CUDA only; with
            ``inductor`` this is ``torch.compile(mode="reduce-overhead")``).
    """

    channels_last: bool = False
    fold_bn: bool = False
    backend: Literal["eager", "inductor", "torchscript"] = "eager"
    cuda_graphs: bool = False


class RuntimePrecisions(FrozenSpec):
    """Precisions of one runtime when they differ from :attr:`ProfileSpec.precisions`.

    E.g. ``torch = ["fp32"]`` next to ``precisions = ["fp32", "int8"]``: int8 is
    measured on the other runtimes only (torch has no int8 path).
    """

    torch: tuple[Precision, ...] | None = None
    onnxruntime: tuple[Precision, ...] | None = None
    openvino: tuple[Precision, ...] | None = None
    tensorrt: tuple[Precision, ...] | None = None


class ProfileSpec(FrozenSpec):
    """Cost measurement settings (see :mod:`bench.profile` and :mod:`bench.deploy`).

    Every latency is measured for each (runtime, precision) combination of
    :meth:`combinations`, all models and combinations side by side in interleaved
    rounds. ``inference`` holds the options of the ``torch`` runtime; its default
    (eager, NHWC, batch norms folded into convolutions) needs no compilation and is
    1.1-2.3x faster than plain eager NCHW on CPU. ONNX Runtime, OpenVINO and TensorRT
    run the ONNX export of the model (batch norms folded). ``int8`` is post-training
    static quantization calibrated on ``calibration_images`` images.
    """

    flops_sizes: tuple[Size, ...] = ((512, 1024),)
    latency_size: Size = (512, 1024)
    latency_batch: int = Field(1, ge=1)
    warmup: int = Field(3, ge=0)
    repeats: int = Field(10, ge=1)
    threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores")
    inference: InferenceOptions = InferenceOptions(channels_last=True, fold_bn=True)
    runtimes: tuple[RuntimeName, ...] = Field(("torch",), min_length=1)
    precisions: tuple[Precision, ...] | Literal["auto"] = Field(
        ("fp32",),
        min_length=1,
        description='"auto": fp32 and every reduced precision each runtime runs natively on '
        "the machine measuring (bench.hardware.auto_precisions)",
    )
    runtime_precisions: RuntimePrecisions = RuntimePrecisions()
    calibration_images: int = Field(32, ge=1, description="training images calibrating int8")

    @model_validator(mode="after")
    def _runtime_precisions_name_listed_runtimes(self) -> ProfileSpec:
        for runtime in RUNTIME_NAMES:
            if (
                getattr(self.runtime_precisions, runtime) is not None
                and runtime not in self.runtimes
            ):
                raise ValueError(
                    f"runtime_precisions.{runtime} is set but {runtime!r} is not in runtimes "
                    f"{list(self.runtimes)}"
                )
        return self

    def combinations(
        self, device: str = "cpu", hardware: Hardware | None = None
    ) -> list[tuple[RuntimeName, Precision]]:
        """Every measured ``(runtime, precision)`` pair, in the order listed, without repeats.

        ``precisions = "auto"`` resolves per runtime for ``device`` on ``hardware`` (default:
        this machine, :func:`bench.hardware.detect`); a runtime's own list wins over it.
        """
        pairs: dict[tuple[RuntimeName, Precision], None] = {}
        for runtime in self.runtimes:
            own = getattr(self.runtime_precisions, runtime)
            if own is not None:
                precisions = own
            elif self.precisions == "auto":
                precisions = auto_precisions(runtime, device, hardware or detect())
            else:
                precisions = self.precisions
            for precision in precisions:
                pairs[(runtime, precision)] = None
        return list(pairs)


class ProtocolSpec(FrozenSpec):
    """Everything shared by the runs of a suite."""

    data: DataSpec
    augment: AugmentSpec = AugmentSpec()
    optim: OptimSpec = OptimSpec()
    loss: LossSpec = LossSpec()
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    profile: ProfileSpec = ProfileSpec()


class ModelSpec(FrozenSpec):
    """A registered model name, its constructor overrides and optional initial weights.

    ``pretrained`` is a path to an official checkpoint (full model or ImageNet
    backbone) read by ``architectures.weights.load_official``; relative paths are
    resolved against the data root.
    """

    name: str
    overrides: dict[str, Any] = {}
    pretrained: str | None = None


class Expected(FrozenSpec):
    """An mIoU (percent) this suite should reach, within a tolerance."""

    miou: float
    tolerance: float = Field(gt=0)


class VariantSpec(FrozenSpec):
    """One entry of a suite: a model plus only what differs from the protocol."""

    name: str = Field(min_length=1)
    model: str
    overrides: dict[str, Any] = {}
    pretrained: str | None = Field(None, description="official checkpoint, see ModelSpec")
    preset: str | None = Field(None, description="name of a suite preset applied before `set`")
    set: dict[str, Any] = Field({}, description="protocol overrides by dotted key")
    seeds: tuple[int, ...] | None = Field(None, min_length=1)
    group: str = "main"
    reference: str | None = Field(None, description="variant an ablation is compared with")
    description: str = ""
    paper: str | None = Field(
        None, description="key of a paper result in the model's metadata (architectures.meta)"
    )
    expected: Expected | None = None
    recipe: str | None = Field(
        None, description="official recipe the variant follows (experiments/recipes/NAME.toml)"
    )
    deviations: dict[str, str] = Field(
        {}, description="recipe item -> why this variant departs from the official value"
    )
    checkpoint: Literal["final", "best"] = Field(
        "final",
        description="the evaluation the report shows and `expected` checks: the final weights, "
        "or the best periodic evaluation (PaddleSeg's best_model)",
    )
    deployed_accuracy: bool = Field(
        True,
        description="after training, score every reduced precision of the profile's "
        "runtimes on the validation split (its accuracy cost against the fp32 metrics)",
    )
    evaluates: str | None = Field(
        None,
        description="a variant of the suite whose trained runs this one evaluates again with "
        "its own eval settings (e.g. PP-LiteSeg-T2 = T1 evaluated at 0.75); no training",
    )

    @model_validator(mode="after")
    def _paper_result_exists(self) -> VariantSpec:
        if self.paper is not None:
            try:
                model_meta(self.model).result(self.paper)
            except (UnknownModelError, UnknownResultError) as error:
                raise ValueError(
                    f"variant {self.name!r}: paper = {self.paper!r}: {error}"
                ) from None
        return self


class SuiteSpec(FrozenSpec):
    """A whole experiment file: protocol, variants, seeds and references to paper results."""

    name: str = Field(description="the output folder OUT/NAME (one safe folder name)")
    description: str = ""
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    protocol_note: str = ""
    protocol: ProtocolSpec
    presets: dict[str, dict[str, Any]] = Field(
        {}, description="named protocol overrides (dotted keys) that variants opt into"
    )
    recipe: str | None = Field(None, description="default recipe of the variants")
    deviations: dict[str, str] = Field(
        {}, description="recipe item -> reason, for every variant (a variant's own win)"
    )
    variants: tuple[VariantSpec, ...]

    @field_validator("name")
    @classmethod
    def _one_safe_folder_name(cls, name: str) -> str:
        if not re.fullmatch(SAFE_NAME, name) or len(name) > 100:
            raise ValueError(
                f"{name!r} is the suite's output folder (OUT/NAME): use one folder name of "
                "letters, digits, '.', '_' and '-' that starts with a letter or digit "
                "(at most 100 characters)"
            )
        return name

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: tuple[VariantSpec, ...]) -> tuple[VariantSpec, ...]:
        duplicates = repeated(v.name for v in variants)
        if duplicates:
            raise ValueError(f"variant names must be unique; repeated: {duplicates}")
        return variants

    @model_validator(mode="after")
    def _references_exist(self) -> SuiteSpec:
        names = {v.name for v in self.variants}
        for variant in self.variants:
            if variant.reference is not None and variant.reference not in names:
                raise ValueError(
                    f"variant {variant.name!r}: reference {variant.reference!r} is not a "
                    f"variant of this suite (variants: {sorted(names)})"
                )
            if variant.preset is not None and variant.preset not in self.presets:
                raise ValueError(
                    f"variant {variant.name!r}: preset {variant.preset!r} is not defined "
                    f"(presets: {sorted(self.presets)})"
                )
            if variant.evaluates is not None:
                source = next((v for v in self.variants if v.name == variant.evaluates), None)
                if source is None or source.evaluates is not None:
                    raise ValueError(
                        f"variant {variant.name!r}: evaluates = {variant.evaluates!r} must name "
                        "a variant of this suite that trains (has no `evaluates` itself)"
                    )
        return self


class RunConfig(FrozenSpec):
    """The fully resolved configuration of one training run."""

    suite: str
    variant: str
    seed: int
    model: ModelSpec
    data: DataSpec
    augment: AugmentSpec
    optim: OptimSpec
    loss: LossSpec
    train: TrainSpec
    eval: EvalSpec
    profile: ProfileSpec

    def identity(self) -> dict[str, Any]:
        """What determines the outcome of a run (names and profile settings excluded)."""
        return self.model_dump(mode="json", exclude={"suite", "variant", "profile"})

    def training_identity(self) -> dict[str, Any]:
        """What determines the trained weights: :meth:`identity` without the evaluation."""
        return self.model_dump(mode="json", exclude={"suite", "variant", "profile", "eval"})

    def run_id(self) -> str:
        """A short, stable hash of :meth:`identity`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: dotted.key: message``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see bench/config.py for accepted keys)"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML literal, falling back to a plain string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """Turn ``["train.iters=10", ...]`` into ``{"train.iters": 10, ...}``."""
    parsed: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.iters=100")
        parsed[key.strip()] = parse_value(value.strip())
    return parsed


def apply_dotted(tree: Mapping[str, Any], updates: Mapping[str, Any], source: str) -> dict:
    """Return a copy of ``tree`` with ``{"a.b": v}`` updates applied.

    Only existing sections may be entered; leaf keys are checked later by the
    schema, so a misspelt leaf is reported as an unknown key.
    """
    result = json.loads(json.dumps(tree))
    for dotted, value in updates.items():
        parts = dotted.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"{source}: {dotted}: {prefix} is a value, not a section")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return result


_NOT_SETTABLE = ("suite", "variant", "seed")


def check_run_keys(updates: Mapping[str, Any], source: str) -> None:
    """Reject dotted keys that name no field of :class:`RunConfig` (free-form dicts excepted)."""
    for dotted in updates:
        model: type[BaseModel] | None = RunConfig
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            if model is None:  # inside a free-form dict such as model.overrides
                break
            accepted = sorted(k for k in model.model_fields if k not in _NOT_SETTABLE)
            if part not in accepted:
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"{source} {dotted}: unknown key {prefix!r} (accepted here: {accepted})"
                )
            annotation = model.model_fields[part].annotation
            is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            model = annotation if is_section else None


def suite_path(name_or_path: str | Path) -> Path:
    """Resolve a suite name (``camvid-quick``) or a path to its TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"suite file {candidate} does not exist")
        return candidate
    path = EXPERIMENTS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown suite {str(name_or_path)!r}; available: {', '.join(available_suites())} "
            f"(or pass a path to a .toml file)"
        )
    return path


def available_suites() -> list[str]:
    """Names of the suites shipped in experiments/."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.toml"))


def load_suite(name_or_path: str | Path) -> SuiteSpec:
    """Read and validate a suite file; errors name the file and the key."""
    path = suite_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None


def suite_file_hash(name_or_path: str | Path) -> str:
    """SHA-256 of the suite file's bytes (provenance in reports)."""
    return hashlib.sha256(suite_path(name_or_path).read_bytes()).hexdigest()


def resolve_runs(
    suite: SuiteSpec, cli_set: Mapping[str, Any] | None = None, source: str = "suite"
) -> list[RunConfig]:
    """Expand a suite into one :class:`RunConfig` per variant and seed.

    Order: protocol < the variant's preset < the variant's ``set`` < ``cli_set``
    (``--set`` overrides: dotted keys such as ``train.iters`` or
    ``model.overrides.sppm``, applied to every run).
    """
    check_run_keys(cli_set or {}, "--set")
    base = suite.protocol.model_dump(mode="json")
    runs = []
    for variant in suite.variants:
        tree = dict(base)
        tree["model"] = {
            "name": variant.model,
            "overrides": dict(variant.overrides),
            "pretrained": variant.pretrained,
        }
        if variant.preset is not None:
            preset = suite.presets[variant.preset]
            tree = apply_dotted(tree, preset, f"{source}: presets.{variant.preset}")
        tree = apply_dotted(tree, variant.set, f"{source}: variant {variant.name!r}: set")
        tree = apply_dotted(tree, cli_set or {}, "--set")
        for seed in variant.seeds or suite.seeds:
            payload = {**tree, "suite": suite.name, "variant": variant.name, "seed": seed}
            try:
                runs.append(RunConfig.model_validate(payload))
            except ValidationError as error:
                where = f"{source}: variant {variant.name!r}"
                raise ConfigError(format_validation_error(error, where)) from None
    return runs
