"""``list``, ``plan``, ``run``, ``status``, ``report`` and ``claims``: suites and their runs.

Handlers parse arguments, call the library (:mod:`bench.plan`, :mod:`bench.launch`,
:mod:`reports.render`) and print; they hold no logic of their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path

import torch

from architectures import list_models, model_overrides
from bench.claims import load_claims
from bench.config import available_suites, load_suite, parse_assignments, suite_path
from bench.data import resolve_data_root
from bench.errors import ConfigError
from bench.execute import SuiteOptions, SuiteOutcome, read_events
from bench.hardware import detect
from bench.launch import ClusterOptions, WorkerSpec, launch_local, launch_submitit
from bench.layout import SuiteLayout
from bench.locks import DEFAULT_TIMEOUT_S, FileLock
from bench.plan import PlannedRun, add_seeds, read_added_seeds, status_counts, validate_plan

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("outputs")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``list``, ``plan``, ``run``, ``status`` and ``report``."""
    listing = subparsers.add_parser("list", help="list suites and models with their overrides")
    listing.set_defaults(handler=_list)

    plan = subparsers.add_parser(
        "plan",
        help="show each run of a suite, its id and status, and validate everything `run` checks",
    )
    _add_suite_arguments(plan)
    _add_execution_arguments(plan)
    plan.set_defaults(handler=_plan)

    run = subparsers.add_parser(
        "run",
        help="train, evaluate and profile every unfinished run of a suite",
        description="Runs are keyed by a hash of their resolved config: finished runs are "
        "skipped, interrupted runs resume from their last checkpoint, and a run is claimed "
        "with a lock in its folder, so any number of workers (processes, machines, cluster "
        "jobs) can share one output folder. When the suite is complete, every architecture "
        "is timed side by side. Under `torchrun --nproc_per_node N` the same command trains "
        "with DDP.",
    )
    _add_suite_arguments(run)
    _add_execution_arguments(run)
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument(
        "--reprofile",
        action="store_true",
        help="time every finished architecture again, side by side in a new session",
    )
    run.add_argument("--report", action="store_true", help="render the suite report afterwards")
    run.add_argument(
        "--resolve-claims",
        type=int,
        metavar="MAX_SEEDS",
        help="then give each accuracy claim still inconclusive the seed pairs its claimed "
        "effect needs, when at most MAX_SEEDS, and judge it once more; both looks at 97.5 %% "
        "(Bonferroni) so the pair keeps a 5 %% error rate (added seeds are kept in "
        "OUT/SUITE/added_seeds.json)",
    )
    _add_claims_argument(run)
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="take over a run whose worker's heartbeat is older than this "
        f"(default {DEFAULT_TIMEOUT_S:.0f}); a dead process on this host is taken over at once",
    )
    launch = run.add_argument_group("launching")
    launch.add_argument(
        "--launcher",
        choices=("local", "submitit"),
        default="local",
        help="local: workers on this machine (default); submitit: one job per run "
        "(a SLURM job array when sbatch exists, submitit's local executor otherwise)",
    )
    launch.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="runs at once: local worker processes, or jobs at once for submitit "
        "(default 1; --slurm-array-parallelism takes precedence on SLURM)",
    )
    launch.add_argument(
        "--executor",
        choices=("auto", "slurm", "local"),
        default="auto",
        help="submitit executor (default auto: SLURM if sbatch is on the PATH)",
    )
    launch.add_argument("--slurm-partition", metavar="P", help="SLURM partition")
    launch.add_argument(
        "--slurm-array-parallelism", type=int, metavar="K", help="SLURM runs at once"
    )
    launch.add_argument(
        "--gpus-per-run",
        type=int,
        default=0,
        metavar="G",
        help="GPUs of each run's job; G > 1 trains under DDP (one task per GPU)",
    )
    launch.add_argument(
        "--tasks-per-run",
        type=int,
        default=1,
        metavar="T",
        help="DDP processes of a CPU run (gloo); ignored with --gpus-per-run",
    )
    launch.add_argument("--cpus-per-run", type=int, metavar="C", help="CPU cores per task")
    launch.add_argument("--mem", type=float, metavar="GB", help="memory per job")
    launch.add_argument(
        "--time",
        type=int,
        default=24 * 60,
        metavar="MIN",
        help="job time limit; a job that reaches it is requeued and resumes (default 1440)",
    )
    run.set_defaults(handler=_run)

    status = subparsers.add_parser(
        "status", help="each run's state, and which worker holds the running ones"
    )
    _add_suite_arguments(status)
    status.set_defaults(handler=_status)

    report = subparsers.add_parser("report", help="render a suite's HTML report from its records")
    _add_suite_arguments(report)
    _add_claims_argument(report)
    report.set_defaults(handler=_report)

    claims = subparsers.add_parser(
        "claims",
        help="the papers' claims tested in a suite: paired effect, 95 %% interval, verdict",
    )
    _add_suite_arguments(claims)
    _add_claims_argument(claims)
    claims.add_argument("--json", action="store_true", help="print JSON instead of a table")
    claims.set_defaults(handler=_claims)


def _add_claims_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claims",
        action="append",
        type=Path,
        metavar="TOML",
        help="claims file (repeatable; default: every experiments/claims/*.toml)",
    )


def _add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "suite", help=f"suite name ({', '.join(available_suites())}) or a .toml path"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: outputs)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="VARIANT_OR_RUN_ID",
        help="restrict to these variants or run ids (repeatable)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol key for every run, e.g. --set train.iters=100",
    )


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", type=Path, help="datasets folder (default: $LITESEG_BENCH_DATA)"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="default: cuda if available",
    )


def _list(args: argparse.Namespace) -> int:
    print("suites:")
    for name in available_suites():
        suite = load_suite(name)
        print(f"  {name:<18} {len(suite.variants):>2} variants  {suite.description}")
    print("models (overrides with defaults):")
    for name in list_models():
        overrides = ", ".join(f"{key}={value!r}" for key, value in model_overrides(name).items())
        print(f"  {name:<22} {overrides}")
    return 0


def _worker_spec(args: argparse.Namespace, options: SuiteOptions | None = None) -> WorkerSpec:
    return WorkerSpec(
        suite=args.suite,
        out_dir=args.out,
        cli_set=parse_assignments(args.set),
        only=tuple(args.only),
        options=options or SuiteOptions(data_root=Path()),
    )


def _device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _validated(args: argparse.Namespace) -> tuple[WorkerSpec, list[PlannedRun], SuiteLayout]:
    """Plan the suite and validate it as `run` does; returns the worker spec and plan."""
    spec = _worker_spec(args)
    _, layout, plan = spec.plan()
    datasets = {run.config.data.dataset for run in plan}
    data_root = resolve_data_root(
        args.data_root, dataset="synthetic" if datasets == {"synthetic"} else None
    )
    device = _device(args.device)
    validate_plan(plan, data_root, device, source=str(suite_path(args.suite)), output=layout.root)
    options = SuiteOptions(data_root=data_root, device=device)
    return _worker_spec(args, options), plan, layout


def _plan(args: argparse.Namespace) -> int:
    spec, plan, layout = _validated(args)
    _print_runs(plan, layout)
    device = spec.options.device
    print(f"  latency stage on this machine ({detect().describe()}):")
    for profile in dict.fromkeys(run.config.profile for run in plan):
        pairs = ", ".join(
            f"{runtime} {precision}" for runtime, precision in profile.combinations(device)
        )
        source = ' (precisions = "auto")' if profile.precisions == "auto" else ""
        print(f"    {pairs}{source}")
    print(
        f"  valid: every model and override builds, pretrained files exist, the data splits "
        f"of unfinished runs are present under {spec.options.data_root}, and the settings "
        f"fit --device {spec.options.device}"
    )
    return 0


def _print_runs(plan: list[PlannedRun], layout: SuiteLayout, holders: bool = False) -> None:
    width = max([len("variant"), *(len(run.config.variant) for run in plan)])
    print(f"suite {layout.root.name}: {len(plan)} runs in {layout.root}")
    print(f"  {'run id':<12}  {'variant':<{width}}  {'seed':>4}  status")
    for run in plan:
        line = f"  {run.run_id:<12}  {run.config.variant:<{width}}  {run.config.seed:>4}  "
        line += run.status
        lock = FileLock(run.layout.lock)
        holder = lock.read() if holders else None
        if holder is not None:
            kind = "stale claim of" if lock.is_stale(holder) else "held by"
            line += f", {kind} {holder.describe()}"
        elif holders:
            line += stopped_text(read_events(run.layout))
        print(line)
    counts = status_counts(plan)
    print("  " + ", ".join(f"{count} {status}" for status, count in counts.items()))


def stopped_text(events: list[dict]) -> str:
    """``, last interrupted at TIME: reason`` when a run's history ends in a stop."""
    if not events or events[-1]["event"] not in ("interrupted", "failed", "lost"):
        return ""
    last = events[-1]
    return f", last {last['event']} at {last.get('time', '?')[:19]}: {last.get('error', '')}"


def _run(args: argparse.Namespace) -> int:
    spec, _, _ = _validated(args)
    options = SuiteOptions(
        data_root=spec.options.data_root,
        device=spec.options.device,
        retry_failed=args.retry_failed,
        remeasure=args.reprofile,
        progress=not args.no_progress,
        lock_timeout_s=args.lock_timeout,
        heartbeat_s=min(30.0, args.lock_timeout / 4),
    )
    if args.resolve_claims is not None and args.resolve_claims < 2:
        raise ConfigError(f"--resolve-claims {args.resolve_claims}: needs at least 2 seeds")
    spec = _worker_spec(args, options)
    outcome = _launch(args, spec)
    while args.resolve_claims is not None and _add_claim_seeds(args, spec):
        outcome = _launch(args, spec)
    if args.report:
        print(_render(args))
    if outcome.failed:
        log.error(
            "%d run(s) failed; see `%s` and the report",
            len(outcome.failed),
            shlex.join(["liteseg-bench", "status", *_suite_arguments(args)]),
        )
        return 1
    return 0


def _suite_arguments(args: argparse.Namespace) -> list[str]:
    """The arguments that select the same runs in another command (suite, --out, --set,
    --only)."""
    selected = [args.suite, "--out", str(args.out)]
    for assignment in args.set:
        selected += ["--set", assignment]
    for name in args.only:
        selected += ["--only", name]
    return selected


def _launch(args: argparse.Namespace, spec: WorkerSpec) -> SuiteOutcome:
    if args.launcher == "submitit":
        cluster = ClusterOptions(
            executor=args.executor,
            partition=args.slurm_partition,
            gpus_per_run=args.gpus_per_run,
            tasks_per_run=args.tasks_per_run,
            cpus_per_run=args.cpus_per_run,
            mem_gb=args.mem,
            time_min=args.time,
            array_parallelism=args.slurm_array_parallelism or args.workers,
        )
        outcome = launch_submitit(spec, cluster)
    else:
        outcome = launch_local(spec, workers=args.workers)
    _print_outcome(outcome)
    return outcome


def _judged_claims(args: argparse.Namespace, spec: WorkerSpec):
    from reports.comparisons import evaluate_claims
    from reports.render import entries_from_plan
    from reports.summary import primary_latency_key, summarize_suite

    suite, layout, plan = spec.plan()
    summaries = summarize_suite(suite, entries_from_plan(plan))
    key = primary_latency_key(summaries.values())
    added = read_added_seeds(layout)
    results = evaluate_claims(suite, summaries, load_claims(args.claims), key, added)
    return layout, summaries, results


def _add_claim_seeds(args: argparse.Namespace, spec: WorkerSpec) -> bool:
    """Plan the seed pairs the claims on their first look need; False if none do."""
    from reports.comparisons import seeds_to_add

    layout, summaries, results = _judged_claims(args, spec)
    added = seeds_to_add(results, summaries, args.resolve_claims)
    if not added:
        log.info(
            "claims: every claim is decided, looked at twice, or out of reach of %d seeds",
            args.resolve_claims,
        )
        return False
    add_seeds(layout, added)
    log.info(
        "claims: adding seeds %s",
        ", ".join(f"{name} {sorted(seeds)}" for name, seeds in sorted(added.items())),
    )
    return True


def _claims(args: argparse.Namespace) -> int:
    from reports.comparisons import claim_records
    from reports.tables import claim_rows, claims_text

    _, _, results = _judged_claims(args, _worker_spec(args))
    if args.json:
        print(json.dumps(claim_records(results), indent=2))
    else:
        print(claims_text(claim_rows(results)))
    return 0


def _print_outcome(outcome: SuiteOutcome) -> None:
    for kind, label in (
        ("done", "trained"),
        ("failed", "failed"),
        ("held", "held by other workers"),
        ("finished-elsewhere", "finished by other workers"),
        ("lost", "taken over by other workers"),
        ("removed", "stopped because their files were deleted while they ran"),
    ):
        ids = outcome.ids(kind)
        if ids:
            log.info("%d run(s) %s: %s", len(ids), label, ", ".join(ids))
    if outcome.measured:
        log.info("timed %d architecture(s) side by side", len(outcome.measured))


def _status(args: argparse.Namespace) -> int:
    _, layout, plan = _worker_spec(args).plan()
    _print_runs(plan, layout, holders=True)
    return 0


def _report(args: argparse.Namespace) -> int:
    print(_render(args))
    return 0


def _render(args: argparse.Namespace) -> Path:
    from reports.render import entries_from_plan, render_report

    spec = _worker_spec(args)
    suite, layout, plan = spec.plan()
    path = render_report(
        suite,
        entries_from_plan(plan),
        layout,
        suite_file=suite_path(args.suite),
        claims=load_claims(args.claims),
        added_seeds=read_added_seeds(layout),
    )
    log.info("report written to %s", path)
    return path
