"""The throughput benchmark's dry run: its table and ratios, on synthetic data (no timing
targets here: timed targets belong in tests/benchmarks)."""

from __future__ import annotations

import importlib.util
import statistics
import sys

import pytest

from bench.cli import build_parser
from bench.hardware import detect
from bench.throughput import (
    LABELS,
    Measurement,
    PaddleStep,
    PaddleUnavailable,
    ThroughputSettings,
    compute_ratios,
    measure_throughput,
)

TINY = {
    "data.dataset": "synthetic",
    "augment.crop_size": [64, 64],
    "train.batch_size": 2,
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    settings = ThroughputSettings(
        models=("pp_liteseg_t",),
        rounds=1,
        steps=1,
        eval_images=1,
        # Not "workers": after this session's OpenVINO tests, forked DataLoader workers made
        # the next fork of the pytest process crash (SIGSEGV); the real benchmark runs them.
        options=("channels_last", "bf16"),
        paddle_python=root / "no-python",
        threads=1,  # two threads on two busy cores wait on each other at every OpenMP barrier
        overrides=TINY,
        pause_s=0,
    )
    return measure_throughput(settings, root)


def test_every_configuration_is_measured_or_skipped_with_a_reason(report):
    keys = [m.key for m in report.measurements]
    assert keys == ["trainer", "bare", "channels_last", "bf16", "paddleseg", "eval"]
    for m in report.measurements:
        if m.key == "paddleseg" or (m.key == "bf16" and not detect().native_bf16):
            assert m.rates == [] and m.skipped
        else:
            assert len(m.rates) == 1 and m.rates[0] > 0 and m.skipped is None
    paddle = report.measurements[keys.index("paddleseg")]
    assert "no-python" in paddle.skipped
    assert report.settings["batch"] == 2 and report.settings["crop"] == [64, 64]


def test_ratios_are_quotients_of_the_medians(report):
    medians = {m.key: m.median for m in report.measurements}
    ratios = {r.name: r for r in report.ratios}
    assert ratios["ours/floor"].value == medians["trainer"] / medians["bare"]
    assert ratios["channels_last vs fp32 eager"].value == medians["channels_last"] / medians["bare"]
    assert ratios["ours/PaddleSeg"].value is None
    assert "compile vs fp32 eager" not in ratios and "num_workers=2 vs ours" not in ratios


def test_table_names_the_machine_and_every_row(report):
    table = report.table()
    lines = table.splitlines()
    assert lines[0] == f"machine: {detect().describe()}"
    assert "; 1 CPU thread" in lines[1]
    for m in report.measurements:
        assert m.label in table
    for ratio in report.ratios:
        assert ratio.name in table
    assert "skipped: no PaddleSeg step" in table
    assert report.as_dict()["ratios"][0]["name"] == "ours/floor"


def test_compute_ratios_takes_medians_not_means():
    measured = [
        Measurement("m", "trainer", LABELS["trainer"], "step", [1.0, 2.0, 9.0]),
        Measurement("m", "bare", LABELS["bare"], "step", [4.0, 3.0, 5.0]),
        Measurement("m", "paddleseg", LABELS["paddleseg"], "step", skipped="absent"),
    ]
    ratios = {r.name: r.value for r in compute_ratios(measured)}
    assert ratios == {
        "ours/floor": statistics.median([1, 2, 9]) / 4.0,
        "ours/PaddleSeg": None,
        "floor/PaddleSeg": None,
    }


@pytest.mark.skipif(importlib.util.find_spec("paddle") is not None, reason="paddle installed")
def test_paddle_step_without_paddle_says_why(tmp_path):
    with pytest.raises(PaddleUnavailable, match="paddle"):
        PaddleStep(sys.executable, {"threads": 1}, threads=1)


def test_cli_parses_the_throughput_command(tmp_path):
    argv = "throughput --models pp_liteseg_t --rounds 2 --steps 4 --paddle-python /p/python"
    args = build_parser().parse_args([*argv.split(), "--json", str(tmp_path / "t.json")])
    assert (args.models, args.rounds, args.steps) == (["pp_liteseg_t"], 2, 4)
    assert str(args.paddle_python) == "/p/python"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["throughput", "--rounds", "0"])
