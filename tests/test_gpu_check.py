"""The GPU script's CPU dry run: it measures the runtimes present and writes JSON + markdown."""

from __future__ import annotations

import json

import pytest

from bench.deploy import gpu_check

pytestmark = pytest.mark.slow


def test_dry_run_writes_json_and_markdown(tmp_path, monkeypatch):
    every_job = gpu_check.jobs_for
    # torch.compile takes tens of seconds on CPU; the profile tests cover that path.
    monkeypatch.setattr(
        gpu_check,
        "jobs_for",
        lambda device: [job for job in every_job(device) if job.options.backend != "inductor"],
    )
    code = gpu_check.main(
        [
            "--dry-run",
            "--out",
            str(tmp_path),
            "--models",
            "liteseg_shufflenet",
            "--repeats",
            "2",
            "--warmup",
            "0",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry_run"] and result["environment"]["device"] == "cpu"
    assert {"torch", "onnxruntime", "openvino"} <= set(result["environment"]["versions"])
    measured = {(row["runtime"], row["precision"]) for row in result["rows"]}
    assert measured == {("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32")}
    assert all(row["size"] == [64, 96] and row["median_ms"] > 0 for row in result["rows"])
    assert result["training"]["images_per_s"] > 0
    text = (tmp_path / "gpu_check.md").read_text()
    assert "| liteseg_shufflenet | 64×96 | onnxruntime" in text and "images/s" in text


def test_budget_stops_starting_measurements(tmp_path):
    result = gpu_check.run_check(
        tmp_path, dry_run=True, models=["liteseg_shufflenet"], budget_s=0.0, repeats=1, warmup=0
    )
    assert result["rows"] == [] and result["training"] is None
    assert any("time budget" in item for item in result["skipped"])


def test_a_gpu_run_without_cuda_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "needs a CUDA GPU; use --dry-run" in capsys.readouterr().err
