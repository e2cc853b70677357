"""The model contract, checked for every registered model, every ablation switch and encoder.

DESIGN.md's call contract (any H, W; eval: logits at input size; train: a tuple, main
first), gradients into every trainable parameter, batch-norm folding, parameter counts and
GMACs equal to the model's metadata, creation reproducible from a seed, TorchScript tracing
and ``torch.compile``. A model registered with :func:`architectures.register_model` is covered
without touching this file, as :class:`TestToyModel` shows: its module and metadata are
declared here and registered nowhere else. Family tests keep only what is family-specific.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from architectures import _registry, create_model, list_models, model_meta, register_model
from architectures._registry import model_entry
from architectures.backbones import ENCODERS
from architectures.layers import ConvBNAct
from architectures.meta import Gmacs, ModelMeta, Paper, ParamCounts
from architectures.variants import VariantConfig, override_defaults, override_types
from bench import cli
from bench.profile import conv_gmacs, count_parameters, fold_batchnorm, torch_flops

NUM_CLASSES = 19  # the metadata counts parameters at 19 classes
EVAL_SIZES = ((64, 96), (65, 97))  # a multiple of 32 and an odd size
TRAIN_SIZE = (65, 97)


def switch_sets(config: VariantConfig) -> list[dict[str, Any]]:
    """The defaults, then every bool or ``Literal`` override set alone to each other value."""
    defaults = override_defaults(config)
    sets: list[dict[str, Any]] = [{}]
    for key, annotation in override_types(config).items():
        if annotation is bool:
            choices: tuple[Any, ...] = (True, False)
        elif typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
        else:
            continue
        sets += [{key: value} for value in choices if value != defaults[key]]
    return sets


def _case_id(name: str, overrides: dict[str, Any]) -> str:
    return "-".join([name, *(f"{key}={value}" for key, value in overrides.items())])


def cases(name: str, config: VariantConfig) -> list[Any]:
    return [
        pytest.param((name, overrides), id=_case_id(name, overrides))
        for overrides in switch_sets(config)
    ]


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial statistics and affine weights (a fold then matters)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                count = module.num_features
                module.running_mean.copy_(torch.rand(count, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(count, generator=generator) - 0.5)
    return model


def _images(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def _main_output_with_running_stats(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The first training output, with every batch norm normalising by its running statistics."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    try:
        with torch.no_grad():
            return model(images)[0]
    finally:
        model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run these tiny forwards on one thread: on inputs this small, intra-op threads only add
    synchronisation, which makes them several times slower on a busy shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="class")
def model(case: tuple[str, dict[str, Any]]) -> nn.Module:
    """The model of the class's ``case`` (name, overrides), built once per case."""
    name, overrides = case
    torch.manual_seed(0)
    return randomize_batchnorm(create_model(name, NUM_CLASSES, **overrides))


class SwitchContract:
    """Checks of one model built with one set of switches (class fixture ``case``)."""

    def test_eval_returns_logits_at_input_size(self, model):
        model.eval()
        for size in EVAL_SIZES:
            with torch.no_grad():
                logits = model(_images(1, size))
            assert isinstance(logits, torch.Tensor)
            assert logits.shape == (1, NUM_CLASSES, *size)
            assert torch.isfinite(logits).all()

    def test_train_returns_a_tuple_with_the_main_logits_first(self, model):
        images = _images(2, TRAIN_SIZE)
        model.train()
        with torch.no_grad():
            outputs = model(images)
        assert isinstance(outputs, tuple) and len(outputs) >= 1
        assert all(output.shape == (2, NUM_CLASSES, *TRAIN_SIZE) for output in outputs)
        model.eval()
        with torch.no_grad():
            expected = model(images)
        torch.testing.assert_close(_main_output_with_running_stats(model, images), expected)

    def test_every_trainable_parameter_gets_a_gradient(self, model):
        model.train()
        model.zero_grad(set_to_none=True)
        outputs = model(_images(2, EVAL_SIZES[0]))
        sum(output.square().mean() for output in outputs).backward()
        without = [
            key
            for key, parameter in model.named_parameters()
            if parameter.requires_grad and (parameter.grad is None or not parameter.grad.any())
        ]
        assert without == []
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad(set_to_none=True)

    def test_batchnorm_folding_keeps_the_output(self, model):
        model.eval()
        folded = fold_batchnorm(model, EVAL_SIZES[0])
        norms = [module for module in folded.modules() if isinstance(module, nn.BatchNorm2d)]
        assert len(norms) < sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        images = _images(1, EVAL_SIZES[1])
        with torch.no_grad():
            expected, actual = model(images), folded(images)
        assert (actual - expected).abs().max() <= 1e-4 * expected.std()


class ModelContract:
    """Checks of one model with its default switches against its metadata (fixture ``name``)."""

    def test_parameter_counts_equal_the_metadata(self, name):
        params = model_meta(name).params
        counts = count_parameters(create_model(name, params.num_classes), EVAL_SIZES[0])
        assert (counts.trainable, counts.inference) == (params.ours, params.inference)
        assert counts.total == counts.trainable

    def test_creation_is_reproducible_from_a_seed(self, name):
        def state(seed: int) -> dict[str, torch.Tensor]:
            torch.manual_seed(seed)
            return create_model(name, NUM_CLASSES).state_dict()

        first, again, other = state(3), state(3), state(4)
        assert list(first) == list(again)
        for key, value in first.items():
            torch.testing.assert_close(value, again[key], rtol=0, atol=0, msg=key)
        assert any(not torch.equal(value, other[key]) for key, value in first.items())

    def test_imagenet_weights_are_those_of_the_model_encoder(self, name):
        encoder = getattr(model_entry(name).config, "encoder", None)
        expected = ENCODERS[encoder].imagenet if encoder in ENCODERS else None
        assert model_meta(name).imagenet == expected

    @pytest.mark.slow
    def test_conv_gmacs_equal_the_metadata(self, name):
        gmacs = model_meta(name).gmacs
        counted = conv_gmacs(torch_flops(create_model(name, NUM_CLASSES), gmacs.input_size))
        assert counted == pytest.approx(gmacs.value, abs=5e-4)

    @pytest.mark.slow
    @pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
    def test_torchscript_trace_and_torch_compile_match_eager(self, name):
        torch.manual_seed(0)
        model = randomize_batchnorm(create_model(name, NUM_CLASSES)).eval()
        images = _images(1, EVAL_SIZES[1])
        torch._dynamo.reset()
        with torch.no_grad():
            expected = model(images)
            traced = torch.jit.trace(model, images, check_trace=False)
            compiled = torch.compile(model, backend="eager", fullgraph=True)
            torch.testing.assert_close(traced(images), expected)
            torch.testing.assert_close(compiled(images), expected)


ALL_CASES = [case for name in list_models() for case in cases(name, model_entry(name).config)]


class TestRegisteredSwitches(SwitchContract):
    @pytest.fixture(scope="class", params=ALL_CASES)
    @classmethod
    def case(cls, request):
        return request.param


class TestRegisteredModels(ModelContract):
    @pytest.fixture(params=list_models())
    def name(self, request):
        return request.param


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_encoder_returns_declared_features_by_stride(encoder):
    """Every encoder's forward returns exactly its declared strides and channels."""
    model = ENCODERS[encoder].build().eval()
    height, width = EVAL_SIZES[1]
    with torch.no_grad():
        features = model(_images(1, (height, width)))
    assert list(features) == list(model.out_channels) == sorted(model.out_channels)
    assert list(model.stage_ends) == list(model.out_channels)
    for stride, feature in features.items():
        assert feature.shape[1] == model.out_channels[stride], stride
        rows, columns = feature.shape[2:]
        assert height // stride <= rows <= math.ceil(height / stride), stride
        assert width // stride <= columns <= math.ceil(width / stride), stride


def test_decoders_reject_a_stride_their_encoder_lacks():
    encoder = ENCODERS["darknet19"].build()
    assert encoder.channels_at(16, 4) == [1024, 128]
    with pytest.raises(ValueError, match=r"DarkNet19 has no feature at stride\(s\) \[32\]"):
        encoder.channels_at(8, 16, 32)


# A model added with nothing but its module, its variant literal and its metadata.


@dataclass(frozen=True)
class ToyConfig(VariantConfig):
    """A stride-2 ConvBNReLU, an optional residual 3x3, a main and an auxiliary 1x1 head."""

    width: int = 8
    residual: bool = True
    upsample: Literal["bilinear", "nearest"] = "bilinear"

    OVERRIDES = ("width", "residual", "upsample")


class ToyNet(nn.Module):
    def __init__(self, config: ToyConfig, *, num_classes: int) -> None:
        super().__init__()
        self.config = config
        self.stem = ConvBNAct(3, config.width, 3, stride=2)
        if config.residual:
            self.mix = ConvBNAct(config.width, config.width, 3)
        self.head = nn.Conv2d(config.width, num_classes, 1)
        self.aux = nn.Conv2d(config.width, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        size, mode = images.shape[-2:], self.config.upsample
        x = self.stem(images)
        if self.config.residual:
            x = x + self.mix(x)
        logits = F.interpolate(self.head(x), size=size, mode=mode)
        if not self.training:
            return logits
        return logits, F.interpolate(self.aux(x), size=size, mode=mode)


TOY = ToyConfig()
# stem 3*8*9 + BN 16 = 232; mix 8*8*9 + 16 = 592; head and aux 8*19 + 19 = 171 each.
TOY_META = ModelMeta(
    display_name="Toy",
    description="a two-conv network proving the contract covers new models",
    paper=Paper(title="Toy", citation="this test", arxiv="-", code="-"),
    params=ParamCounts(train=232 + 592 + 2 * 171, inference=232 + 592 + 171, official=False),
    # at 512x1024 the convs run on 256x512: 131,072 * (3*8*9 + 8*8*9 + 8*19) = 123,731,968
    gmacs=Gmacs(0.124),
)


@pytest.fixture(scope="module")
def toy_name():
    """``toy_net`` registered for this module only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_registry, "_MODELS", dict(_registry._MODELS))
        register_model("toy_net", ToyNet, TOY, TOY_META)
        yield "toy_net"


class TestToyModel(SwitchContract, ModelContract):
    @pytest.fixture(scope="class", params=cases("toy_net", TOY))
    @classmethod
    def case(cls, request, toy_name):
        return request.param

    @pytest.fixture
    def name(self, toy_name):
        return toy_name

    def test_is_listed_by_the_cli(self, name, capsys):
        assert name in list_models()
        assert cli.main(["list"]) == 0
        assert f"  {name} " in capsys.readouterr().out
