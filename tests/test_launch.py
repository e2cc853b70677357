"""Many workers on one output folder, in real processes: every run is trained exactly once.

The counts come from the records and from each run's history (``events.jsonl``: one
``claimed`` line per worker that started work on the run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from bs4 import BeautifulSoup

from bench.config import load_suite, resolve_runs
from bench.execute import read_events
from bench.layout import SuiteLayout

FAST = ["--set", "train.iters=2", "--set", "profile.repeats=2", "--set", "profile.warmup=0"]
# The light half of the smoke suite keeps these multi-process tests short.
LIGHT = ["PP-LiteSeg-T", "LiteSeg-MobileNetV2", "LiteSeg-ShuffleNet", "LiteSeg-MobileNetV2 ASPP"]
FAST += [argument for variant in LIGHT for argument in ("--only", variant)]

ARRAY_SUITE = """
name = "array"
seeds = [0]

[protocol.data]
dataset = "synthetic"

[protocol.data.synthetic]
num_train = 8
num_val = 2
image_size = [64, 64]

[protocol.augment]
pipeline = "none"
crop_size = [64, 64]

[protocol.train]
iters = 3
batch_size = 4
checkpoint_every = 1

[protocol.profile]
flops_sizes = [[64, 64]]
latency_size = [64, 64]
warmup = 0
repeats = 2

[[variants]]
name = "ok-a"
model = "liteseg_mobilenetv2"

[[variants]]
name = "diverges"
model = "liteseg_mobilenetv2"
set = { "optim.lr" = 1e12 }

[[variants]]
name = "ok-b"
model = "liteseg_shufflenet"
"""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", *args]


def _run(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=timeout)


def _claims(layout: SuiteLayout) -> dict[str, list[dict]]:
    """Run id -> its ``claimed`` events."""
    return {
        run.name: [e for e in read_events(layout.run(run.name)) if e["event"] == "claimed"]
        for run in layout.runs.iterdir()
    }


def _assert_each_run_done_once(layout: SuiteLayout, run_ids: set[str]) -> None:
    claims = _claims(layout)
    assert set(claims) == run_ids
    for run_id, events in claims.items():
        assert len(events) == 1, (run_id, events)
        record = json.loads(layout.run(run_id).result.read_text(encoding="utf-8"))
        assert record["status"] == "done"
        assert not layout.run(run_id).lock.exists(), "locks are released"


def _smoke_run_ids() -> set[str]:
    from bench.config import parse_assignments

    cli_set = parse_assignments(
        value for key, value in zip(FAST[::2], FAST[1::2], strict=True) if key == "--set"
    )
    configs = resolve_runs(load_suite("smoke"), cli_set)
    return {config.run_id() for config in configs if config.variant in LIGHT}


@pytest.mark.slow
def test_two_run_commands_on_one_folder_train_every_run_exactly_once(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    args = _command("run", "smoke", "--out", str(out), "--data-root", str(data), "--no-progress")
    workers = [
        subprocess.Popen([*args, *FAST], stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    logs = [worker.communicate(timeout=1200)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], logs
    layout = SuiteLayout.of(out, "smoke")
    _assert_each_run_done_once(layout, _smoke_run_ids())
    trained = sum(log.count(" trained: ") for log in logs)
    assert trained >= 1 and sum(log.count("held by another worker") for log in logs) >= 0
    sessions = {
        latency["session"]
        for path in layout.runs.glob("*/result.json")
        for latency in json.loads(path.read_text())["cost"]["latency"]
    }
    assert len(sessions) == 1 and None not in sessions, "timed once, side by side, at the end"


@pytest.mark.slow
@pytest.mark.long
def test_submitit_local_executor_runs_the_suite_two_jobs_at_a_time(tmp_path):
    pytest.importorskip("submitit")
    out, data = tmp_path / "out", tmp_path / "data"
    result = _run(
        "run", "smoke", "--out", str(out), "--data-root", str(data), *FAST,
        "--launcher", "submitit", "--executor", "local", "--workers", "2", "--report",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    layout = SuiteLayout.of(out, "smoke")
    run_ids = _smoke_run_ids()
    _assert_each_run_done_once(layout, run_ids)
    assert "running" in result.stderr and "4 done, 0 running, 0 failed, 0 queued" in result.stderr
    jobs = {event["pid"] for events in _claims(layout).values() for event in events}
    assert len(jobs) == len(run_ids), "one job (process) per run"
    soup = BeautifulSoup(layout.report_html.read_text(encoding="utf-8"), "lxml")
    listed = {row.find("td").get_text(strip=True) for row in soup.find(id="runs-table").tbody("tr")}
    assert run_ids <= {text[:12] for text in listed}


@pytest.mark.slow
@pytest.mark.long
def test_a_failing_job_leaves_the_others_and_retry_reruns_only_it(tmp_path):
    pytest.importorskip("submitit")
    suite = tmp_path / "array.toml"
    suite.write_text(ARRAY_SUITE, encoding="utf-8")
    out, data = tmp_path / "out", tmp_path / "data"
    common = ["--out", str(out), "--data-root", str(data), "--launcher", "submitit"]
    common += ["--executor", "local", "--workers", "2"]
    first = _run("run", str(suite), *common)
    assert first.returncode == 1, first.stderr[-4000:]
    assert "Traceback" not in first.stderr
    layout = SuiteLayout.of(out, "array")
    configs = {config.variant: config.run_id() for config in resolve_runs(load_suite(suite))}
    records = {
        variant: json.loads(layout.run(run_id).result.read_text(encoding="utf-8"))
        for variant, run_id in configs.items()
    }
    assert records["ok-a"]["status"] == records["ok-b"]["status"] == "done"
    assert (
        records["diverges"]["status"] == "failed"
        and "Lower optim.lr" in records["diverges"]["error"]
    )

    retried = _run("run", str(suite), *common, "--retry-failed")
    assert retried.returncode == 1, retried.stderr[-4000:]
    claims = _claims(layout)
    assert len(claims[configs["diverges"]]) == 2
    assert len(claims[configs["ok-a"]]) == len(claims[configs["ok-b"]]) == 1


@pytest.mark.slow
@pytest.mark.long
def test_job_requeued_at_its_time_limit_resumes_from_the_checkpoint(tmp_path):
    submitit = pytest.importorskip("submitit")
    import torch

    from bench.execute import SuiteOptions
    from bench.launch import RunJob, WorkerSpec

    suite = tmp_path / "array.toml"
    suite.write_text(ARRAY_SUITE.replace("iters = 3", "iters = 40"), encoding="utf-8")
    spec = WorkerSpec(
        suite=str(suite),
        out_dir=tmp_path / "out",
        cli_set={},
        only=("ok-a",),
        options=SuiteOptions(data_root=tmp_path / "data", progress=False),
        threads=1,
    )
    _, layout, (run,) = spec.plan()
    executor = submitit.LocalExecutor(folder=layout.launcher / "%j")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(RunJob(), spec, run.run_id)
    # SIGUSR2 is what SLURM (and submitit's local controller) sends when the time limit
    # nears; sending it once step 5 is checkpointed simulates that moment exactly.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        claims = [e for e in read_events(run.layout) if e["event"] == "claimed"]
        checkpoint = run.layout.checkpoint
        if (
            claims
            and checkpoint.is_file()
            and torch.load(checkpoint, weights_only=True)["step"] >= 5
        ):
            os.kill(claims[0]["pid"], signal.SIGUSR2)
            break
        time.sleep(0.2)
    assert job.result() == "done"
    record = json.loads(run.layout.result.read_text(encoding="utf-8"))
    assert record["status"] == "done" and record["training"]["resumed_from"] >= 5
    claims = [e for e in read_events(run.layout) if e["event"] == "claimed"]
    assert [claim["previous_status"] for claim in claims] == ["missing", "partial"]
    assert claims[0]["pid"] != claims[1]["pid"], "the requeued job is a new process"


@pytest.mark.slow
@pytest.mark.long
def test_local_workers_share_the_plan_and_the_parent_times_latency_once(tmp_path):
    suite = tmp_path / "array.toml"
    healthy = ARRAY_SUITE.replace('"optim.lr" = 1e12', '"optim.lr" = 0.02')
    suite.write_text(healthy, encoding="utf-8")
    out = tmp_path / "out"
    result = _run("run", str(suite), "--out", str(out), "--data-root", str(tmp_path / "data"),
                  "--workers", "2", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "starting 2 local workers with 1 CPU thread(s) each" in result.stderr
    layout = SuiteLayout.of(out, "array")
    _assert_each_run_done_once(layout, {c.run_id() for c in resolve_runs(load_suite(suite))})
    workers = {e["pid"] for events in _claims(layout).values() for e in events}
    assert len(workers) == 2, "both workers trained"
    # ok-a and diverges share one architecture: two are timed, once, by the parent.
    assert result.stderr.count("timing 2 architectures side by side") == 1
