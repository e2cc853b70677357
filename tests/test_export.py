"""ONNX export of every registered model and every ablation switch value, checked in ONNX Runtime.

The cases come from the registry and the suites, so a new model or switch is covered
without touching this file: every model at three static sizes (one odd, where SPPM's
bins 2 and 4 do not divide the 1/32 feature map, and one so small that they exceed it),
and at the odd size every alternative value of every switch: booleans flipped, and
every value any suite in experiments/ gives a switch of that name, alone and in the
combinations the suites use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from architectures import create_model, list_models, model_overrides
from bench import deploy
from bench.cli import main
from bench.commands import export
from bench.config import available_suites, load_suite
from bench.deploy import DeployedModel, export_onnx, onnx_error, random_calibration
from bench.deploy.export import check_onnx_destination
from bench.profile import random_images

NUM_CLASSES = 4
ODD_SIZE = (181, 243)
SIZES = ((64, 96), ODD_SIZE, (97, 130))
# The task's acceptance rule: ONNX Runtime's logits within 1e-4 x std of PyTorch's.
TOLERANCE = 1e-4


def _suite_overrides() -> list[tuple[str, dict]]:
    return [
        (variant.model, dict(variant.overrides))
        for name in available_suites()
        for variant in load_suite(name).variants
        if variant.overrides
    ]


def switch_cases() -> list[tuple[str, dict]]:
    """(model, overrides) for every alternative switch value, one switch at a time, plus the
    suites' multi-switch combinations."""
    used = _suite_overrides()
    seen_values: dict[str, list] = {}
    for _, overrides in used:
        for key, value in overrides.items():
            if value not in seen_values.setdefault(key, []):
                seen_values[key].append(value)
    cases = []
    for name in list_models():
        for key, default in model_overrides(name).items():
            values = [not default] if isinstance(default, bool) else []
            values += [v for v in seen_values.get(key, []) if v != default and v not in values]
            cases += [(name, {key: value}) for value in values]
        cases += [(model, o) for model, o in used if model == name and len(o) > 1]
    return cases


def _case_id(case: tuple[str, dict]) -> str:
    name, overrides = case
    return name + "-" + "-".join(f"{key}={value}" for key, value in sorted(overrides.items()))


def _model(name: str, overrides: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, NUM_CLASSES, **overrides).eval()
    for module in model.modules():  # BN statistics that folding must carry exactly
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _check(name: str, overrides: dict, size: tuple[int, int], tmp_path) -> None:
    model = _model(name, overrides)
    path = export_onnx(model, size, tmp_path / "model.onnx")
    error = onnx_error(model, path, random_images(size, seed=1))
    assert error <= TOLERANCE, f"{name} {overrides} at {size}: max|diff| = {error:.2e} x std"


@pytest.mark.slow
def test_every_bool_and_suite_switch_has_a_case():
    cases = switch_cases()
    for name in list_models():
        for key, default in model_overrides(name).items():
            if isinstance(default, (bool, str)):
                assert any(m == name and key in o for m, o in cases), (name, key)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("name", list_models())
def test_every_model_exports_exactly(name, size, tmp_path):
    _check(name, {}, size, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", switch_cases(), ids=_case_id)
def test_every_switch_value_exports_exactly(case, tmp_path):
    name, overrides = case
    _check(name, overrides, ODD_SIZE, tmp_path)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("name", list_models())
def test_every_model_quantizes_to_int8(name, runtime):
    """The export goes through each runtime's int8 tooling and still computes the model
    (random weights: only a loose correlation is asserted; accuracy is tested on CamVid)."""
    model = _model(name, {})
    size = SIZES[0]
    images = random_images(size, seed=1)
    with DeployedModel(
        model, runtime, "int8", threads=1, calibration=random_calibration(size, 2)
    ) as deployed:
        actual = deployed(images)
    with torch.no_grad():
        expected = model(images)
    assert actual.shape == expected.shape and torch.isfinite(actual).all()
    correlation = torch.corrcoef(torch.stack([actual.flatten(), expected.flatten()]))[0, 1]
    assert correlation > 0.9, f"{name} {runtime} int8: correlation {correlation:.3f}"


@pytest.fixture
def no_export_work(monkeypatch):
    """Bad options must be refused before any model is built or exported."""

    def refuse(*args, **kwargs):
        raise AssertionError("the export work started before the options were checked")

    monkeypatch.setattr(export, "build_model", refuse)
    monkeypatch.setattr(deploy, "export_onnx", refuse)


def _export_error(capsys, *args: str) -> str:
    argv = ["export", "liteseg_shufflenet", "--num-classes", "2", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_an_output_that_cannot_be_written_is_refused_first(no_export_work, capsys, tmp_path):
    size = ["--size", "32x32"]
    err = _export_error(capsys, *size, "-o", str(tmp_path))
    assert f"{tmp_path}: it is a folder; name a file, e.g. {tmp_path / 'model.onnx'}" in err
    err = _export_error(capsys, *size, "-o", str(tmp_path / "model.pt"))
    assert f"the name must end in .onnx, e.g. {tmp_path / 'model.onnx'}" in err
    (tmp_path / "file").touch()
    err = _export_error(capsys, *size, "-o", str(tmp_path / "file" / "model.onnx"))
    assert f"{tmp_path / 'file'} is a file, not a folder" in err
    if Path("/proc").is_dir():
        err = _export_error(capsys, *size, "-o", "/proc/liteseg/model.onnx")
        assert "cannot write the ONNX file /proc/liteseg/model.onnx: /proc does not accept" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_first(no_export_work, capsys, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    err = _export_error(capsys, "--size", "32x32", "-o", str(folder / "model.onnx"))
    assert f"{folder} does not accept new files" in err and "choose a writable folder" in err


def test_a_writable_destination_is_checked_without_leaving_anything(tmp_path):
    target = tmp_path / "new" / "folders" / "model.onnx"
    assert check_onnx_destination(target) == target
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", ["100000x100000", "8193x64", "0x64", "64x-1"])
def test_an_input_size_out_of_range_is_refused(size, no_export_work, capsys, tmp_path):
    err = _export_error(capsys, "--size", size, "-o", str(tmp_path / "model.onnx"))
    assert f"--size {size!r}: expected HEIGHTxWIDTH with each side 1 to 8192 pixels" in err


@pytest.mark.parametrize(
    ("option", "value"), [("--num-classes", "0"), ("--num-classes", "-3"), ("--batch", "0")]
)
def test_counts_below_one_are_refused(option, value, no_export_work, capsys, tmp_path):
    argv = ["export", "liteseg_shufflenet", "--size", "32x32", "-o", str(tmp_path / "m.onnx")]
    assert main([*argv, option, value]) == 2
    err = capsys.readouterr().err
    assert f"error: {option} must be at least 1, got {value}" in err and "Traceback" not in err
