"""Every package imports, and the model registry answers."""

import importlib

import pytest

import architectures


@pytest.mark.parametrize("package", ["architectures", "bench", "reports", "bench.cli"])
def test_package_imports(package):
    assert importlib.import_module(package).__doc__


def test_registry_lists_sorted_unique_names():
    names = architectures.list_models()
    assert names == sorted(set(names))


def test_unknown_model_error_lists_valid_names():
    with pytest.raises(architectures.UnknownModelError, match="valid names"):
        architectures.create_model("no_such_model", num_classes=3)
