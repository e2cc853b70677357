"""Running a suite's plan: train every unfinished run it can claim, then measure latency.

Stages, each reading only what the previous one wrote:

1. **Train** (:func:`execute_run`): for each pending run this worker claims
   (:class:`bench.locks.FileLock` in the run folder), train, evaluate (final and best),
   score the reduced precisions of its runtimes (their accuracy cost), count parameters
   and FLOPs (cached per architecture), and write the record. An evaluation-only run
   scores the weights of the run it ``evaluates`` instead, once that one is done. Runs
   held by a live worker elsewhere are skipped; a stale claim is taken over and the
   run resumes from its checkpoint.
2. **Measure latency** (:func:`measure_suite_latency`): once no run of the plan is
   unfinished, every finished architecture is timed side by side in interleaved rounds
   (one *session*), unless all of them already carry a measurement of one session under
   the current settings. Latencies compared in a report therefore always come from the
   same session, never from timings taken minutes apart while the machine drifted.

:func:`run_suite` chains both for one worker; the launchers (:mod:`bench.launch`)
start workers locally or as cluster jobs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from bench.artifacts import (
    architecture_key,
    read_profile,
    write_predictions,
    write_profile,
    write_samples,
)
from bench.config import ProfileSpec
from bench.data import dataset_info
from bench.distributed import DistContext, init_distributed, shutdown_distributed
from bench.environment import environment
from bench.errors import ConfigError, NonFiniteOutputs, TrainingDiverged, UserError
from bench.files import read_problem, set_aside
from bench.layout import RunLayout, SuiteLayout
from bench.locks import DEFAULT_HEARTBEAT_S, DEFAULT_TIMEOUT_S, FileLock, LockLost, LockRemoved
from bench.models import build_model
from bench.plan import PlannedRun, pending_runs, status_counts
from bench.profile import count_cost, profile_models
from bench.results import Cost, RunRecord, write_record
from bench.scoring import calibration_for, dataset_record, deployed_accuracies, score
from bench.train import Trainer

log = logging.getLogger(__name__)

# The shortest claim timeout: a heartbeat every quarter of it stays above one a second.
MIN_LOCK_TIMEOUT_S = 4.0

# Architectures are timed side by side in this many interleaved rounds: on the shared
# 2-core VM this suite was built on, the same architecture timed minutes apart differed
# by up to 20 %, more than most ablations change it.
LATENCY_ROUNDS = 5

RunOutcome = Literal[
    "done", "failed", "held", "finished-elsewhere", "lost", "removed", "waiting"
]  # fmt: skip


@dataclass(frozen=True)
class SuiteOptions:
    """How one worker runs a plan.

    Args:
        data_root: the datasets folder.
        device: ``"cpu"`` or ``"cuda"``.
        retry_failed: run failed runs again (each once per invocation, across workers).
        remeasure: time every finished architecture again, in a new session.
        measure_latency: run the latency stage at the end (launchers that start several
            workers run it once, after all of them).
        progress: show training progress.
        lock_timeout_s: a claim whose heartbeat is older than this is taken over.
        heartbeat_s: how often a worker refreshes its claim.
    """

    data_root: Path
    device: str = "cpu"
    retry_failed: bool = False
    remeasure: bool = False
    measure_latency: bool = True
    progress: bool = True
    lock_timeout_s: float = DEFAULT_TIMEOUT_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S

    def __post_init__(self) -> None:
        if not MIN_LOCK_TIMEOUT_S <= self.lock_timeout_s < math.inf:
            raise ConfigError(
                f"--lock-timeout {self.lock_timeout_s}: must be at least "
                f"{MIN_LOCK_TIMEOUT_S:.0f} seconds (a worker refreshes its claim every "
                "quarter of it, up to every 30 s)"
            )
        if not 0 < self.heartbeat_s < self.lock_timeout_s:
            raise ConfigError(
                f"heartbeat {self.heartbeat_s} s: must be shorter than the lock timeout "
                f"({self.lock_timeout_s} s)"
            )


@dataclass
class SuiteOutcome:
    """What one worker did: run ids by outcome, and the architectures it timed."""

    runs: dict[str, RunOutcome] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    def ids(self, outcome: RunOutcome) -> list[str]:
        """Run ids that ended with ``outcome``."""
        return [run_id for run_id, value in self.runs.items() if value == outcome]

    @property
    def failed(self) -> list[str]:
        """Runs that failed, and runs stopped because their files were deleted."""
        return self.ids("failed") + self.ids("removed")


def record_event(layout: RunLayout, event: str, **fields: Any) -> None:
    """Append one line to the run's history (who did what, when)."""
    entry = {
        "time": datetime.now(timezone.utc).isoformat(),
        "event": event,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **fields,
    }
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.events.open("a", encoding="utf-8") as events:
        events.write(json.dumps(entry) + "\n")


def read_events(layout: RunLayout) -> list[dict[str, Any]]:
    """The run's history as written by :func:`record_event`.

    A history with a line that is not a JSON object (a worker killed mid-append, a
    damaged disk) is set aside whole and the lines before the damage are returned; the
    next event starts a new history.
    """
    try:
        lines = layout.events.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as error:
        set_aside(layout.events, read_problem(error), "a new history is started")
        return []
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError(f"a {type(event).__name__}, not an object")
        except ValueError as error:
            problem = f"line {number}: {read_problem(error)}"
            set_aside(layout.events, problem, "a new history is started")
            break
        events.append(event)
    return events


def base_record(run: PlannedRun) -> dict[str, Any]:
    """The fields every record of ``run`` has, whatever its outcome."""
    cfg = run.config
    return {
        "suite": cfg.suite,
        "variant": cfg.variant,
        "group": run.variant.group,
        "reference": run.variant.reference,
        "model": cfg.model.name,
        "overrides": dict(cfg.model.overrides),
        "seed": cfg.seed,
        "run_id": run.run_id,
        "config": cfg.model_dump(mode="json"),
    }


def _counted_cost(run: PlannedRun, suite: SuiteLayout, model, device_type: str) -> Cost:
    """Parameters and FLOPs of the run's architecture, counted once per architecture."""
    key = architecture_key(run.config, device_type)
    cost = read_profile(suite, key)
    if cost is None:
        cost = count_cost(model, run.config.profile)
        write_profile(suite, key, cost)
    return cost


def execute_run(
    run: PlannedRun,
    suite: SuiteLayout,
    data_root: Path,
    ctx: DistContext,
    *,
    progress: bool = True,
    step_callback: Callable[[int], None] | None = None,
) -> RunRecord | None:
    """Train, evaluate and count one run; rank 0 writes and returns its record.

    Other ranks return None. A diverged or crashed run is recorded as failed (with its
    error) rather than raised, so the rest of the suite goes on; mistakes in the input
    (:class:`UserError` other than divergence) and a lost claim (:class:`LockLost`) are
    raised. Latency is not measured here (see :func:`measure_suite_latency`).
    """
    cfg = run.config
    layout = run.layout
    if ctx.is_main:
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.config.write_text(cfg.model_dump_json(indent=2), encoding="utf-8")
    try:
        record = _produce_record(run, suite, data_root, ctx, progress, step_callback)
    except (TrainingDiverged, NonFiniteOutputs) as error:
        record = RunRecord(**base_record(run), status="failed", error=str(error))
    except (UserError, LockLost):
        raise
    except Exception as error:  # a crash of one run must not take the suite down
        log.error("run %s failed:\n%s", run.run_id, traceback.format_exc())
        record = RunRecord(
            **base_record(run), status="failed", error=f"{type(error).__name__}: {error}"
        )
    if ctx.is_main and record is not None:
        write_record(layout.result, record)
        if record.status == "done":
            for path in layout.checkpoints:
                path.unlink(missing_ok=True)
    ctx.barrier()
    return record


def _produce_record(
    run: PlannedRun,
    suite: SuiteLayout,
    data_root: Path,
    ctx: DistContext,
    progress: bool,
    step_callback: Callable[[int], None] | None,
) -> RunRecord | None:
    """Train (or, for an evaluation-only run, score) ``run``; rank 0 returns its record."""
    if run.source is not None:
        return _evaluate_trained(run, suite, data_root, ctx) if ctx.is_main else None
    cfg = run.config
    trainer = Trainer(
        cfg, run.layout, data_root, ctx, progress=progress, step_callback=step_callback
    )
    outcome = trainer.fit()
    if not ctx.is_main:
        return None
    write_samples(suite, trainer.val_set, cfg.eval.visualize)
    trainer.save_weights(outcome.model)
    return RunRecord(
        **base_record(run),
        status="done",
        dataset=dataset_record(cfg.data, cfg.data.train_split, cfg.data.val_split),
        metrics=outcome.metrics,
        best=outcome.best,
        cost=_counted_cost(run, suite, outcome.model, ctx.device.type),
        training=outcome.training,
        environment=environment(ctx),
        predictions=write_predictions(run.layout, outcome.predictions),
        deployed=_deployed(run, outcome.model, data_root, ctx),
    )


def _deployed(run: PlannedRun, model, data_root: Path, ctx: DistContext) -> list:
    """The accuracy cost of the reduced precisions, for variants that ask for it."""
    if not run.variant.deployed_accuracy:
        return []
    return deployed_accuracies(model, run.config, data_root, ctx.device)


def _evaluate_trained(
    run: PlannedRun, suite: SuiteLayout, data_root: Path, ctx: DistContext
) -> RunRecord:
    """An evaluation-only run: score the source run's final and best weights with this run's
    eval settings, and record them with the source's training."""
    cfg, source = run.config, run.source
    num_classes = dataset_info(cfg.data.dataset, cfg.data.synthetic).num_classes
    model = build_model(cfg.model, num_classes, weights=source.layout.final_weights).eval()
    split = cfg.data.val_split
    final = score(
        model,
        cfg.data,
        split,
        cfg.augment,
        cfg.eval,
        data_root,
        ctx.device,
        visualize=cfg.eval.visualize,
    )
    best = None
    if source.record.best is not None and source.layout.best_weights.is_file():
        best_model = build_model(cfg.model, num_classes, weights=source.layout.best_weights)
        scored = score(best_model, cfg.data, split, cfg.augment, cfg.eval, data_root, ctx.device)
        best = source.record.best.model_copy(update={"metrics": scored.metrics})
    write_samples(suite, final.dataset, cfg.eval.visualize)
    return RunRecord(
        **base_record(run),
        status="done",
        dataset=dataset_record(cfg.data, cfg.data.train_split, cfg.data.val_split),
        metrics=final.metrics,
        best=best,
        cost=_counted_cost(run, suite, model, ctx.device.type),
        training=source.record.training,
        environment=environment(ctx),
        predictions=write_predictions(run.layout, final.predictions),
        deployed=_deployed(run, model, data_root, ctx),
        evaluated_from=source.run_id,
    )


def _claim(run: PlannedRun, options: SuiteOptions, ctx: DistContext) -> FileLock | None:
    """Rank 0 claims the run; every rank learns whether it did (None: not ours)."""
    lock = FileLock(
        run.layout.lock, timeout_s=options.lock_timeout_s, heartbeat_s=options.heartbeat_s
    )
    claimed = ctx.is_main and lock.acquire()
    if not ctx.any_true(claimed):
        return None
    return lock


def claim_and_execute(
    run: PlannedRun,
    suite: SuiteLayout,
    options: SuiteOptions,
    ctx: DistContext,
    *,
    started: float,
) -> RunOutcome:
    """Run ``run`` if no live worker holds it and it is still unfinished.

    Args:
        run: a pending run of the plan (its state may have moved on since planning).
        suite: the suite's output layout.
        options: the worker's options.
        ctx: this process's place in the job.
        started: when this worker started; a failed run is retried only if it failed
            before that, so several workers retrying failures rerun each one once.
    """
    if not run.refreshed().ready:
        return "waiting"
    lock = _claim(run, options, ctx)
    if lock is None:
        return "held"
    current = run.refreshed()
    if ctx.any_true(ctx.is_main and not _still_wanted(current, options, started)):
        if ctx.is_main:
            lock.release()
        return "finished-elsewhere"
    return _execute_claimed(current, suite, options, ctx, lock)


def _still_wanted(run: PlannedRun, options: SuiteOptions, started: float) -> bool:
    if run.status in ("missing", "partial"):
        return True
    if run.status != "failed" or not options.retry_failed or run.record is None:
        return False
    return datetime.fromisoformat(run.record.finished_at).timestamp() < started


def _execute_claimed(
    run: PlannedRun, suite: SuiteLayout, options: SuiteOptions, ctx: DistContext, lock: FileLock
) -> RunOutcome:
    if not ctx.is_main:  # rank 0 records the outcome
        execute_run(run, suite, options.data_root, ctx, progress=False)
        return "done"
    took_over = lock.took_over.describe() if lock.took_over else None
    record_event(run.layout, "claimed", took_over=took_over, previous_status=run.status)
    with lock.hold():
        try:
            record = execute_run(
                run,
                suite,
                options.data_root,
                ctx,
                progress=options.progress,
                step_callback=lock.check,
            )
        except LockRemoved as error:
            log.error("run %s: %s", run.run_id, error)
            return "removed"
        except LockLost as error:
            log.error("run %s: %s; leaving it to the new holder", run.run_id, error)
            record_event(run.layout, "lost", error=str(error))
            return "lost"
        except KeyboardInterrupt:
            record_event(run.layout, "interrupted", error="interrupted (Ctrl-C or SIGINT)")
            raise
        except Exception as error:
            record_event(run.layout, "failed", error=f"{type(error).__name__}: {error}")
            raise
    record_event(run.layout, record.status, error=record.error)
    return record.status


def _trained_model(run: PlannedRun):
    info = dataset_info(run.config.data.dataset, run.config.data.synthetic)
    model = build_model(run.config.model, info.num_classes, weights=run.layout.final_weights)
    return model.eval()


def _one_session(costs: Mapping[str, Cost | None]) -> bool:
    """Whether every architecture has a latency, all from one interleaved session."""
    sessions = {
        latency.session for cost in costs.values() if cost is not None for latency in cost.latency
    }
    return all(cost is not None and cost.latency for cost in costs.values()) and (
        len(sessions) == 1 and None not in sessions
    )


def measure_suite_latency(
    plan: Sequence[PlannedRun],
    suite: SuiteLayout,
    ctx: DistContext,
    data_root: Path,
    *,
    remeasure: bool = False,
    rounds: int = LATENCY_ROUNDS,
) -> list[str]:
    """Time every finished architecture side by side if they lack one common measurement.

    Runs are grouped by profile settings; within a group, the architectures (seeds share
    one) are measured in ``rounds`` interleaved rounds (:func:`bench.profile.profile_models`)
    unless all of them already carry latencies of one session under these settings (or
    ``remeasure`` asks for a new one). Every finished run's record then gets its
    architecture's cost and the current profile settings. Returns the architectures
    measured.
    """
    finished = [run for run in plan if run.status == "done" and run.record is not None]
    groups: dict[ProfileSpec, dict[str, list[PlannedRun]]] = {}
    for run in finished:
        key = architecture_key(run.config, ctx.device.type)
        groups.setdefault(run.config.profile, {}).setdefault(key, []).append(run)
    measured: list[str] = []
    for spec, architectures in groups.items():
        costs = {key: read_profile(suite, key) for key in architectures}
        if remeasure or not _one_session(costs):
            models = {key: _trained_model(runs[0]) for key, runs in architectures.items()}
            log.info(
                "timing %d architectures side by side (%d interleaved rounds)",
                len(models),
                min(rounds, spec.repeats),
            )
            calibration = None
            if any(precision == "int8" for _, precision in spec.combinations(ctx.device.type)):
                calibration = {
                    key: calibration_for(runs[0].config, data_root)
                    for key, runs in architectures.items()
                }
            costs = profile_models(
                models, spec, ctx.device, rounds=min(rounds, spec.repeats), calibration=calibration
            )
            for key, cost in costs.items():
                write_profile(suite, key, cost)
                measured.append(key)
        for key, runs in architectures.items():
            cost = read_profile(suite, key)
            for run in runs:
                config = run.config.model_dump(mode="json")
                if run.record.cost != cost or run.record.config != config:
                    updated = run.record.model_copy(update={"cost": cost, "config": config})
                    write_record(run.layout.result, updated)
    return measured


def latency_stage(
    plan: Sequence[PlannedRun], suite: SuiteLayout, options: SuiteOptions, ctx: DistContext
) -> tuple[list[str], list[str]]:
    """Measure latency if the suite is complete and no other worker is measuring it.

    Returns:
        ``(measured, unfinished)``: the architectures timed, and the runs that are not
        finished yet (the stage waits for them; the last worker to finish runs it).
    """
    current = [run.refreshed() for run in plan]
    unfinished = [run.run_id for run in pending_runs(current, retry_failed=False)]
    if unfinished:
        log.info(
            "latency stage postponed: %d run(s) are not finished yet; it runs once the "
            "suite is complete (any later `run` of the suite does it)",
            len(unfinished),
        )
        return [], unfinished
    lock = FileLock(
        suite.profile_lock, timeout_s=options.lock_timeout_s, heartbeat_s=options.heartbeat_s
    )
    if not lock.acquire():
        holder = lock.holder.describe() if lock.holder else "another worker"
        log.info("latency stage: %s is measuring already", holder)
        return [], []
    with lock.hold():
        measured = measure_suite_latency(
            current, suite, ctx, options.data_root, remeasure=options.remeasure
        )
        return measured, []


def run_suite(
    plan: Sequence[PlannedRun], suite: SuiteLayout, options: SuiteOptions
) -> SuiteOutcome:
    """Train every pending run of ``plan`` this worker can claim, then the latency stage.

    Call :func:`bench.plan.validate_plan` first. Under ``torchrun`` every process calls
    this; rank 0 claims runs and writes files.
    """
    started = time.time()
    ctx = init_distributed(options.device)
    outcome = SuiteOutcome()
    # Evaluation-only runs come last: the runs they score may be trained first.
    todo = sorted(
        pending_runs(plan, retry_failed=options.retry_failed),
        key=lambda run: run.source is not None,
    )
    counts = status_counts(plan)
    log.info(
        "%d runs, %d to do (%d done, %d failed%s)",
        len(plan),
        len(todo),
        counts["done"],
        counts["failed"],
        ", retried" if options.retry_failed else " kept",
    )
    try:
        for index, run in enumerate(todo, 1):
            log.info(
                "[%d/%d] %s seed %d (%s)",
                index,
                len(todo),
                run.config.variant,
                run.config.seed,
                run.run_id,
            )
            result = claim_and_execute(run, suite, options, ctx, started=started)
            outcome.runs[run.run_id] = result
            if result == "held":
                log.info("run %s is held by another worker; skipped", run.run_id)
            elif result == "waiting":
                log.info("run %s waits for run %s to finish", run.run_id, run.source.run_id)
            elif result == "failed":
                record = run.refreshed().record
                reason = record.error if record is not None else "see its events.jsonl"
                log.error("run %s failed: %s", run.run_id, reason)
            elif result == "removed":
                log.error(
                    "files of this suite are being deleted under %s; this worker stops", suite.root
                )
                break
        if options.measure_latency and ctx.is_main:
            outcome.measured, outcome.unfinished = latency_stage(plan, suite, options, ctx)
    finally:
        shutdown_distributed()
    return outcome
