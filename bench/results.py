"""Run records: schema, atomic writes, and loading a suite's records as a DataFrame.

One JSON record per run lives at ``RunLayout.result`` (see :mod:`bench.layout`).
Every number carries the settings it was measured with (counter and
convention for FLOPs; runtime, version, precision, device and threads for latency),
so tables can say how each value was obtained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.files import atomic_write_text, read_problem, set_aside

# 2: latency records name their runtime, its version, the precision (was ``dtype``), the
# timing scope and the interleaved session; runs may carry ``deployed`` accuracies.
SCHEMA_VERSION = 2

RunStatus = Literal["done", "failed"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetInfoRecord(_Record):
    name: str
    train_split: str
    val_split: str
    num_classes: int
    ignore_index: int
    class_names: list[str]
    palette: list[tuple[int, int, int]]


class Metrics(_Record):
    """Confusion-matrix metrics over a whole split (fractions in [0, 1]).

    Per-class values are None where undefined (zero denominator). Records written
    before precision and the PaddleSeg-convention mIoU were recorded load with
    ``per_class_precision`` empty and ``miou_paddleseg`` None; their
    ``per_class_acc`` (recall) is read as ``per_class_recall``.
    """

    miou: float = Field(description="mean IoU over classes with non-zero union (mmsegmentation)")
    miou_paddleseg: float | None = Field(
        None,
        description="mean IoU with zero-union classes counted as 0 and kept in the mean "
        "(PaddleSeg, paddleseg/utils/metrics.py mean_iou)",
    )
    pixel_acc: float = Field(description="correct / valid pixels (PaddleSeg's 'Acc')")
    macc: float = Field(description="mean per-class recall over classes in the ground truth")
    per_class_iou: dict[str, float | None]
    per_class_recall: dict[str, float | None] = Field(
        description="TP / ground-truth pixels of the class"
    )
    per_class_precision: dict[str, float | None] = Field(
        {},
        description="TP / predicted pixels of the class (PaddleSeg's 'Class Acc' before "
        "2.5, 'Class Precision' since)",
    )
    absent_classes: list[str] = Field(
        description="classes with zero union: NaN IoU, excluded from miou, 0 in miou_paddleseg"
    )
    num_images: int
    per_image_confusion: list[list[int]] | None = Field(
        None,
        description="each scored image's C x C confusion matrix (rows = ground truth), "
        "flattened row-major, in split order: the unit a bootstrap over images resamples",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_recall_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "per_class_acc" in data:
            data = dict(data)
            data.setdefault("per_class_recall", data.pop("per_class_acc"))
        return data


class ParamCount(_Record):
    total: int
    trainable: int
    inference: int = Field(description="parameters used by an eval-mode forward")
    per_module: dict[str, int]


class FlopCount(_Record):
    counter: str
    convention: str
    input_size: tuple[int, int]
    gflops: float
    unsupported_ops: dict[str, int] = {}
    by_operator: dict[str, float] = Field({}, description="GFLOPs per operator, as counted")


Timing = Literal["compute", "end_to_end"]
TIMING_LABELS: dict[str, str] = {
    "compute": "engine only (no host/device copies)",
    "end_to_end": "end-to-end",
}
# Schema-1 records said "float32" or "fp32" in ``dtype``.
_V1_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


class Latency(_Record):
    """One latency measurement and every setting it depends on.

    ``timing``: ``compute`` = input and output stay in device memory, no host/device
    copies are timed (TensorRT "engine only", the PP-LiteSeg paper's method; torch on
    CUDA); ``end_to_end`` = from a host input to a host output (on CPU the only kind).
    ``session`` is shared by all latencies measured side by side in one interleaved
    session (:func:`bench.profile.measure_deployments`): only those compare directly.
    """

    runtime: str = Field("torch", description="torch, onnxruntime, openvino or tensorrt")
    runtime_version: str
    precision: str = Field(description="fp32, bf16, fp16 or int8")
    timing: Timing = "end_to_end"
    device: str
    device_name: str
    cpu_features: list[str] = Field(
        [], description="the CPU's matrix features (bench.hardware), which pick its kernels"
    )
    input_size: tuple[int, int]
    batch: int
    threads: int | None
    warmup: int
    repeats: int
    rounds: int = Field(1, description="interleaved rounds the repeats were split into")
    session: str | None = Field(None, description="id of the side-by-side measurement")
    round_medians_ms: list[float] = Field(
        [],
        description="median of each interleaved round, in round order: the paired samples "
        "latency comparisons within one session are computed from (bench.stats)",
    )
    median_ms: float
    iqr_ms: float
    fps: float
    channels_last: bool = False
    cuda_graphs: bool = False
    bn_folded: bool = False
    backend: str = Field(
        "eager",
        description="torch: eager, inductor or torchscript; onnxruntime: execution provider; "
        "openvino: device plugin; tensorrt: engine",
    )
    calibration: str | None = Field(None, description="int8: what calibrated the ranges")

    @model_validator(mode="before")
    @classmethod
    def _from_schema_1(cls, data: Any) -> Any:
        """Schema-1 records: torch only, ``dtype`` instead of ``precision``, no version."""
        if isinstance(data, dict) and "dtype" in data and "precision" not in data:
            data = dict(data)
            dtype = data.pop("dtype")
            data.update(precision=_V1_DTYPES.get(dtype, dtype), runtime="torch")
            data.setdefault("runtime_version", "unknown")
        return data

    def settings(self) -> tuple[str, ...]:
        """What this number depends on besides the model, as short labels in reading order.

        The one formatter of latency settings: the CLI joins them with commas, the report
        with dots, and the report groups comparable numbers by them.
        """
        flags = [name for name in ("channels_last", "cuda_graphs") if getattr(self, name)]
        if self.bn_folded:
            flags.append("bn folded")
        threads = "threads default" if self.threads is None else f"{self.threads} threads"
        height, width = self.input_size
        return (
            f"{self.device} ({self.device_name})",
            f"{self.runtime} {self.runtime_version}",
            self.backend,
            self.precision,
            TIMING_LABELS[self.timing],
            f"{height}×{width}",
            f"batch {self.batch}",
            threads,
            *flags,
            *([f"calibrated on {self.calibration}"] if self.calibration else []),
        )


class Cost(_Record):
    params: ParamCount
    flops: list[FlopCount]
    latency: list[Latency]


class DeployedAccuracy(_Record):
    """Validation metrics of a trained model deployed on a runtime at a reduced precision.

    Computed with the same metric code as the run's own ``metrics`` (fp32 PyTorch), so
    the difference is the accuracy cost of the runtime and precision.
    """

    runtime: str
    runtime_version: str
    precision: str
    device: str = "cpu"
    threads: int | None = None
    calibration_images: int | None = Field(None, description="int8: images calibrating ranges")
    calibration_source: str | None = Field(None, description="e.g. 'camvid train'")
    metrics: Metrics


class Curves(_Record):
    step: list[int] = []
    loss: list[float] = []
    lr: list[float] = []
    val_step: list[int] = []
    val_miou: list[float] = []


class Training(_Record):
    iters: int = Field(description="steps trained (resolved from train.epochs when set)")
    steps_per_epoch: int | None = Field(
        None, description="optimizer steps per epoch (every augmentation pass over the split)"
    )
    epochs: float | None = Field(None, description="iters / steps_per_epoch")
    wall_time_s: float
    images_per_s: float
    final_loss: float
    resumed_from: int | None = None
    curves: Curves


class BestEvaluation(_Record):
    """The best of a run's periodic evaluations (the final one included), as PaddleSeg's
    ``best_model`` (``paddleseg/core/train.py``: kept when its mIoU beats every earlier one).
    """

    step: int = Field(description="training step whose weights were evaluated")
    metrics: Metrics
    weights: str = Field("model_best.pt", description="weights file, relative to the run dir")


class Environment(_Record):
    python: str
    torch: str
    torchvision: str
    platform: str
    device: str
    device_name: str
    threads: int
    cores: int | None = Field(None, description="CPU cores the process could use")
    cpu_features: list[str] = Field(
        [], description="the CPU's matrix features (bench.hardware: AVX2 ... AMX-INT8)"
    )
    git_commit: str | None
    world_size: int = 1


class RunRecord(_Record):
    """What one run produced; the input of the report stage."""

    schema_version: int = SCHEMA_VERSION
    suite: str
    variant: str
    group: str
    reference: str | None
    model: str
    overrides: dict[str, Any]
    seed: int
    run_id: str
    config: dict[str, Any]
    status: RunStatus
    error: str | None = None
    dataset: DatasetInfoRecord | None = None
    metrics: Metrics | None = None
    best: BestEvaluation | None = Field(
        None, description="best periodic evaluation; `metrics` is the final one"
    )
    cost: Cost | None = None
    training: Training | None = None
    environment: Environment | None = None
    evaluated_from: str | None = Field(
        None, description="run id whose trained weights this evaluation-only run scored"
    )
    predictions: dict[int, str] = Field(
        {}, description="val index -> PNG of predicted class indices, relative to the run dir"
    )
    deployed: list[DeployedAccuracy] = Field(
        [], description="accuracy of the trained model on other runtimes and precisions"
    )
    finished_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


def write_record(path: Path, record: RunRecord) -> Path:
    """Atomically write ``record`` to ``path`` (a run's ``RunLayout.result``)."""
    atomic_write_text(path, record.model_dump_json(indent=2))
    return path


def read_record(path: Path) -> RunRecord | None:
    """The record at ``path``, or None if the run has not finished.

    A record that cannot be read (not JSON, or not a record) is set aside
    (:func:`bench.files.set_aside`) and reads as None, so its run is done again and the
    rest of the suite is not held up by one damaged file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return RunRecord.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        set_aside(path, read_problem(error), "its run counts as not finished and runs again")
        return None


def records_to_frame(records: Iterable[RunRecord]):
    """One row per run with the headline numbers, for pandas users and the report."""
    import pandas as pd

    rows = []
    for record in records:
        row: dict[str, Any] = {
            "suite": record.suite,
            "variant": record.variant,
            "group": record.group,
            "reference": record.reference,
            "model": record.model,
            "overrides": json.dumps(record.overrides, sort_keys=True),
            "seed": record.seed,
            "run_id": record.run_id,
            "status": record.status,
            "error": record.error,
        }
        if record.metrics is not None:
            row.update(
                miou=record.metrics.miou,
                pixel_acc=record.metrics.pixel_acc,
                macc=record.metrics.macc,
                miou_paddleseg=record.metrics.miou_paddleseg,
            )
        if record.cost is not None:
            row.update(
                params_total=record.cost.params.total,
                params_inference=record.cost.params.inference,
            )
            for flops in record.cost.flops:
                height, width = flops.input_size
                row[f"gflops[{flops.counter}]@{height}x{width}"] = flops.gflops
            for latency in record.cost.latency:
                height, width = latency.input_size
                key = (
                    f"{latency.device}/{latency.runtime}/{latency.precision}"
                    f"/{latency.timing}@{height}x{width}"
                )
                row[f"latency_ms[{key}]"] = latency.median_ms
                row[f"fps[{key}]"] = latency.fps
        for deployed in record.deployed:
            key = f"{deployed.runtime}/{deployed.precision}"
            row[f"miou[{key}]"] = deployed.metrics.miou
            row[f"pixel_acc[{key}]"] = deployed.metrics.pixel_acc
        if record.training is not None:
            row.update(
                train_iters=record.training.iters,
                train_wall_time_s=record.training.wall_time_s,
                train_images_per_s=record.training.images_per_s,
                final_loss=record.training.final_loss,
            )
        rows.append(row)
    return pd.DataFrame(rows)
