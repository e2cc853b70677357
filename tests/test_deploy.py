"""bench.deploy: runtimes behind one interface, plan-time checks, side-by-side timing, CLI."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from architectures import create_model
from bench import deploy, profile
from bench.cli import main
from bench.config import ProfileSpec
from bench.deploy.runtimes import openvino_runtime
from bench.errors import ConfigError
from bench.results import Cost, Latency

CPU = torch.device("cpu")
SIZE = (64, 96)


class TinyNet(nn.Module):
    """conv-bn-relu and a 1x1 head: small enough to export and quantize in a second."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.body[1].running_mean.uniform_(-0.5, 0.5)
        model.body[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize(
    ("runtime", "precision", "message"),
    [
        ("tensorrt", "fp32", "needs an NVIDIA GPU"),
        ("torch", "fp16", "fp16 convolutions need CUDA"),
        ("torch", "int8", "int8 runs on onnxruntime or openvino"),
        ("onnxruntime", "bf16", "no bf16 convolution kernels on CPU"),
        ("openvino", "fp16", "fp16 is a GPU precision"),
        ("no_such_runtime", "fp32", "unknown runtime 'no_such_runtime'"),
    ],
)
def test_combinations_a_device_cannot_run_are_refused(runtime, precision, message):
    with pytest.raises(ConfigError, match=message):
        deploy.check_combination(runtime, precision, CPU)


def test_profile_spec_check_names_the_key_and_value():
    spec = ProfileSpec(runtimes=("torch", "openvino"), precisions=("fp32", "int8"))
    with pytest.raises(ConfigError) as caught:
        profile.check_profile_spec(spec, "cpu")
    text = str(caught.value)
    assert "profile.precisions includes 'int8'" in text and "'torch'" in text
    assert "profile.runtime_precisions.torch" in text  # says how to fix it
    fixed = ProfileSpec(
        runtimes=("torch", "openvino"),
        precisions=("fp32", "int8"),
        runtime_precisions={"torch": ("fp32",)},
    )
    assert fixed.combinations() == [("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")]
    profile.check_profile_spec(fixed, "cpu")
    with pytest.raises(ConfigError, match=r"profile.runtimes.*'tensorrt' does not run on cpu"):
        profile.check_profile_spec(ProfileSpec(runtimes=("tensorrt",)), "cpu")


def test_runtime_precisions_must_name_a_listed_runtime():
    with pytest.raises(ValueError, match=r"runtime_precisions.openvino is set but 'openvino'"):
        ProfileSpec.model_validate({"runtime_precisions": {"openvino": ["int8"]}})


def test_openvino_bf16_is_refused_where_the_cpu_would_silently_run_f32(monkeypatch):
    monkeypatch.setattr(openvino_runtime, "cpu_capabilities", lambda: ("FP32", "INT8"))
    with pytest.raises(ConfigError, match=r"no native bf16.*would run f32"):
        deploy.check_combination("openvino", "bf16", CPU)
    monkeypatch.setattr(openvino_runtime, "cpu_capabilities", lambda: ("FP32", "BF16", "INT8"))
    deploy.check_combination("openvino", "bf16", CPU)


def test_a_missing_runtime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(deploy.RuntimeMissingError, match=r"liteseg-bench\[deploy\]"):
        deploy.check_combination("openvino", "fp32", CPU)
    spec = ProfileSpec(runtimes=("openvino",))
    with pytest.raises(ConfigError, match=r"'openvino'.*pip install 'liteseg-bench\[deploy\]'"):
        profile.check_profile_spec(spec, "cpu")


def test_cli_reports_a_missing_runtime_without_traceback(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    argv = ["profile", "pp_liteseg_t", "--size", "64x64", "--runtime", "onnxruntime"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "pip install 'liteseg-bench[deploy]'" in err


@pytest.mark.parametrize(
    ("runtime", "precision", "tolerance"),
    [
        ("torch", "fp32", 1e-5),
        ("onnxruntime", "fp32", 1e-4),
        ("openvino", "fp32", 1e-4),
        ("onnxruntime", "int8", 0.1),
        ("openvino", "int8", 0.1),
    ],
)
def test_every_runtime_computes_the_model(tiny, runtime, precision, tolerance):
    images = profile.random_images(SIZE, seed=1)
    calibration = deploy.Calibration(
        tuple(profile.random_images(SIZE, seed=seed)[0] for seed in range(4)), "test"
    )
    with deploy.DeployedModel(tiny, runtime, precision, threads=1, calibration=calibration) as net:
        actual = net(images)
        deployment = net.deployment(images)
    with torch.no_grad():
        expected = tiny(images)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= tolerance * expected.abs().max()
    assert deployment.runtime == runtime and deployment.precision == precision
    assert deployment.calibration == ("4 images: test" if precision == "int8" else None)


def test_int8_accuracy_needs_calibration(tiny):
    with pytest.raises(ConfigError, match="needs calibration images"):
        deploy.DeployedModel(tiny, "openvino", "int8")


def test_runtimes_are_timed_side_by_side_in_one_session(tiny, monkeypatch):
    monkeypatch.setattr(profile.latency, "MIN_WARMUP_SECONDS", 0.0)
    combinations = [("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "int8")]
    records = profile.measure_deployments(
        {"a": tiny, "b": tiny}, SIZE, combinations, threads=1, warmup=1, repeats=4, rounds=2
    )
    for latencies in records.values():
        assert [(r.runtime, r.precision) for r in latencies] == combinations
        assert [r.backend for r in latencies] == ["eager", "CPUExecutionProvider", "CPU"]
        assert all(r.threads == 1 and r.repeats == 4 and r.rounds == 2 for r in latencies)
        assert all(r.runtime_version and r.timing == "end_to_end" for r in latencies)
        assert latencies[2].calibration.endswith(deploy.quantize.RANDOM_SOURCE)
        assert latencies[1].bn_folded
    sessions = {r.session for latencies in records.values() for r in latencies}
    assert len(sessions) == 1


def test_profile_models_gives_one_latency_per_combination(tiny):
    spec = ProfileSpec(
        flops_sizes=(SIZE,),
        latency_size=SIZE,
        warmup=0,
        repeats=2,
        threads=1,
        runtimes=("torch", "onnxruntime"),
        precisions=("fp32", "int8"),
        runtime_precisions={"torch": ("fp32", "bf16")},
    )
    calibration = deploy.random_calibration(SIZE, count=2)
    costs = profile.profile_models({"tiny": tiny}, spec, "cpu", rounds=2, calibration=calibration)
    latencies = costs["tiny"].latency
    assert [(r.runtime, r.precision) for r in latencies] == [
        ("torch", "fp32"),
        ("torch", "bf16"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
    ]
    assert latencies[3].calibration == "2 images: " + deploy.quantize.RANDOM_SOURCE


def test_schema_1_latency_records_still_load():
    old = {
        "device": "cpu",
        "device_name": "x",
        "dtype": "float32",
        "input_size": [8, 8],
        "batch": 1,
        "threads": 2,
        "warmup": 1,
        "repeats": 2,
        "median_ms": 1.0,
        "iqr_ms": 0.1,
        "fps": 1000.0,
    }
    record = Latency.model_validate(old)
    assert (record.runtime, record.precision, record.runtime_version) == (
        "torch",
        "fp32",
        "unknown",
    )


def test_cli_profile_measures_runtimes_side_by_side(capsys, tmp_path):
    out = tmp_path / "cost.json"
    argv = [
        "profile",
        "liteseg_shufflenet",
        "--size",
        "64x96",
        "--runtime",
        "torch",
        "onnxruntime",
        "openvino",
        "--precision",
        "fp32",
        "fp16",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "1 threads" in printed and "side by side" in printed
    assert "onnxruntime" in printed and "CPUExecutionProvider" in printed and "openvino" in printed
    assert printed.count("x fastest") == 1
    assert "not measured: torch fp16: " in printed and "fp16 convolutions need CUDA" in printed
    cost = Cost.model_validate(json.loads(out.read_text()))
    assert [r.runtime for r in cost.latency] == ["torch", "onnxruntime", "openvino"]


def test_cli_export_writes_a_checked_file(capsys, tmp_path):
    target = tmp_path / "model.onnx"
    model = create_model("liteseg_shufflenet", 5)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    argv = ["export", "liteseg_shufflenet", "--size", "61x83", "-o", str(target)]
    assert main([*argv, "--weights", str(weights), "--num-classes", "5"]) == 0
    assert "ok" in capsys.readouterr().out
    logits = deploy.onnx_logits(target, profile.random_images((61, 83)))
    assert logits.shape == (1, 5, 61, 83)
    assert main([*argv, "--weights", str(weights)]) == 2  # 19 classes do not fit
    assert "do not fit this model" in capsys.readouterr().err


def test_cli_export_takes_a_run_id_with_its_model_settings(capsys, tmp_path):
    from bench.config import load_suite, resolve_runs
    from bench.data import dataset_info

    config = next(
        run for run in resolve_runs(load_suite("smoke")) if run.model.name == "liteseg_shufflenet"
    )
    num_classes = dataset_info(config.data.dataset, config.data.synthetic).num_classes
    run_dir = tmp_path / "out" / "smoke" / "runs" / config.run_id()
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(config.model_dump_json())
    model = create_model("liteseg_shufflenet", num_classes, **config.model.overrides)
    torch.save(model.state_dict(), run_dir / "model_final.pt")
    target = tmp_path / "run.onnx"
    argv = ["export", "liteseg_shufflenet", "--size", "48x64", "-o", str(target)]
    assert main([*argv, "--weights", config.run_id(), "--out", str(tmp_path / "out")]) == 0
    assert deploy.onnx_logits(target, profile.random_images((48, 64))).shape[1] == num_classes
    wrong = ["export", "pp_liteseg_t", "--size", "48x64", "-o", str(target)]
    assert main([*wrong, "--weights", str(run_dir)]) == 2
    assert "the run trained 'liteseg_shufflenet', not 'pp_liteseg_t'" in capsys.readouterr().err
