"""A suite's grid of runs: expand it, read each run's state from disk, validate it all.

Every run is keyed by a hash of its resolved config, so the plan of a suite is the
same on every machine and its state lives only in the output folder: a run with a
``result.json`` is finished (done or failed), one with a checkpoint is partial.
:func:`validate_plan` checks everything :func:`bench.execute.run_suite` would reject,
so ``liteseg-bench plan`` and ``run`` refuse the same files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bench.config import ProfileSpec, RunConfig, SuiteSpec, VariantSpec, resolve_runs
from bench.data import build_dataset, dataset_info
from bench.data.transforms import NORMALIZATION, normalization_stats
from bench.errors import ConfigError, DatasetError
from bench.files import atomic_write_text, unwritable_reason
from bench.layout import RunLayout, SuiteLayout
from bench.models import build_model, resolve_pretrained
from bench.pretrained import IMAGENET, imagenet_weights
from bench.profile import check_profile_spec
from bench.results import RunRecord, read_record
from bench.train import check_device_support

PlanStatus = Literal["done", "failed", "partial", "missing"]
PLAN_STATUSES: tuple[PlanStatus, ...] = ("done", "partial", "missing", "failed")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a suite and what the output folder says about it.

    ``source`` is set for an evaluation-only run (a variant with ``evaluates``): the
    run of the same seed whose trained weights it scores with its own eval settings.
    """

    config: RunConfig
    variant: VariantSpec
    layout: RunLayout
    status: PlanStatus
    record: RunRecord | None
    source: PlannedRun | None = None

    @property
    def run_id(self) -> str:
        return self.layout.run_id

    def refreshed(self) -> PlannedRun:
        """The same run with its state read from disk again (another worker may have moved it)."""
        status, record = run_state(self.layout)
        source = None if self.source is None else self.source.refreshed()
        return replace(self, status=status, record=record, source=source)

    @property
    def ready(self) -> bool:
        """Whether it can run now: it trains, or the run it evaluates is done."""
        return self.source is None or self.source.status == "done"


def run_state(layout: RunLayout) -> tuple[PlanStatus, RunRecord | None]:
    """The state of a run folder: its record's status, else partial/missing."""
    record = read_record(layout.result)
    if record is not None:
        return record.status, record
    if any(path.is_file() for path in layout.checkpoints):
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
    planned: dict[tuple[str, int], PlannedRun] = {}
    for config in configs:
        run_layout = layout.run(config.run_id())
        status, record = run_state(run_layout)
        planned[config.variant, config.seed] = PlannedRun(
            config, variants[config.variant], run_layout, status, record
        )
    plan = [_with_source(run, planned, source) for run in planned.values()]
    if only:
        plan = [run for run in plan if run.config.variant in only or run.run_id in only]
    return plan


def _with_source(
    run: PlannedRun, planned: Mapping[tuple[str, int], PlannedRun], source: str
) -> PlannedRun:
    """Attach the trained run an evaluation-only run scores, checking they share training."""
    name = run.variant.evaluates
    if name is None:
        return run
    trained = planned.get((name, run.config.seed))
    where = f"{source}: variant {run.config.variant!r} evaluates {name!r}"
    if trained is None:
        raise ConfigError(f"{where}, which has no run with seed {run.config.seed}")
    ours, theirs = run.config.training_identity(), trained.config.training_identity()
    if ours != theirs:
        differing = sorted(key for key in ours if ours[key] != theirs[key])
        raise ConfigError(
            f"{where} but their training differs in {differing}; an evaluation-only variant "
            "may change only eval.* (and profile.*)"
        )
    return replace(run, source=trained)


def validate_plan(
    plan: Sequence[PlannedRun],
    data_root: Path,
    device: str,
    source: str = "suite",
    output: Path | None = None,
) -> None:
    """Check everything that can be checked before any training starts.

    Every distinct model + overrides is built once (so bad names and values surface
    now), pretrained files must exist and match the normalisation, device-dependent
    training and profile options (runtimes installed, precisions they run) must fit
    ``device``, the splits of unfinished runs are listed (files present), and the
    ``output`` folder (the suite's ``OUT/SUITE``) can be created and written. Raises
    :class:`ConfigError` / :class:`DatasetError` naming the suite file (``source``)
    and the variant.
    """
    if output is not None and (problem := unwritable_reason(output)) is not None:
        raise ConfigError(f"--out {output}: {problem}; choose another output folder")
    checked_models: set[str] = set()
    checked_profiles: set[ProfileSpec] = set()
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
        if cfg.profile not in checked_profiles:
            try:
                check_profile_spec(cfg.profile, device)
            except ConfigError as error:
                raise ConfigError(f"{where}{error}") from None
            checked_profiles.add(cfg.profile)
        if cfg.model.pretrained is not None:
            resolve_pretrained(cfg.model, data_root, where)
            check_normalization(cfg, where)
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


def check_normalization(cfg: RunConfig, where: str = "") -> None:
    """ImageNet-initialised encoders must see inputs normalised as in their own training."""
    if cfg.model.pretrained != IMAGENET:
        return
    weights = imagenet_weights(cfg.model.name)
    mean, std = normalization_stats(cfg.augment.normalize)
    if (tuple(mean), tuple(std)) != (tuple(weights.mean), tuple(weights.std)):
        expected = next(
            name
            for name in NORMALIZATION
            if normalization_stats(name) == (tuple(weights.mean), tuple(weights.std))
        )
        raise ConfigError(
            f"{where}augment.normalize = {cfg.augment.normalize!r} (mean {mean}, std {std}), "
            f"but {weights.name} expects mean {weights.mean}, std {weights.std}: "
            f"set augment.normalize = {expected!r}"
        )


def read_added_seeds(layout: SuiteLayout) -> dict[str, tuple[int, ...]]:
    """Seeds ``run --resolve-claims`` added to each variant (empty when none were)."""
    if not layout.added_seeds.is_file():
        return {}
    try:
        raw = json.loads(layout.added_seeds.read_text(encoding="utf-8"))
        return {str(name): tuple(int(seed) for seed in seeds) for name, seeds in raw.items()}
    except (ValueError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{layout.added_seeds}: not a JSON object of variant -> seed list ({error}); "
            "fix or delete it (it only lists seeds added by --resolve-claims)"
        ) from None


def add_seeds(layout: SuiteLayout, added: Mapping[str, Iterable[int]]) -> None:
    """Add seeds to variants in ``added_seeds.json`` (atomically), so every command plans
    them from now on."""
    merged = {name: set(seeds) for name, seeds in read_added_seeds(layout).items()}
    for name, seeds in added.items():
        merged.setdefault(name, set()).update(seeds)
    payload = {name: sorted(seeds) for name, seeds in sorted(merged.items()) if seeds}
    atomic_write_text(layout.added_seeds, json.dumps(payload, indent=2))


def with_added_seeds(suite: SuiteSpec, added: Mapping[str, Sequence[int]]) -> SuiteSpec:
    """``suite`` with each variant's seeds extended by ``added`` (unknown names ignored)."""
    variants = []
    for variant in suite.variants:
        own = variant.seeds or suite.seeds
        seeds = tuple(sorted({*own, *added.get(variant.name, ())}))
        variants.append(variant if seeds == own else variant.model_copy(update={"seeds": seeds}))
    return suite.model_copy(update={"variants": tuple(variants)})


def pending_runs(plan: Sequence[PlannedRun], *, retry_failed: bool) -> list[PlannedRun]:
    """Runs still to do: missing or partial ones, plus failed ones when asked."""
    wanted = {"missing", "partial"} | ({"failed"} if retry_failed else set())
    return [run for run in plan if run.status in wanted]


def status_counts(plan: Sequence[PlannedRun]) -> dict[PlanStatus, int]:
    """How many runs of ``plan`` are in each state."""
    return {status: sum(run.status == status for run in plan) for status in PLAN_STATUSES}
