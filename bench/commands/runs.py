"""``list``, ``plan``, ``run`` and ``report``: suites and their runs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from architectures import list_models, model_overrides
from bench.config import available_suites, load_suite, parse_assignments, suite_path
from bench.data import resolve_data_root
from bench.distributed import init_distributed, shutdown_distributed
from bench.runner import (
    PlannedRun,
    execute_run,
    pending_runs,
    plan_suite,
    profile_cache_path,
    reprofile_runs,
    stale_profile,
    suite_dir,
    validate_plan,
)

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("outputs")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``list``, ``plan``, ``run`` and ``report``."""
    listing = subparsers.add_parser("list", help="list suites and models with their overrides")
    listing.set_defaults(handler=_list)

    plan = subparsers.add_parser("plan", help="show each run of a suite, its id and status")
    _add_suite_arguments(plan)
    plan.set_defaults(handler=_plan)

    run = subparsers.add_parser(
        "run",
        help="train, evaluate and profile every unfinished run of a suite",
        description="Runs are keyed by a hash of their resolved config: finished runs are "
        "skipped, interrupted runs resume from their last checkpoint. Under "
        "`torchrun --nproc_per_node N` the same command trains with DDP.",
    )
    _add_suite_arguments(run)
    run.add_argument(
        "--data-root", type=Path, help="datasets folder (default: $LITESEG_BENCH_DATA)"
    )
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="default: cuda if available",
    )
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument(
        "--reprofile",
        action="store_true",
        help="measure the cost of every finished run again, all architectures side by side "
        "in interleaved rounds, so their latencies compare under the same machine conditions",
    )
    run.add_argument("--report", action="store_true", help="render the suite report afterwards")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_run)

    report = subparsers.add_parser("report", help="render a suite's HTML report from its records")
    _add_suite_arguments(report, with_set=True)
    report.set_defaults(handler=_report)


def _add_suite_arguments(parser: argparse.ArgumentParser, with_set: bool = True) -> None:
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
    if with_set:
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a protocol key for every run, e.g. --set train.iters=100",
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


def _load_plan(args: argparse.Namespace) -> tuple[object, list[PlannedRun]]:
    suite = load_suite(args.suite)
    plan = plan_suite(
        suite,
        args.out,
        cli_set=parse_assignments(args.set),
        only=args.only,
        source=str(suite_path(args.suite)),
    )
    return suite, plan


def _plan(args: argparse.Namespace) -> int:
    suite, plan = _load_plan(args)
    width = max([len("variant"), *(len(run.config.variant) for run in plan)])
    print(f"suite {suite.name}: {len(plan)} runs in {suite_dir(args.out, suite)}")
    print(f"  {'run id':<12}  {'variant':<{width}}  {'seed':>4}  status")
    for run in plan:
        variant, seed = run.config.variant, run.config.seed
        print(f"  {run.run_id:<12}  {variant:<{width}}  {seed:>4}  {run.status}")
    statuses = ("done", "partial", "missing", "failed")
    counts = ", ".join(f"{sum(r.status == s for r in plan)} {s}" for s in statuses)
    print(f"  {counts}")
    return 0


def _resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _run(args: argparse.Namespace) -> int:
    suite, plan = _load_plan(args)
    device = _resolve_device(args.device)
    datasets = {run.config.data.dataset for run in plan}
    only_synthetic = "synthetic" if datasets == {"synthetic"} else None
    data_root = resolve_data_root(args.data_root, dataset=only_synthetic)
    validate_plan(plan, data_root, device, source=str(suite_path(args.suite)))
    todo = pending_runs(plan, retry_failed=args.retry_failed)
    log.info(
        "suite %s: %d runs, %d to do (%d done, %d failed kept)",
        suite.name,
        len(plan),
        len(todo),
        sum(run.status == "done" for run in plan),
        sum(run.status == "failed" for run in plan) if not args.retry_failed else 0,
    )
    if args.reprofile:
        stale = [run for run in plan if run.status == "done"]
        reason = "--reprofile: every architecture measured again, side by side"
    else:
        stale = [run for run in plan if stale_profile(run)]
        reason = "the profile settings changed"
    ctx = init_distributed(device)
    failed = 0
    try:
        if stale and ctx.is_main:
            log.info("re-profiling %d finished run(s): %s", len(stale), reason)
            if args.reprofile:
                for path in {profile_cache_path(run, ctx.device.type) for run in stale}:
                    path.unlink(missing_ok=True)
            reprofile_runs(stale, ctx)
        for index, run in enumerate(todo, 1):
            log.info(
                "[%d/%d] %s seed %d (%s)",
                index,
                len(todo),
                run.config.variant,
                run.config.seed,
                run.run_id,
            )
            record = execute_run(run, data_root, ctx, progress=not args.no_progress)
            if record is not None and record.status == "failed":
                failed += 1
                log.error("run %s failed: %s", run.run_id, record.error)
    finally:
        shutdown_distributed()
    if args.report and ctx.is_main:
        _render(args)
    if failed:
        log.error(
            "%d run(s) failed; see `liteseg-bench plan %s` and the report", failed, args.suite
        )
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    path = _render(args)
    print(path)
    return 0


def _render(args: argparse.Namespace) -> Path:
    from reports.render import ReportEntry, render_report

    suite, plan = _load_plan(args)
    entries = [
        ReportEntry(
            run_id=run.run_id,
            variant=run.config.variant,
            seed=run.config.seed,
            status=run.status,
            record=run.record,
            error=run.record.error if run.record is not None else None,
        )
        for run in plan
    ]
    path = render_report(
        suite, entries, suite_dir(args.out, suite), suite_file=suite_path(args.suite)
    )
    log.info("report written to %s", path)
    return path
