"""The procedural dataset: deterministic, cached, several classes, loads like the others."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.config import DataSpec, SyntheticSpec
from bench.data import build_dataset, dataset_info, resolve_data_root
from bench.data.check import check_dataset
from bench.data.synthetic import dataset_folder, ensure_generated

SPEC = SyntheticSpec(num_train=6, num_val=3, image_size=(40, 56), num_classes=5, seed=3)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_generation_is_deterministic_and_reused(tmp_path: Path) -> None:
    first = ensure_generated(tmp_path / "a", SPEC)
    second = ensure_generated(tmp_path / "b", SPEC)
    assert first.name == second.name == dataset_folder(tmp_path, SPEC).name
    assert _files(first) == _files(second)
    marker = first / "JPEGImages" / "train_00000.jpg"
    stamp = marker.stat().st_mtime_ns
    assert ensure_generated(tmp_path / "a", SPEC) == first
    assert marker.stat().st_mtime_ns == stamp
    other = ensure_generated(tmp_path / "a", SPEC.model_copy(update={"seed": 4}))
    assert other != first
    assert _files(other) != _files(first)
    assert [p.name for p in (tmp_path / "a").iterdir() if ".tmp-" in p.name] == []


def test_dataset_has_several_classes_and_valid_tensors(tmp_path: Path) -> None:
    spec = DataSpec(dataset="synthetic", synthetic=SPEC)
    train = build_dataset(spec, tmp_path, "train")
    val = build_dataset(spec, tmp_path, "val")
    assert (len(train), len(val)) == (6, 3)
    assert train.info == dataset_info("synthetic", SPEC)
    assert train.info.num_classes == 5 and train.info.class_names[0] == "background"
    present = set()
    for index in range(len(train)):
        image, label = train.load_pair(index)
        assert image.shape == (40, 56, 3) and image.dtype == np.uint8
        present |= set(np.unique(label).tolist())
        # objects are saturated colours on a greyish ground: a small CNN can separate them
        saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].astype(float)
        assert saturation[label > 0].mean() > saturation[label == 0].mean() + 50
    assert present <= set(range(5))
    assert len(present) >= 4
    image, label = train[0]
    assert image.shape == (3, 40, 56) and image.dtype == torch.float32
    assert label.dtype == torch.int64


def test_check_reports_synthetic_ok(tmp_path: Path) -> None:
    report = check_dataset("synthetic", tmp_path, synthetic=SPEC)
    assert report.ok, report.format()
    assert [s.found for s in report.splits] == [6, 3]


def test_synthetic_root_defaults_to_temp_dir(monkeypatch) -> None:
    monkeypatch.delenv("LITESEG_BENCH_DATA", raising=False)
    root = resolve_data_root(None, dataset="synthetic")
    assert root.name == "liteseg-bench-data"


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [dataset[index] for index in range(len(dataset))]
    return torch.stack([image for image, _ in pairs]), torch.stack([label for _, label in pairs])


@pytest.fixture
def one_thread():
    """Tiny convolutions run faster on one thread than on cores shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_small_cnn_learns_it(tmp_path: Path, one_thread) -> None:
    torch.manual_seed(0)
    spec = DataSpec(
        dataset="synthetic", synthetic=SyntheticSpec(num_train=12, num_val=6, image_size=(48, 48))
    )
    train = build_dataset(spec, tmp_path, "train")
    val = build_dataset(spec, tmp_path, "val")
    images, labels = _stack(train)
    val_images, val_labels = _stack(val)
    num_classes = train.info.num_classes
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, num_classes, 1),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    with torch.no_grad():
        predictions = model(val_images).argmax(1)
    ious = [
        ((predictions == c) & (val_labels == c)).sum()
        / ((predictions == c) | (val_labels == c)).sum()
        for c in range(num_classes)
    ]
    assert float(torch.stack(ious).mean()) > 0.7
