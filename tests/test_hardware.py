"""The machine's features, read from the OS, and the precisions "auto" resolves to."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.config import ProfileSpec
from bench.hardware import Hardware, auto_precisions, cpu_flags, cpu_model, detect

AVX2_EPYC = frozenset({"avx2"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
SAPPHIRE_RAPIDS = ZEN4 | {"avx_vnni", "avx512_fp16", "amx_bf16", "amx_int8"}

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
"""


def _machine(features: frozenset[str]) -> Hardware:
    return Hardware(cpu="test CPU", features=features, cores=2)


def test_features_are_read_from_cpuinfo_flags():
    assert cpu_flags(CPUINFO) == {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                                  "amx_int8"}  # fmt: skip
    assert cpu_model(CPUINFO) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert cpu_flags("no flags here") == frozenset()


def test_this_machine_is_detected_as_the_os_reports_it():
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    hardware = detect()
    assert hardware.features == frozenset(flags) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16",
                                                    "avx512_vnni", "avx_vnni", "amx_int8",
                                                    "avx512_fp16"}  # fmt: skip
    assert hardware.cores >= 1 and hardware.cpu
    assert all(name in hardware.describe() for name in hardware.feature_names())


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (AVX2_EPYC, [("torch", "fp32"), ("openvino", "fp32"), ("openvino", "int8"),
                     ("onnxruntime", "fp32")]),
        (ZEN4, [("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"),
                ("openvino", "int8"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]),
        (SAPPHIRE_RAPIDS, [("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32"),
                           ("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime", "fp32"),
                           ("onnxruntime", "int8")]),
    ],
    ids=["avx2", "avx512-bf16-vnni", "amx"],
)  # fmt: skip
def test_auto_precisions_resolve_from_the_features(features, expected):
    spec = ProfileSpec(runtimes=("torch", "openvino", "onnxruntime"), precisions="auto")
    assert spec.combinations("cpu", _machine(features)) == expected


def test_a_runtime_list_of_its_own_wins_over_auto():
    spec = ProfileSpec(
        runtimes=("torch", "openvino"), precisions="auto", runtime_precisions={"openvino": ["fp32"]}
    )
    assert spec.combinations("cpu", _machine(ZEN4)) == [
        ("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32")
    ]  # fmt: skip


def test_auto_on_cuda_is_fp16_and_tensorrt_int8():
    assert auto_precisions("torch", "cuda", _machine(AVX2_EPYC)) == ("fp32", "fp16")
    assert auto_precisions("tensorrt", "cuda", _machine(AVX2_EPYC)) == ("fp32", "fp16", "int8")


def test_explicit_precisions_do_not_depend_on_the_machine():
    spec = ProfileSpec(runtimes=("torch",), precisions=("fp32", "bf16"))
    assert spec.combinations("cpu", _machine(AVX2_EPYC)) == [("torch", "fp32"), ("torch", "bf16")]


def test_env_prints_the_features_and_what_auto_measures(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert detect().describe() in out
    torch_line = next(line for line in out.splitlines() if line.startswith("  torch "))
    assert torch_line.split()[-1] == ("bf16" if detect().native_bf16 else "fp32")
    assert "tensorrt     does not run on cpu" in out


def test_plan_lists_the_pairs_the_latency_stage_will_time(tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text(AUTO_SUITE, encoding="utf-8")
    argv = ["plan", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu",
            "--data-root", str(tmp_path / "data")]  # fmt: skip
    assert main(argv) == 0
    pairs = ProfileSpec(runtimes=("torch", "openvino"), precisions="auto").combinations("cpu")
    listed = ", ".join(f"{runtime} {precision}" for runtime, precision in pairs)
    assert f'{listed} (precisions = "auto")' in capsys.readouterr().out


AUTO_SUITE = """
name = "auto"
[protocol.data]
dataset = "synthetic"
[protocol.profile]
runtimes = ["torch", "openvino"]
precisions = "auto"
[[variants]]
name = "only"
model = "liteseg_mobilenetv2"
"""
