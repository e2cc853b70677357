"""bench.profile: counters on hand-computed networks, parameter use, BN folding, latency, CLI."""

from __future__ import annotations

import json
import logging
import time
import warnings

import pytest
import torch
from torch import nn

from architectures import create_model, model_meta
from bench import profile
from bench.cli import main
from bench.config import ProfileSpec
from bench.results import Cost


class ConvLinear(nn.Module):
    """conv 3->4 (3x3, pad 1, no bias) on 8x8, sigmoid, flatten, linear 256->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sigmoid(self.conv(x)).flatten(1))


# Multiply-adds by hand: every output element of the conv is a 3x3x3 dot product,
# every output of the linear layer a 256-long one (biases are additions, not counted).
CONV_MACS = (4 * 8 * 8) * (3 * 3 * 3)
LINEAR_MACS = 10 * (4 * 8 * 8)


def test_fvcore_counts_one_per_multiply_add_and_lists_skipped_ops(caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        record = profile.fvcore_flops(ConvLinear(), (8, 8))
    assert record.gflops * 1e9 == pytest.approx(CONV_MACS + LINEAR_MACS)
    assert record.by_operator["conv"] * 1e9 == pytest.approx(CONV_MACS)
    assert record.counter == profile.FVCORE
    assert "1 per multiply-add" in record.convention
    assert record.input_size == (8, 8)
    assert record.unsupported_ops == {"aten::sigmoid": 1}
    assert not caught
    assert not [r for r in caplog.records if r.name.startswith("fvcore")]


def test_torch_counter_counts_two_per_multiply_add():
    record = profile.torch_flops(ConvLinear(), (8, 8))
    assert record.gflops * 1e9 == pytest.approx(2 * (CONV_MACS + LINEAR_MACS))
    assert record.counter == profile.TORCH
    assert "2 per multiply-add" in record.convention
    assert profile.conv_gmacs(record) * 1e9 == pytest.approx(CONV_MACS)


def test_flop_count_scales_with_batch_and_leaves_training_flag():
    model = ConvLinear().train()
    single, double = profile.torch_flops(model, (8, 8)), profile.torch_flops(model, (8, 8), 2)
    assert double.gflops == pytest.approx(2 * single.gflops)
    assert model.training


def test_both_counters_agree_on_convolutions_of_a_real_model():
    model = create_model("pp_liteseg_t", 19)
    fvcore, torch_counter = profile.count_flops(model, (128, 256))
    assert profile.conv_gmacs(fvcore) == pytest.approx(profile.conv_gmacs(torch_counter))
    assert fvcore.gflops > profile.conv_gmacs(fvcore)  # batch norm and upsampling on top
    assert "aten::sigmoid" in fvcore.unsupported_ops


class WithAuxHead(nn.Module):
    """A main branch and a head that runs only in training (like PP-LiteSeg's aux heads)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)
        self.aux = nn.Conv2d(8, 2, 1)
        self.frozen = nn.Conv2d(2, 2, 1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        logits = self.frozen(self.head(features))
        return (logits, self.aux(features)) if self.training else logits


def test_inference_parameters_exclude_training_only_head():
    model = WithAuxHead().train()
    counts = profile.count_parameters(model, (16, 16))
    aux = 8 * 2 + 2
    assert counts.total == 3 * 8 * 9 + 8 + 8 * 2 + 2 + aux + 2 * 2 + 2
    assert counts.inference == counts.total - aux
    assert counts.trainable == counts.total - (2 * 2 + 2)
    assert counts.per_module == {"body": 224, "head": 18, "aux": 18, "frozen": 6}
    assert model.training


def test_shared_parameters_count_once():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1))
    model[1].weight = model[0].weight
    counts = profile.count_parameters(model, (4, 4))
    assert counts.total == counts.inference == 9 + 3 + 3


def test_pp_liteseg_t_inference_parameters_match_the_official_counts():
    counts = profile.count_parameters(create_model("pp_liteseg_t", 19))
    official = model_meta("pp_liteseg_t").params
    assert (counts.total, counts.inference) == (official.train, official.inference)
    assert sum(counts.per_module.values()) == counts.total


def _randomize_norms(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.rand(count, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(count, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(count, generator=generator) - 0.5)
    return model.eval()


class Residual(nn.Module):
    """A conv whose raw output is also added back: its norm must NOT be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(8)
        self.residual = Residual()
        self.pre_norm = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.depthwise_bn(self.depthwise(self.stem(x))))
        return self.residual(self.pre_norm(x))


def test_fold_batchnorm_folds_only_safe_pairs_and_keeps_outputs():
    model = _randomize_norms(Toy())
    assert profile.conv_bn_pairs(model, (16, 16)) == [
        ("depthwise", "depthwise_bn"),
        ("stem.0", "stem.1"),
    ]
    folded = profile.fold_batchnorm(model, (16, 16))
    images = torch.randn(2, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(folded(images), model(images), rtol=1e-5, atol=1e-5)
    assert isinstance(folded.stem[1], nn.Identity)
    assert isinstance(folded.residual.bn, nn.BatchNorm2d)
    assert isinstance(folded.pre_norm, nn.BatchNorm2d)
    assert isinstance(model.stem[1], nn.BatchNorm2d)  # the original is untouched


def test_fold_batchnorm_on_a_real_model():
    model = _randomize_norms(create_model("pp_liteseg_t", 19))
    folded = profile.fold_batchnorm(model)
    norms = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    # only the two training-only heads keep theirs: they never run in eval mode
    assert len(norms) == 2
    images = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected, actual = model(images), folded(images)
    assert (actual - expected).abs().max() <= 1e-4 * expected.std()


class Sleeper(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.conv(x)


def test_latency_record_carries_settings_and_restores_threads():
    before = torch.get_num_threads()
    record = profile.measure_latency(
        Sleeper(0.01),
        (16, 24),
        options=profile.InferenceOptions(channels_last=True, fold_bn=True),
        batch=2,
        warmup=1,
        repeats=7,
        threads=1,
    )
    assert torch.get_num_threads() == before
    assert (record.device, record.precision, record.input_size, record.batch) == (
        "cpu",
        "fp32",
        (16, 24),
        2,
    )
    assert (record.threads, record.warmup, record.repeats) == (1, 1, 7)
    assert record.channels_last and record.bn_folded
    assert not record.cuda_graphs and record.backend == "eager"
    assert (record.runtime, record.runtime_version) == ("torch", torch.__version__)
    assert record.timing == "end_to_end" and record.session
    assert record.device_name
    assert 10 <= record.median_ms < 500
    assert record.iqr_ms >= 0
    assert record.fps == pytest.approx(2 / (record.median_ms / 1e3))


CALLS: list[str] = []  # module-level, so the deep copies timed by the profiler share it


class CallLogger(nn.Module):
    """Sleeps ``seconds`` per call and logs its name in ``CALLS``."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__()
        self.name, self.seconds = name, seconds
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append(self.name)
        time.sleep(self.seconds)
        return self.conv(x)


def test_side_by_side_latencies_interleave_rounds(monkeypatch):
    monkeypatch.setattr(profile.latency, "MIN_WARMUP_SECONDS", 0.0)
    CALLS.clear()
    models = {"fast": CallLogger("fast", 0.005), "slow": CallLogger("slow", 0.02)}
    records = profile.measure_latencies(models, (8, 8), warmup=1, repeats=5, rounds=3)
    # one preparing call each, then 3 rounds of (1 warm-up + ceil(5 / 3) timed) calls each
    assert CALLS == ["fast", "slow"] + (["fast"] * 3 + ["slow"] * 3) * 3
    assert {key: (r.repeats, r.rounds, r.warmup) for key, r in records.items()} == {
        "fast": (6, 3, 1),
        "slow": (6, 3, 1),
    }
    assert records["slow"].median_ms > 2 * records["fast"].median_ms
    with pytest.raises(profile.latency.ConfigError, match="rounds must be at least 1"):
        profile.measure_latencies(models, (8, 8), rounds=0)


def test_threads_are_restored_when_the_model_fails():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        profile.measure_latency(Broken(), (8, 8), threads=before + 1, repeats=1)
    assert torch.get_num_threads() == before


def test_summary_is_median_and_interquartile_range():
    assert profile.latency.summarize([5.0, 1.0, 3.0, 2.0, 4.0]) == (3.0, 2.0)
    assert profile.latency.summarize([7.0]) == (7.0, 0.0)


def test_torchscript_backend_matches_eager():
    model = _randomize_norms(Toy())
    images = torch.randn(1, 3, 16, 16)
    options = profile.InferenceOptions(backend="torchscript", channels_last=True)
    run = profile.prepare_inference(model, options, "cpu", images)
    with torch.inference_mode():
        torch.testing.assert_close(run(images), model(images), rtol=1e-4, atol=1e-4)
    record = profile.measure_latency(model, (16, 16), options=options, warmup=0, repeats=2)
    assert record.backend == "torchscript"


def test_bad_settings_are_user_errors(monkeypatch):
    model = Sleeper(0)
    with pytest.raises(profile.latency.ConfigError, match="repeats must be at least 1"):
        profile.measure_latency(model, (8, 8), repeats=0)
    with pytest.raises(profile.latency.ConfigError, match="CUDA graphs need"):
        profile.measure_latency(model, (8, 8), options=profile.InferenceOptions(cuda_graphs=True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(profile.DeviceUnavailableError, match="CUDA is not available"):
        profile.measure_latency(model, (8, 8), device="cuda")


def test_profile_model_returns_cost_for_a_spec():
    spec = ProfileSpec(flops_sizes=((16, 16), (24, 32)), latency_size=(8, 8), warmup=0, repeats=3)
    model = Toy().train()
    cost = profile.profile_model(model, spec)
    assert [(f.counter, f.input_size) for f in cost.flops] == [
        (profile.FVCORE, (16, 16)),
        (profile.TORCH, (16, 16)),
        (profile.FVCORE, (24, 32)),
        (profile.TORCH, (24, 32)),
    ]
    assert [(lat.input_size, lat.repeats) for lat in cost.latency] == [((8, 8), 3)]
    assert cost.params.total == cost.params.inference == sum(p.numel() for p in model.parameters())
    assert model.training


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("options", "precision"),
    [
        (profile.InferenceOptions(), "fp32"),
        (profile.InferenceOptions(channels_last=True, fold_bn=True), "fp16"),
        (profile.InferenceOptions(cuda_graphs=True), "bf16"),
        (profile.InferenceOptions(backend="inductor", cuda_graphs=True), "fp16"),
    ],
    ids=["fp32", "fp16-cl-fold", "bf16-graphs", "inductor-graphs"],
)
def test_cuda_latency(options, precision):
    model = create_model("pp_liteseg_t", 19)
    record = profile.measure_latency(
        model,
        (512, 1024),
        device="cuda",
        options=options,
        precision=precision,
        warmup=5,
        repeats=20,
    )
    assert record.device == "cuda" and record.threads is None and record.timing == "compute"
    assert record.precision == precision and record.cuda_graphs == options.cuda_graphs
    assert 0 < record.median_ms < 1000


# --- CLI -----------------------------------------------------------------------------


def test_cli_profile_prints_all_three_tables(capsys, tmp_path):
    out = tmp_path / "cost.json"
    args = ["profile", "pp_liteseg_t", "--size", "64x128", "--repeats", "2", "--warmup", "0"]
    code = main([*args, "--threads", "1", "--fold-bn", "--set", "sppm=false", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "pp_liteseg_t (num_classes=19, sppm=False)" in printed
    for text in ("inference (eval forward)", "fvcore", "torch.utils.flop_counter", "median ms"):
        assert text in printed
    assert "1 threads" in printed and "bn folded" in printed and "torch" in printed
    cost = Cost.model_validate(json.loads(out.read_text()))
    assert cost.latency[0].threads == 1 and cost.latency[0].bn_folded


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "no_such_model"], "unknown model 'no_such_model'"),
        (["profile", "pp_liteseg_t", "--size", "512by1024"], "--size '512by1024'"),
        (["profile", "pp_liteseg_t", "--size", "0x64"], "HEIGHTxWIDTH"),
        (["profile", "pp_liteseg_t", "--set", "no_such_switch=1"], "no_such_switch"),
        (["profile", "pp_liteseg_t", "--device", "cuda"], "CUDA is not available"),
        (["profile", "pp_liteseg_t", "--device", "tpu"], "unknown device 'tpu'"),
        (["profile", "pp_liteseg_t", "--compile", "--backend", "torchscript"], "conflicts"),
        (["profile", "pp_liteseg_t", "--repeats", "0"], "repeats must be at least 1"),
        (["profile", "pp_liteseg_t", "--threads", "0"], "threads must be at least 1"),
        (["profile", "pp_liteseg_t", "--cuda-graphs"], "CUDA graphs need --device cuda"),
    ],
)
def test_cli_profile_errors_exit_2_without_traceback(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error: ") and "Traceback" not in err
