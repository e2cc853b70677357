"""Launchers: who runs the workers of a suite, on this machine or on a SLURM cluster.

- ``local``: this process is the worker (``--workers 1``), or it starts N worker
  processes on this machine that share the plan through run locks.
- ``submitit``: every pending run becomes one job of a submitit job array (SLURM when
  ``sbatch`` exists, submitit's local executor otherwise). Jobs are checkpointable: a
  preempted or timed-out job is requeued and resumes from the run's last checkpoint.
  A run with several GPUs trains under DDP inside its job (submitit's distributed
  environment). The launcher waits, showing runs done / running / failed, then runs
  the latency stage once (as one more job on SLURM, so it runs on a compute node).

Workers never coordinate except through the output folder (:mod:`bench.locks`), so
launchers can also be mixed: two ``run`` commands on one folder, a cluster array and a
laptop, all finish every run exactly once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from bench.config import SuiteSpec, load_suite, suite_path
from bench.distributed import init_distributed, shutdown_distributed
from bench.errors import ConfigError
from bench.execute import (
    RunOutcome,
    SuiteOptions,
    SuiteOutcome,
    base_record,
    claim_and_execute,
    latency_stage,
    run_suite,
)
from bench.hardware import available_cores
from bench.layout import SuiteLayout
from bench.plan import (
    PlannedRun,
    pending_runs,
    plan_suite,
    read_added_seeds,
    with_added_seeds,
)
from bench.results import RunRecord, write_record

log = logging.getLogger(__name__)

SUBMITIT_EXTRA = "pip install 'liteseg-bench[cluster]'"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild the plan and run it; pickled into jobs.

    Args:
        suite: suite name or path to its TOML file.
        out_dir: the output folder shared by all workers.
        cli_set: ``--set`` overrides.
        only: ``--only`` filters.
        options: how the worker runs the plan.
        threads: CPU threads of the worker (default: torch's choice).
        submitted: when the launch started (seconds since the epoch); failed runs that
            failed before it are retried once, when ``options.retry_failed``.
    """

    suite: str
    out_dir: Path
    cli_set: Mapping[str, Any]
    only: tuple[str, ...]
    options: SuiteOptions
    threads: int | None = None
    submitted: float = field(default_factory=time.time)

    def plan(self) -> tuple[SuiteSpec, SuiteLayout, list[PlannedRun]]:
        """The suite, its output layout and its plan as the output folder says now."""
        suite = load_suite(self.suite)
        layout = SuiteLayout.of(self.out_dir, suite.name)
        suite = with_added_seeds(suite, read_added_seeds(layout))
        plan = plan_suite(
            suite,
            layout,
            cli_set=self.cli_set,
            only=self.only,
            source=str(suite_path(self.suite)),
        )
        return suite, layout, plan


def _worker_main(spec: WorkerSpec, number: int) -> dict[str, RunOutcome]:
    """A local worker process: run the plan, claiming runs through locks."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(levelname)s worker {number} %(name)s: %(message)s"
    )
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    _, layout, plan = spec.plan()
    return run_suite(plan, layout, spec.options).runs


def launch_local(spec: WorkerSpec, workers: int = 1) -> SuiteOutcome:
    """Run the plan in this process, or in ``workers`` processes on this machine.

    Several workers split the CPU cores between them; then this process does what they
    left and runs the latency stage, once all of them have finished (timing while others
    train would measure the contention, not the models).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        _, layout, plan = spec.plan()
        return run_suite(plan, layout, spec.options)
    threads = max(1, available_cores() // workers)
    child = replace(
        spec, options=replace(spec.options, measure_latency=False, progress=False), threads=threads
    )
    log.info("starting %d local workers with %d CPU thread(s) each", workers, threads)
    outcome = SuiteOutcome()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(_worker_main, child, number) for number in range(workers)]
        for future in concurrent.futures.as_completed(futures):
            for run_id, result in future.result().items():
                if result != "held" or run_id not in outcome.runs:
                    outcome.runs[run_id] = result
    # What the workers left (evaluation-only runs whose source finished late, a run of a
    # worker that died) and the latency stage, in this process.
    _, layout, plan = spec.plan()
    final = run_suite(plan, layout, spec.options)
    outcome.runs.update({run_id: result for run_id, result in final.runs.items()})
    outcome.measured, outcome.unfinished = final.measured, final.unfinished
    return outcome


def _latency_in_process(spec: WorkerSpec) -> tuple[list[str], list[str]]:
    _, layout, plan = spec.plan()
    ctx = init_distributed(spec.options.device)
    try:
        return latency_stage(plan, layout, spec.options, ctx)
    finally:
        shutdown_distributed()


@dataclass(frozen=True)
class ClusterOptions:
    """Resources of each run's job (submitit's ``update_parameters``).

    Args:
        executor: ``auto`` (SLURM if ``sbatch`` is on the PATH, else local), ``slurm``
            or ``local``.
        partition: SLURM partition.
        gpus_per_run: GPUs of a run; above 1 the run trains under DDP, one task per GPU.
        tasks_per_run: processes of a run when it uses no GPU (DDP over gloo on CPU).
        cpus_per_run: CPU cores per task.
        mem_gb: memory per job.
        time_min: time limit of a job; a job that hits it is requeued and resumes.
        array_parallelism: runs at once (SLURM array throttle; the local executor starts
            at most this many jobs at a time).
        poll_s: how often the launcher checks its jobs.
    """

    executor: Literal["auto", "slurm", "local"] = "auto"
    partition: str | None = None
    gpus_per_run: int = 0
    tasks_per_run: int = 1
    cpus_per_run: int | None = None
    mem_gb: float | None = None
    time_min: int = 60 * 24
    array_parallelism: int = 2
    poll_s: float = 2.0

    @property
    def tasks(self) -> int:
        return self.gpus_per_run if self.gpus_per_run > 0 else self.tasks_per_run


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            f"--launcher submitit needs the submitit package: {SUBMITIT_EXTRA}"
        ) from None
    return submitit


class RunJob:
    """One run as a checkpointable submitit job (a requeued job resumes from its checkpoint)."""

    def __call__(self, spec: WorkerSpec, run_id: str) -> RunOutcome:
        submitit = _submitit()
        environment = submitit.JobEnvironment()
        if environment.num_tasks > 1:
            # GPU i of the node serves local rank i (init_distributed picks it).
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        _, layout, plan = spec.plan()
        run = next(run for run in plan if run.run_id == run_id)
        ctx = init_distributed(spec.options.device)
        try:
            return claim_and_execute(run, layout, spec.options, ctx, started=spec.submitted)
        finally:
            shutdown_distributed()

    def checkpoint(self, spec: WorkerSpec, run_id: str) -> Any:
        """Requeue the same job (SLURM preemption or time limit): its claim carries this
        job's id, so the requeued job takes it over at once and resumes from the last
        checkpoint."""
        return _submitit().helpers.DelayedSubmission(self, spec, run_id)


class LatencyJob:
    """The latency stage as a job, so that it runs on a compute node of the cluster."""

    def __call__(self, spec: WorkerSpec) -> tuple[list[str], list[str]]:
        return _latency_in_process(spec)


def _executor(layout: SuiteLayout, suite_name: str, cluster: ClusterOptions, device: str):
    submitit = _submitit()
    kind = cluster.executor
    if kind == "auto":
        kind = "slurm" if shutil.which("sbatch") else "local"
    executor = submitit.AutoExecutor(folder=layout.launcher / "%j", cluster=kind)
    parameters: dict[str, Any] = {
        "name": f"liteseg-{suite_name}",
        "timeout_min": cluster.time_min,
        "tasks_per_node": cluster.tasks,
        "nodes": 1,
    }
    if cluster.gpus_per_run:
        parameters["gpus_per_node"] = cluster.gpus_per_run
    if cluster.cpus_per_run:
        parameters["cpus_per_task"] = cluster.cpus_per_run
    if cluster.mem_gb:
        parameters["mem_gb"] = cluster.mem_gb
    if kind == "slurm":
        parameters["slurm_array_parallelism"] = cluster.array_parallelism
        if cluster.partition:
            parameters["slurm_partition"] = cluster.partition
    elif device == "cuda" and cluster.gpus_per_run == 0:
        raise ConfigError("--device cuda with --launcher submitit needs --gpus-per-run")
    executor.update_parameters(**parameters)
    return executor, kind


class _Progress:
    """Runs done / running / failed of a job array, as log lines every few seconds."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.last: tuple[int, int, int] | None = None

    def show(self, done: int, running: int, failed: int) -> None:
        counts = (done, running, failed)
        if counts != self.last:
            queued = self.total - done - running - failed
            log.info(
                "runs: %d done, %d running, %d failed, %d queued (of %d)",
                done,
                running,
                failed,
                queued,
                self.total,
            )
            self.last = counts


def _job_result(job) -> tuple[RunOutcome | None, str | None]:
    """A finished job's outcome, or its error when the job itself failed."""
    error = job.exception()
    if error is not None:
        return None, str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    return job.result(), None


def _mark_crashed(run: PlannedRun, error: str) -> None:
    """Record a run whose job died without writing a record (killed, out of memory, ...)."""
    current = run.refreshed()
    if current.status in ("done", "failed"):
        return
    record = RunRecord(**base_record(current), status="failed", error=f"job failed: {error}")
    write_record(current.layout.result, record)


def launch_submitit(spec: WorkerSpec, cluster: ClusterOptions) -> SuiteOutcome:
    """Submit every pending run as one job of a job array, wait, then time latency once."""
    suite, layout, plan = spec.plan()
    todo = pending_runs(plan, retry_failed=spec.options.retry_failed)
    job_spec = replace(spec, options=replace(spec.options, progress=False))
    if cluster.cpus_per_run:
        job_spec = replace(job_spec, threads=cluster.cpus_per_run)
    executor, kind = _executor(layout, suite.name, cluster, spec.options.device)
    outcome = SuiteOutcome()
    # Two waves: the training runs, then the evaluation-only runs that score them.
    for wave in (
        [run for run in todo if run.source is None],
        [run.refreshed() for run in todo if run.source is not None],
    ):
        if not wave:
            continue
        log.info(
            "submitting %d run(s) of %s to submitit's %s executor", len(wave), suite.name, kind
        )
        results = _run_jobs(executor, kind, job_spec, wave, cluster)
        for run in wave:
            result, error = results[run.run_id]
            if error is not None:
                log.error("job of run %s failed: %s", run.run_id, error)
                _mark_crashed(run, error)
                result = "failed"
            outcome.runs[run.run_id] = result
    if spec.options.measure_latency:
        if kind == "slurm":
            executor.update_parameters(tasks_per_node=1)  # one process times, alone
            job = executor.submit(LatencyJob(), spec)
            outcome.measured, outcome.unfinished = job.result()
        else:
            outcome.measured, outcome.unfinished = _latency_in_process(spec)
    return outcome


def _run_jobs(
    executor, kind: str, spec: WorkerSpec, todo: Sequence[PlannedRun], cluster: ClusterOptions
) -> dict[str, tuple[RunOutcome | None, str | None]]:
    """Submit ``todo`` (as one array on SLURM; throttled locally) and wait for every job."""
    queue = list(todo)
    jobs: dict[str, Any] = {}
    if kind == "slurm":
        with executor.batch():
            submitted = [(run, executor.submit(RunJob(), spec, run.run_id)) for run in queue]
        jobs = {run.run_id: job for run, job in submitted}
        queue = []
    results: dict[str, tuple[RunOutcome | None, str | None]] = {}
    progress = _Progress(len(todo))
    while queue or len(results) < len(jobs):
        running = [run_id for run_id, job in jobs.items() if run_id not in results]
        while queue and len(running) < cluster.array_parallelism:
            run = queue.pop(0)
            jobs[run.run_id] = executor.submit(RunJob(), spec, run.run_id)
            running.append(run.run_id)
        for run_id in running:
            if jobs[run_id].done():
                results[run_id] = _job_result(jobs[run_id])
        failed = sum(result == "failed" or error is not None for result, error in results.values())
        progress.show(len(results) - failed, len(jobs) - len(results), failed)
        if queue or len(results) < len(jobs):
            time.sleep(cluster.poll_s)
    return results
