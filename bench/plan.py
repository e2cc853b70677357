"""A suite's grid of runs: expand it, read each run's state from disk, validate it all.

Every run is keyed by a hash of its resolved config, so the plan of a suite is the
same on every machine and its state lives only in the output folder: a run with a
``result.json`` is finished (done or failed), one with a checkpoint is partial.
:func:`validate_plan` checks everything :func:`bench.execute.run_suite` would reject,
so ``liteseg-bench plan`` and ``run`` refuse the same files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bench.config import RunConfig, SuiteSpec, VariantSpec, resolve_runs
from bench.data import build_dataset, dataset_info
from bench.errors import ConfigError, DatasetError
from bench.layout import RunLayout, SuiteLayout
from bench.models import build_model, resolve_pretrained
from bench.results import RunRecord, read_record
from bench.train import check_device_support

PlanStatus = Literal["done", "failed", "partial", "missing"]
PLAN_STATUSES: tuple[PlanStatus, ...] = ("done", "partial", "missing", "failed")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a suite and what the output folder says about it."""

    config: RunConfig
    variant: VariantSpec
    layout: RunLayout
    status: PlanStatus
    record: RunRecord | None

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    def refreshed(self) -> PlannedRun:
        """The same run with its state read from disk again (another worker may have moved it)."""
        status, record = run_state(self.layout)
        return replace(self, status=status, record=record)


def run_state(layout: RunLayout) -> tuple[PlanStatus, RunRecord | None]:
    """The state of a run folder: its record's status, else partial/missing."""
    record = read_record(layout.result)
    if record is not None:
        return record.status, record
    if layout.checkpoint.is_file():
        return "partial", None
    return "missing", None


def plan_suite(
    suite: SuiteSpec,
    layout: SuiteLayout,
    *,
    cli_set: Mapping[str, Any] | None = None,
    only: Sequence[str] = (),
    source: str = "suite",
) -> list[PlannedRun]:
    """Expand ``suite`` into runs with their state; ``only`` keeps variant names or run ids."""
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
    plan = []
    for config in configs:
        run_layout = layout.run(config.run_id())
        status, record = run_state(run_layout)
        plan.append(PlannedRun(config, variants[config.variant], run_layout, status, record))
    return plan


def validate_plan(
    plan: Sequence[PlannedRun], data_root: Path, device: str, source: str = "suite"
) -> None:
    """Check everything that can be checked before any training starts.

    Every distinct model + overrides is built once (so bad names and values surface
    now), pretrained files must exist, device-dependent options must fit ``device``,
    and the splits of unfinished runs are listed (files present). Raises
    :class:`ConfigError` / :class:`DatasetError` naming the suite file (``source``)
    and the variant.
    """
    checked_models: set[str] = set()
    checked_splits: set[tuple[str, str]] = set()
    for run in plan:
        cfg = run.config
        where = f"{source}: variant {cfg.variant!r}: "
        info = dataset_info(cfg.data.dataset, cfg.data.synthetic)
        model_key = json.dumps([cfg.model.name, cfg.model.overrides], sort_keys=True)
        if model_key not in checked_models:
            unweighted = cfg.model.model_copy(update={"pretrained": None})
            build_model(unweighted, info.num_classes, where=where)
            checked_models.add(model_key)
        check_device_support(cfg, device, where=where)
        if cfg.model.pretrained is not None:
            resolve_pretrained(cfg.model.pretrained, data_root, where)
        if run.status in ("done", "failed"):
            continue
        for split in (cfg.data.train_split, cfg.data.val_split):
            key = (cfg.data.model_dump_json(), split)
            if key not in checked_splits:
                try:
                    build_dataset(cfg.data, data_root, split)
                except DatasetError as error:
                    raise DatasetError(
                        f"{where}data.{cfg.data.dataset} [{split}]: {error}"
                    ) from None
                checked_splits.add(key)


def pending_runs(plan: Sequence[PlannedRun], *, retry_failed: bool) -> list[PlannedRun]:
    """Runs still to do: missing or partial ones, plus failed ones when asked."""
    wanted = {"missing", "partial"} | ({"failed"} if retry_failed else set())
    return [run for run in plan if run.status in wanted]


def status_counts(plan: Sequence[PlannedRun]) -> dict[PlanStatus, int]:
    """How many runs of ``plan`` are in each state."""
    return {status: sum(run.status == status for run in plan) for status in PLAN_STATUSES}
