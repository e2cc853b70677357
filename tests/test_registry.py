"""The registry: overrides derived from the variant literals, validated values, metadata lookup."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pytest

from architectures import (
    UnknownOverrideError,
    create_model,
    model_meta,
    model_override_types,
    model_overrides,
    register_model,
)
from architectures.meta import UnknownResultError
from architectures.pp_liteseg import PP_LITESEG_T, PPLiteSeg
from architectures.variants import VariantConfig


def test_overrides_and_their_types_come_from_the_literal():
    assert model_overrides("pp_liteseg_b") == {
        "sppm": True,
        "fusion": "spatial",
        "decoder_channels": (64, 96, 128),
        "head_channels": (64, 64, 64),
        "context_channels": 128,
    }
    assert model_overrides("liteseg_stdc1") == {
        "context": "daspp",
        "short_residual": True,
        "long_residual": True,
    }
    types = model_override_types("pp_liteseg_t")
    assert types["fusion"] == Literal["spatial", "channel", "add"]
    assert types["decoder_channels"] == tuple[int, int, int]
    assert types["sppm"] is bool


def test_lists_are_accepted_where_tuples_are_expected():
    model = create_model("pp_liteseg_t", num_classes=3, decoder_channels=[16, 32, 64])
    assert model.config.decoder_channels == (16, 32, 64)


def test_unknown_override_is_rejected_with_the_accepted_ones():
    with pytest.raises(UnknownOverrideError, match=r"\['fuson'\].*accepted: .*'fusion'"):
        create_model("pp_liteseg_t", num_classes=3, fuson="add")
    with pytest.raises(UnknownOverrideError, match="sppm"):
        create_model("liteseg_mobilenetv2", num_classes=3, sppm=False)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("pp_liteseg_t", {"fusion": "sum"}, "fusion='sum' is not valid; expected one of "),
        ("pp_liteseg_t", {"fusion": ["add"]}, "fusion=['add'] is not valid; expected one of "),
        (
            "pp_liteseg_t",
            {"decoder_channels": (32, 64)},
            "decoder_channels=(32, 64) is not valid; expected a list of 3 positive ints",
        ),
        (
            "pp_liteseg_t",
            {"head_channels": [32, 64, 64, 64]},
            "head_channels=(32, 64, 64, 64) is not valid; expected a list of 3 positive ints",
        ),
        ("pp_liteseg_t", {"decoder_channels": (32, 0, 128)}, "decoder_channels=(32, 0, 128)"),
        ("pp_liteseg_t", {"decoder_channels": 96}, "decoder_channels=96 is not valid"),
        ("pp_liteseg_t", {"context_channels": -1}, "expected a positive int"),
        ("pp_liteseg_t", {"sppm": "no"}, "sppm='no' is not valid; expected True or False"),
        ("liteseg_mobilenetv2", {"context": "dasp"}, "expected one of 'daspp', 'aspp'"),
        ("liteseg_mobilenetv2", {"short_residual": "false"}, "short_residual='false'"),
        ("liteseg_mobilenetv2", {"long_residual": 0}, "long_residual=0 is not valid"),
        ("liteseg_stdc1", {"num_classes": 0}, "num_classes=0 is not valid"),
        ("liteseg_stdc1", {"num_classes": True}, "num_classes=True is not valid"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_valid(name, overrides, message):
    arguments = {"num_classes": 3, **overrides}
    with pytest.raises(ValueError, match=re.escape(message)):
        create_model(name, **arguments)


def test_registration_checks_its_overrides_and_names():
    @dataclass(frozen=True)
    class Misnamed(VariantConfig):
        width: int = 8
        OVERRIDES = ("widht",)

    meta = model_meta("pp_liteseg_t")
    with pytest.raises(ValueError, match=r"OVERRIDES name no field of its config: \['widht'\]"):
        register_model("misnamed", PPLiteSeg, Misnamed(), meta)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("pp_liteseg_t", PPLiteSeg, PP_LITESEG_T, meta)


def test_unknown_paper_result_lists_the_valid_keys():
    meta = model_meta("liteseg_shufflenet")
    assert meta.result("cityscapes-test").miou == 65.17
    with pytest.raises(UnknownResultError, match=r"valid keys: cityscapes-test$"):
        meta.result("camvid-test-960x720")
    with pytest.raises(UnknownResultError, match="none"):
        model_meta("liteseg_stdc1").result("cityscapes-test")
