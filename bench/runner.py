"""Plans a suite's grid of runs, validates it, runs what is missing and records the results.

Every run is an independent, idempotent job keyed by its run id: a finished
run (``result.json``) is skipped, an interrupted one resumes from its
checkpoint, and a cluster can run ``liteseg-bench run SUITE --only RUN_ID`` per
task with the output directory as the only shared state.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import platform
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from architectures import create_model, model_overrides
from bench.config import ProfileSpec, RunConfig, SuiteSpec, VariantSpec, resolve_runs
from bench.data import DatasetInfo, build_dataset, dataset_info
from bench.distributed import DistContext
from bench.errors import ConfigError, DatasetError, TrainingDiverged, UserError
from bench.profile import profile_model, profile_models
from bench.results import (
    Cost,
    DatasetInfoRecord,
    Environment,
    RunRecord,
    atomic_write_bytes,
    atomic_write_text,
    read_record,
    write_record,
)
from bench.train import CHECKPOINT_FILE, WEIGHTS_FILE, Trainer

log = logging.getLogger(__name__)

PlanStatus = Literal["done", "failed", "partial", "missing"]
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a suite and what the output directory says about it."""

    config: RunConfig
    variant: VariantSpec
    run_dir: Path
    status: PlanStatus
    record: RunRecord | None

    @property
    def run_id(self) -> str:
        return self.config.run_id()


def suite_dir(out_dir: Path, suite: SuiteSpec) -> Path:
    """Where a suite's runs, samples and report live."""
    return out_dir / suite.name


def _status(run_dir: Path) -> tuple[PlanStatus, RunRecord | None]:
    record = read_record(run_dir)
    if record is not None:
        return record.status, record
    if (run_dir / CHECKPOINT_FILE).is_file():
        return "partial", None
    return "missing", None


def plan_suite(
    suite: SuiteSpec,
    out_dir: Path,
    *,
    cli_set: Mapping[str, Any] | None = None,
    only: Sequence[str] = (),
    source: str = "suite",
) -> list[PlannedRun]:
    """Expand ``suite`` into runs with their status; ``only`` keeps variant names or run ids."""
    configs = resolve_runs(suite, cli_set, source)
    variants = {variant.name: variant for variant in suite.variants}
    seen: dict[str, RunConfig] = {}
    for config in configs:
        other = seen.setdefault(config.run_id(), config)
        if other is not config:
            raise ConfigError(
                f"{source}: variants {other.variant!r} (seed {other.seed}) and {config.variant!r} "
                f"(seed {config.seed}) resolve to the same run {config.run_id()}; make them differ"
            )
    if only:
        known = {c.variant for c in configs} | set(seen)
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ConfigError(
                f"--only {unknown}: not a variant or run id of suite {suite.name!r}; "
                f"variants: {sorted(variants)}"
            )
        configs = [c for c in configs if c.variant in only or c.run_id() in only]
    root = suite_dir(out_dir, suite) / "runs"
    plan = []
    for config in configs:
        run_dir = root / config.run_id()
        status, record = _status(run_dir)
        plan.append(PlannedRun(config, variants[config.variant], run_dir, status, record))
    return plan


def validate_plan(
    plan: Sequence[PlannedRun], data_root: Path, device: str, source: str = "suite"
) -> None:
    """Check everything that can be checked before any training starts.

    Models and overrides are built once per distinct combination (so bad values
    surface now), datasets and splits are opened, and device-dependent options
    are checked. Raises :class:`ConfigError` / ``DatasetError`` naming the suite
    file (``source``) and the variant.
    """
    checked_models: set[str] = set()
    checked_splits: set[tuple[str, str]] = set()
    for run in plan:
        cfg = run.config
        where = f"{source}: variant {cfg.variant!r}"
        info = dataset_info(cfg.data.dataset, cfg.data.synthetic)
        model_key = json.dumps([cfg.model.name, cfg.model.overrides], sort_keys=True)
        if model_key not in checked_models:
            _check_model(cfg, info, where)
            checked_models.add(model_key)
        if cfg.train.amp == "fp16" and device != "cuda":
            raise ConfigError(f"{where}: train.amp = 'fp16' needs --device cuda")
        if cfg.model.pretrained is not None:
            path = Path(cfg.model.pretrained)
            path = path if path.is_absolute() else data_root / path
            if not path.is_file():
                raise ConfigError(f"{where}: model.pretrained file {path} does not exist")
        if run.status in ("done", "failed"):
            continue
        for split in (cfg.data.train_split, cfg.data.val_split):
            key = (cfg.data.model_dump_json(), split)
            if key not in checked_splits:
                try:
                    build_dataset(cfg.data, data_root, split)
                except DatasetError as error:
                    raise DatasetError(
                        f"{where}: data.{cfg.data.dataset} [{split}]: {error}"
                    ) from None
                checked_splits.add(key)


def _check_model(cfg: RunConfig, info: DatasetInfo, where: str) -> None:
    try:
        create_model(cfg.model.name, info.num_classes, **cfg.model.overrides)
    except (ValueError, TypeError) as error:
        accepted = ""
        with contextlib.suppress(ValueError):
            accepted = f" (accepted overrides: {sorted(model_overrides(cfg.model.name))})"
        raise ConfigError(f"{where}: model {cfg.model.name!r}: {error}{accepted}") from None


def git_commit() -> str | None:
    """The checked-out commit of this repository, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """A readable name of the processor or GPU that ran the work."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(ctx: DistContext) -> Environment:
    """Versions, device and threads of this process."""
    return Environment(
        python=sys.version.split()[0],
        torch=torch.__version__,
        torchvision=importlib.metadata.version("torchvision"),
        platform=platform.platform(),
        device=ctx.device.type,
        device_name=device_name(ctx.device),
        threads=torch.get_num_threads(),
        git_commit=git_commit(),
        world_size=ctx.world_size,
    )


def _dataset_record(cfg: RunConfig, info: DatasetInfo) -> DatasetInfoRecord:
    return DatasetInfoRecord(
        name=info.name,
        train_split=cfg.data.train_split,
        val_split=cfg.data.val_split,
        num_classes=info.num_classes,
        ignore_index=info.ignore_index,
        class_names=list(info.class_names),
        palette=[tuple(color) for color in info.palette],
    )


def _png(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _write_predictions(run_dir: Path, predictions: Mapping[int, np.ndarray]) -> dict[int, str]:
    files = {}
    for index, prediction in predictions.items():
        relative = f"predictions/val_{index}.png"
        atomic_write_bytes(run_dir / relative, _png(prediction.astype(np.uint8)))
        files[index] = relative
    return files


def write_samples(samples_dir: Path, trainer: Trainer) -> None:
    """Save the fixed val images and labels that the report shows predictions for."""
    for index in trainer.cfg.eval.visualize:
        image_path = samples_dir / f"{index}_image.png"
        if index >= len(trainer.val_set) or image_path.is_file():
            continue
        image, label = trainer.val_set.load_pair(index)
        atomic_write_bytes(samples_dir / f"{index}_label.png", _png(label.astype(np.uint8)))
        atomic_write_bytes(image_path, _png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))


def profile_cache_path(run: PlannedRun, device_type: str) -> Path:
    """Where the cost of ``run``'s architecture, measured on ``device_type``, is kept."""
    cfg = run.config
    key = json.dumps(
        [cfg.model.name, cfg.model.overrides, cfg.profile.model_dump(mode="json"), device_type],
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return run.run_dir.parent.parent / "profiles" / f"{cfg.model.name}-{digest}.json"


def _profile_cached(run: PlannedRun, model: torch.nn.Module, ctx: DistContext) -> Cost:
    """Cost depends on the architecture only, so seeds of a variant share one measurement."""
    path = profile_cache_path(run, ctx.device.type)
    if path.is_file():
        return Cost.model_validate_json(path.read_text(encoding="utf-8"))
    cost = profile_model(model, run.config.profile, device=ctx.device)
    atomic_write_text(path, cost.model_dump_json(indent=2))
    return cost


def _base_record(run: PlannedRun) -> dict[str, Any]:
    cfg = run.config
    return {
        "suite": cfg.suite,
        "variant": cfg.variant,
        "group": run.variant.group,
        "reference": run.variant.reference,
        "model": cfg.model.name,
        "overrides": dict(cfg.model.overrides),
        "seed": cfg.seed,
        "run_id": cfg.run_id(),
        "config": cfg.model_dump(mode="json"),
    }


def execute_run(
    run: PlannedRun, data_root: Path, ctx: DistContext, *, progress: bool = True
) -> RunRecord | None:
    """Train, evaluate and profile one run; rank 0 writes and returns its record.

    Other ranks return None for a finished run (only rank 0 profiles and records).
    A diverged or crashed run is recorded as failed (with its error) rather
    than raised, so the rest of the suite goes on; mistakes in the input
    (:class:`UserError` other than divergence) are raised.
    """
    cfg = run.config
    if ctx.is_main:
        atomic_write_text(run.run_dir / "config.json", cfg.model_dump_json(indent=2))
    info = dataset_info(cfg.data.dataset, cfg.data.synthetic)
    try:
        trainer = Trainer(cfg, run.run_dir, data_root, ctx, progress=progress)
        outcome = trainer.fit()
    except TrainingDiverged as error:
        record = RunRecord(**_base_record(run), status="failed", error=str(error))
    except UserError:
        raise
    except Exception as error:  # a crash of one run must not take the suite down
        log.error("run %s failed:\n%s", cfg.run_id(), traceback.format_exc())
        record = RunRecord(
            **_base_record(run), status="failed", error=f"{type(error).__name__}: {error}"
        )
    else:
        record = None
        if ctx.is_main:
            write_samples(run.run_dir.parent.parent / "samples", trainer)
            trainer.save_weights(outcome.model)
            record = RunRecord(
                **_base_record(run),
                status="done",
                dataset=_dataset_record(cfg, info),
                metrics=outcome.metrics,
                cost=_profile_cached(run, outcome.model, ctx),
                training=outcome.training,
                environment=environment(ctx),
                predictions=_write_predictions(run.run_dir, outcome.predictions),
            )
    if ctx.is_main and record is not None:
        write_record(run.run_dir, record)
        if record.status == "done":
            (run.run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    ctx.barrier()
    return record


def stale_profile(run: PlannedRun) -> bool:
    """A finished run whose cost was measured with other profile settings than the plan's."""
    if run.status != "done" or run.record is None:
        return False
    return run.record.config.get("profile") != run.config.profile.model_dump(mode="json")


# Re-measured runs are timed side by side in this many interleaved rounds (see
# bench.profile.measure_latencies): on the shared 2-core VM this suite was built on,
# the same architecture timed minutes apart differed by up to 20 %, more than most
# ablations change it.
REPROFILE_ROUNDS = 5


def reprofile_runs(runs: Sequence[PlannedRun], ctx: DistContext) -> None:
    """Measure finished runs' cost again from their saved weights, without retraining.

    Each architecture is measured once (seeds share it, as after training) unless its
    cost is already cached for the current settings; the architectures that are
    measured have their latencies taken side by side in :data:`REPROFILE_ROUNDS`
    interleaved rounds (fewer when the settings ask for fewer timed calls). Every run's
    record then gets its architecture's cost.
    """
    by_cache: dict[Path, list[PlannedRun]] = {}
    for run in runs:
        by_cache.setdefault(profile_cache_path(run, ctx.device.type), []).append(run)
    to_measure: dict[ProfileSpec, dict[Path, torch.nn.Module]] = {}
    for path, group in by_cache.items():
        if not path.is_file():
            spec = group[0].config.profile
            to_measure.setdefault(spec, {})[path] = _trained_model(group[0])
    for spec, models in to_measure.items():
        rounds = min(REPROFILE_ROUNDS, spec.repeats)
        costs = profile_models(models, spec, ctx.device, rounds=rounds)
        for path, cost in costs.items():
            atomic_write_text(path, cost.model_dump_json(indent=2))
    for path, group in by_cache.items():
        cost = Cost.model_validate_json(path.read_text(encoding="utf-8"))
        for run in group:
            config = run.config.model_dump(mode="json")
            write_record(
                run.run_dir, run.record.model_copy(update={"cost": cost, "config": config})
            )


def _trained_model(run: PlannedRun) -> torch.nn.Module:
    """A finished run's model, in eval mode, with its final weights."""
    cfg = run.config
    info = dataset_info(cfg.data.dataset, cfg.data.synthetic)
    model = create_model(cfg.model.name, info.num_classes, **cfg.model.overrides)
    weights = torch.load(run.run_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(weights)
    return model.eval()


def pending_runs(plan: Sequence[PlannedRun], *, retry_failed: bool) -> list[PlannedRun]:
    """Runs still to do: missing or partial ones, plus failed ones when asked."""
    wanted = {"missing", "partial"} | ({"failed"} if retry_failed else set())
    return [run for run in plan if run.status in wanted]
