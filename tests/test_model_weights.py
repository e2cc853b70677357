"""bench.models.load_weights: our own state dicts, loaded strictly and safely, with errors
that say whether the file is unreadable or does not fit the model."""

from __future__ import annotations

import re

import pytest
import torch
from test_weights import _Exploit

from architectures import create_model
from bench.errors import ConfigError
from bench.models import load_weights


def test_weights_that_fit_load_exactly(tmp_path):
    source = create_model("liteseg_shufflenet", 5)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    target = create_model("liteseg_shufflenet", 5)
    load_weights(target, path)
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name


def test_weights_of_another_class_count_do_not_fit(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(create_model("liteseg_shufflenet", 5).state_dict(), path)
    with pytest.raises(ConfigError, match=f"weights {re.escape(str(path))} do not fit this model"):
        load_weights(create_model("liteseg_shufflenet", 19), path)


def test_weights_of_another_model_are_summarised(tmp_path):
    path = tmp_path / "weights.pt"
    source = create_model("pp_liteseg_t", 5).state_dict()
    torch.save(source, path)
    target = create_model("liteseg_shufflenet", 5)
    with pytest.raises(ConfigError) as error:
        load_weights(target, path)
    message = str(error.value)
    assert "do not fit this model" in message and "no key in common" in message
    assert f"{len(target.state_dict())} missing: " in message
    assert f"{len(source)} unexpected: " in message
    assert len(message) < 1500


def test_an_unreadable_file_names_the_path(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match=f"cannot read weights {re.escape(str(path))}"):
        load_weights(create_model("liteseg_shufflenet", 5), path)


def test_loading_never_executes_code_from_the_file(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Exploit(marker)}, path)
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_weights(create_model("liteseg_shufflenet", 5), path)
    assert not marker.exists()
