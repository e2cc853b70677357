"""`liteseg-bench evaluate` and evaluation-only variants on real CamVid: the same numbers
as the runs record, and clear errors for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from architectures import create_model
from bench.cli import main
from bench.config import load_suite, resolve_runs
from bench.layout import SuiteLayout

SUITE = """
name = "evaluate-test"
seeds = [0]

[protocol.data]
dataset = "camvid"

[protocol.augment]
pipeline = "paddleseg"
crop_size = [64, 64]
normalize = "half"

[protocol.train]
iters = 2
batch_size = 2
checkpoint_every = 2

[protocol.eval]
visualize = [0]

[protocol.profile]
flops_sizes = [[64, 64]]
latency_size = [64, 64]
warmup = 0
repeats = 1

[[variants]]
name = "trained"
model = "liteseg_mobilenetv2"

[[variants]]
name = "at half scale"
model = "liteseg_mobilenetv2"
evaluates = "trained"
set = { "eval.scale" = 0.5 }
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bench.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(real_data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    suite = root / "evaluate-test.toml"
    suite.write_text(SUITE, encoding="utf-8")
    out = root / "out"
    result = _cli("run", str(suite), "--out", str(out), "--data-root", str(real_data_root),
                  "--no-progress", "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    configs = {c.variant: c.run_id() for c in resolve_runs(load_suite(suite))}
    layout = SuiteLayout.of(out, "evaluate-test")
    records = {
        variant: json.loads(layout.run(run_id).result.read_text(encoding="utf-8"))
        for variant, run_id in configs.items()
    }
    return out, real_data_root, records


def _evaluate(out: Path, data_root: Path, *args: str) -> dict:
    output = out / f"evaluation-{len(list(out.glob('evaluation-*.json')))}.json"
    result = _cli("evaluate", *args, "--out", str(out), "--data-root", str(data_root),
                  "-o", str(output))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mIoU" in result.stdout and "record:" in result.stdout
    return json.loads(output.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_evaluating_a_run_reproduces_its_recorded_metrics_exactly(trained):
    out, data_root, records = trained
    run = records["trained"]
    evaluation = _evaluate(out, data_root, run["run_id"])
    assert evaluation["metrics"] == run["metrics"]
    assert (
        evaluation["dataset"]["val_split"] == "val" and evaluation["metrics"]["num_images"] == 101
    )


@pytest.mark.slow
def test_an_evaluation_only_variant_scores_the_trained_weights_at_its_own_scale(trained):
    out, data_root, records = trained
    trained_run, scaled = records["trained"], records["at half scale"]
    assert scaled["evaluated_from"] == trained_run["run_id"]
    assert scaled["training"] == trained_run["training"]
    assert scaled["config"]["eval"]["scale"] == 0.5 != trained_run["config"]["eval"]["scale"]
    evaluation = _evaluate(out, data_root, trained_run["run_id"], "--scale", "0.5")
    assert evaluation["metrics"] == scaled["metrics"]
    layout = SuiteLayout.of(out, "evaluate-test")
    assert not layout.run(scaled["run_id"]).final_weights.exists(), "no training of its own"


@pytest.mark.slow
def test_bad_inputs_are_clear_errors(trained, tmp_path):
    out, data_root, records = trained
    common = ["--out", str(out), "--data-root", str(data_root)]
    unknown = _cli("evaluate", "0123456789ab", *common)
    assert unknown.returncode == 2 and "no run with that id" in unknown.stderr
    cityscapes = tmp_path / "cityscapes.pt"
    torch.save(create_model("liteseg_mobilenetv2", 19).state_dict(), cityscapes)
    classes = _cli("evaluate", str(cityscapes), "--model", "liteseg_mobilenetv2",
                   "--dataset", "camvid", *common)  # fmt: skip
    assert classes.returncode == 2 and "the 11 classes of camvid" in classes.stderr
    split = _cli("evaluate", records["trained"]["run_id"], "--split", "test", *common)
    assert split.returncode == 2 and "test" in split.stderr
    for result in (unknown, classes, split):
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("option", "values", "rule"),
    [
        ("--scale", ["0"], "the factor must be a finite number > 0, e.g. --scale 0.5"),
        ("--scale", ["-1"], "the factor must be a finite number > 0"),
        ("--scale", ["nan"], "the factor must be a finite number > 0"),
        ("--scale", ["inf"], "the factor must be a finite number > 0"),
        ("--multiscale", ["0"], "the factor must be a finite number > 0"),
        ("--multiscale", ["0.75", "nan"], "every factor must be a finite number > 0"),
        ("--multiscale", ["1", "-2"], "every factor must be a finite number > 0"),
    ],
)
def test_a_scale_out_of_range_is_a_one_line_error(option, values, rule, capsys, tmp_path):
    weights = tmp_path / "weights.pt"
    weights.touch()
    argv = ["evaluate", str(weights), "--model", "liteseg_shufflenet", "--dataset", "synthetic"]
    assert main([*argv, "--data-root", str(tmp_path), option, *values]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} {' '.join(values)}: {rule}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_checkpoint_of_another_model_is_summarised(capsys, tmp_path):
    weights = tmp_path / "pp_liteseg_t.pt"
    torch.save(create_model("pp_liteseg_t", 4).state_dict(), weights)
    argv = ["evaluate", str(weights), "--model", "liteseg_shufflenet", "--dataset", "synthetic"]
    assert main([*argv, "--data-root", str(tmp_path), "--normalize", "half"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot load {weights}:") and "Traceback" not in err
    assert err.count("no key in common (a checkpoint of another model?)") == 2
    five_keys = r"(?:[\w.]+, ){4}[\w.]+ and \d+ more"
    assert len(re.findall(rf"\d+ missing: {five_keys}", err)) == 2
    assert len(re.findall(rf"\d+ unexpected: {five_keys}", err)) == 2
    assert len(err) < 2000
