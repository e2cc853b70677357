"""The `liteseg-bench` run/plan/report/list commands: the smoke suite end to end, and
plan validation that rejects bad input before any training starts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from bench.config import load_suite
from bench.hardware import detect

BASE_SUITE = """
name = "bad"
seeds = [0]

[protocol.data]
dataset = "{dataset}"

[protocol.train]
iters = 2
batch_size = 2

[[variants]]
name = "only"
model = "{model}"
overrides = {overrides}
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("smoke")
    out = root / "out"
    result = _cli(
        "run", "smoke", "--out", str(out), "--data-root", str(root / "data"),
        "--device", "cpu", "--no-progress", "--report",
    )  # fmt: skip
    return out, result


@pytest.mark.slow
def test_smoke_suite_trains_every_model_and_renders_the_report(smoke):
    out, result = smoke
    assert result.returncode == 0, result.stderr[-3000:]
    suite = load_suite("smoke")
    html = (out / "smoke" / "report" / "report.html").read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "lxml")
    main_rows = soup.find(id="main-table").find("tbody").find_all("tr", recursive=False)
    main_variants = [v.name for v in suite.variants if v.group == "main"]
    assert len(main_rows) == len(main_variants)
    for name in main_variants:
        assert name in soup.find(id="main-table").get_text()
    assert len(soup.find_all("table", class_="ablation-table")) == 2
    images = soup.find_all("img")
    assert images
    for image in images:
        header, payload = image["src"].split(",", 1)
        assert header == "data:image/png;base64"
        assert base64.b64decode(payload).startswith(b"\x89PNG")
    assert (out / "smoke" / "report" / "results.csv").is_file()


@pytest.mark.slow
def test_records_and_latencies_name_the_cpu_features(smoke):
    out, _ = smoke
    features = detect().feature_names()
    for path in (out / "smoke" / "runs").glob("*/result.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record["environment"]["cpu_features"] == features
        assert record["environment"]["cores"] == detect().cores
        assert all(latency["cpu_features"] == features for latency in record["cost"]["latency"])


@pytest.mark.slow
def test_second_invocation_has_nothing_to_do(smoke):
    out, _ = smoke
    plan = _cli("plan", "smoke", "--out", str(out))
    assert plan.returncode == 0 and "7 done, 0 partial, 0 missing, 0 failed" in plan.stdout
    again = _cli("run", "smoke", "--out", str(out), "--device", "cpu", "--no-progress")
    assert again.returncode == 0
    assert "7 runs, 0 to do" in again.stderr and "[1/" not in again.stderr


@pytest.mark.slow
def test_changed_profile_settings_reprofile_without_retraining(smoke):
    out, _ = smoke
    result = _cli("run", "smoke", "--out", str(out), "--no-progress", "--set", "profile.repeats=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "timing 7 architectures side by side" in result.stderr and "[1/" not in result.stderr
    for path in (out / "smoke" / "runs").glob("*/result.json"):
        record = json.loads(path.read_text())
        assert record["config"]["profile"]["repeats"] == 2
        assert record["cost"]["latency"][0]["repeats"] == 2
    again = _cli("run", "smoke", "--out", str(out), "--no-progress", "--set", "profile.repeats=2")
    assert "side by side" not in again.stderr


@pytest.mark.slow
def test_reprofile_measures_every_architecture_again_without_retraining(smoke):
    out, _ = smoke
    runs = out / "smoke" / "runs"
    weights_before = {path: path.stat().st_mtime_ns for path in runs.glob("*/model_final.pt")}
    args = ("run", "smoke", "--out", str(out), "--no-progress", "--set", "profile.repeats=2")
    started_ns = time.time_ns()
    result = _cli(*args, "--reprofile")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "timing 7 architectures side by side" in result.stderr
    assert "[1/" not in result.stderr
    assert {path: path.stat().st_mtime_ns for path in weights_before} == weights_before
    measured_now = [
        json.loads(path.read_text())["latency"][0]
        for path in (out / "smoke" / "profiles").glob("*.json")
        if path.stat().st_mtime_ns >= started_ns
    ]
    architectures = {(v.model, str(v.overrides)) for v in load_suite("smoke").variants}
    assert len(measured_now) == len(architectures)
    for path in runs.glob("*/result.json"):
        latency = json.loads(path.read_text())["cost"]["latency"][0]
        assert (latency["repeats"], latency["rounds"]) == (2, 2) and latency in measured_now
    assert "side by side" not in _cli(*args).stderr


@pytest.mark.slow
def test_report_rerenders_from_records_alone(smoke):
    out, _ = smoke
    html = out / "smoke" / "report" / "report.html"
    html.unlink()
    result = _cli("report", "smoke", "--out", str(out))
    assert result.returncode == 0 and html.is_file()


def _bad_suite(tmp_path: Path, *, dataset="synthetic", model="pp_liteseg_t", overrides="{}"):
    path = tmp_path / "bad.toml"
    path.write_text(BASE_SUITE.format(dataset=dataset, model=model, overrides=overrides))
    return path


def _assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@pytest.mark.parametrize(
    ("suite_kwargs", "fragments"),
    [
        (
            {"model": "pp_liteseg_x"},
            ["variant 'only'", "unknown model 'pp_liteseg_x'", "valid names"],
        ),
        ({"overrides": "{ spp = false }"}, ["variant 'only'", "['spp']", "accepted"]),
        ({"overrides": '{ fusion = "bogus" }'}, ["variant 'only'", "fusion='bogus' is not valid"]),
        ({"dataset": "camvid"}, ["camvid", "does not exist"]),
    ],
)
@pytest.mark.parametrize("command", ["run", "plan"])
def test_plan_is_validated_before_training(tmp_path, suite_kwargs, fragments, command):
    suite = _bad_suite(tmp_path, **suite_kwargs)
    (tmp_path / "data").mkdir()
    out = tmp_path / "out"
    result = _cli(command, str(suite), "--out", str(out), "--data-root", str(tmp_path / "data"))
    _assert_user_error(result, str(suite), *fragments)
    assert result.stderr.count("accepted") <= 1, "the accepted overrides are listed once"
    assert not (out / "bad" / "runs").exists()


def test_valid_plan_says_it_was_validated(tmp_path):
    suite = _bad_suite(tmp_path)
    result = _cli("plan", str(suite), "--out", str(tmp_path / "out"), "--data-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (
        "1 missing" in result.stdout and "valid: every model and override builds" in result.stdout
    )


def test_unknown_and_mistyped_keys_name_file_and_key(tmp_path):
    suite = _bad_suite(tmp_path)
    suite.write_text(suite.read_text().replace("iters = 2", "iters = 2\nepoch_count = 3"))
    _assert_user_error(
        _cli("plan", str(suite)), str(suite), "protocol.train.epoch_count", "unknown key"
    )
    suite.write_text(
        suite.read_text().replace("epoch_count = 3\n", "").replace("= 2\n", '= "two"\n')
    )
    _assert_user_error(_cli("plan", str(suite)), str(suite), "protocol.train.batch_size")


def test_cli_set_and_only_are_validated(tmp_path):
    suite = str(_bad_suite(tmp_path))
    _assert_user_error(_cli("plan", suite, "--set", "train.iterz=3"), "--set", "train.iterz")
    _assert_user_error(_cli("plan", suite, "--set", "nokey"), "KEY=VALUE")
    _assert_user_error(_cli("plan", suite, "--only", "nope"), "--only", "'nope'")
    _assert_user_error(_cli("plan", "no-such-suite"), "unknown suite", "camvid-quick")


def test_missing_data_root_explains_both_options(tmp_path, monkeypatch):
    monkeypatch.delenv("LITESEG_BENCH_DATA", raising=False)
    suite = str(_bad_suite(tmp_path, dataset="camvid"))
    _assert_user_error(
        _cli("run", suite, "--out", str(tmp_path)), "--data-root", "LITESEG_BENCH_DATA"
    )


def test_list_shows_suites_and_models():
    result = _cli("list")
    assert result.returncode == 0
    for name in ("camvid-quick", "smoke", "pp_liteseg_t", "liteseg_darknet19", "fusion='spatial'"):
        assert name in result.stdout
