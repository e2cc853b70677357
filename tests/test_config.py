"""Config resolution: defaults < suite protocol < variant set < --set; validation messages."""

import pytest

from architectures import model_meta
from bench.config import (
    available_suites,
    load_suite,
    parse_assignments,
    resolve_runs,
)
from bench.errors import ConfigError

SUITE = """
name = "demo"
seeds = [0, 1]

[protocol.data]
dataset = "synthetic"

[protocol.train]
iters = 50
batch_size = 4

[[variants]]
name = "base"
model = "pp_liteseg_t"

[[variants]]
name = "no-sppm"
model = "pp_liteseg_t"
overrides = { sppm = false }
reference = "base"
group = "ablation"
seeds = [3]
set = { "train.iters" = 70, "optim.lr" = 0.02 }
"""


def _write(tmp_path, text, name="demo.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_precedence_defaults_file_variant_cli(tmp_path):
    suite = load_suite(_write(tmp_path, SUITE))
    runs = resolve_runs(suite, {"train.batch_size": 2})
    assert [(r.variant, r.seed) for r in runs] == [("base", 0), ("base", 1), ("no-sppm", 3)]
    base, _, ablation = runs
    assert base.train.iters == 50 and ablation.train.iters == 70  # file < variant set
    assert base.optim.lr == 0.01 and ablation.optim.lr == 0.02  # default < variant set
    assert base.train.batch_size == ablation.train.batch_size == 2  # --set wins
    assert ablation.model.overrides == {"sppm": False}


def test_run_id_depends_on_outcome_relevant_fields_only(tmp_path):
    suite = load_suite(_write(tmp_path, SUITE))
    first = resolve_runs(suite)[0]
    assert first.run_id() == resolve_runs(suite)[0].run_id()
    assert first.run_id() != resolve_runs(suite, {"train.iters": 51})[0].run_id()
    renamed = first.model_copy(update={"variant": "renamed", "suite": "other"})
    assert renamed.run_id() == first.run_id()
    reprofiled = resolve_runs(suite, {"profile.repeats": 99})[0]
    assert reprofiled.run_id() == first.run_id()


def test_unknown_key_is_reported_with_file_and_dotted_key(tmp_path):
    path = _write(tmp_path, SUITE.replace("iters = 50", "iterations = 50"))
    with pytest.raises(ConfigError) as error:
        load_suite(path)
    assert str(path) in str(error.value) and "protocol.train.iterations" in str(error.value)
    assert "unknown key" in str(error.value)


def test_wrong_type_names_the_key(tmp_path):
    path = _write(tmp_path, SUITE.replace("batch_size = 4", 'batch_size = "four"'))
    with pytest.raises(ConfigError, match=r"protocol\.train\.batch_size"):
        load_suite(path)


def test_cli_set_with_unknown_leaf_is_rejected(tmp_path):
    suite = load_suite(_write(tmp_path, SUITE))
    with pytest.raises(ConfigError, match=r"train\.iterz"):
        resolve_runs(suite, {"train.iterz": 3})


def test_cli_set_cannot_descend_into_a_value(tmp_path):
    suite = load_suite(_write(tmp_path, SUITE))
    with pytest.raises(ConfigError, match="is a value, not a section"):
        resolve_runs(suite, {"train.iters.x": 3})


def test_duplicate_variant_names_and_bad_reference(tmp_path):
    duplicated = SUITE.replace('name = "no-sppm"', 'name = "base"')
    with pytest.raises(ConfigError, match="repeated"):
        load_suite(_write(tmp_path, duplicated))
    dangling = SUITE.replace('reference = "base"', 'reference = "nope"')
    with pytest.raises(ConfigError, match="reference 'nope'"):
        load_suite(_write(tmp_path, dangling))


def test_invalid_toml_and_unknown_suite(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(_write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="unknown suite 'no-such-suite'"):
        load_suite("no-such-suite")


def test_parse_assignments_reads_toml_literals():
    parsed = parse_assignments(["train.iters=10", "augment.crop_size=[64, 64]", "x=plain"])
    assert parsed == {"train.iters": 10, "augment.crop_size": [64, 64], "x": "plain"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["train.iters"])


def test_preset_applies_between_protocol_and_variant_set(tmp_path):
    text = SUITE.replace(
        '[[variants]]\nname = "base"',
        '[presets.slow]\n"train.iters" = 500\n"optim.lr" = 0.5\n\n'
        '[[variants]]\nname = "base"\npreset = "slow"',
        1,
    ).replace(
        'set = { "train.iters" = 70, "optim.lr" = 0.02 }',
        'preset = "slow"\nset = { "optim.lr" = 0.02 }',
    )
    runs = resolve_runs(load_suite(_write(tmp_path, text)))
    assert (runs[0].train.iters, runs[0].optim.lr) == (500, 0.5)
    assert (runs[-1].train.iters, runs[-1].optim.lr) == (500, 0.02)
    missing = text.replace('preset = "slow"\nset', 'preset = "fast"\nset')
    with pytest.raises(ConfigError, match="preset 'fast' is not defined"):
        load_suite(_write(tmp_path, missing))


def test_paper_key_must_name_a_result_of_the_model(tmp_path):
    text = SUITE.replace('model = "pp_liteseg_t"\n', 'model = "pp_liteseg_t"\npaper = "KEY"\n', 1)
    suite = load_suite(_write(tmp_path, text.replace("KEY", "camvid-test-960x720")))
    assert suite.variants[0].paper == "camvid-test-960x720"
    path = _write(tmp_path, text.replace("KEY", "camvid-val"))
    with pytest.raises(ConfigError) as error:
        load_suite(path)
    message = str(error.value)
    assert str(path) in message and "variant 'base': paper = 'camvid-val'" in message
    assert "valid keys: cityscapes-val-512x1024, " in message and "camvid-test-960x720" in message


def test_every_shipped_suite_loads_with_its_paper_keys():
    for name in available_suites():
        for variant in load_suite(name).variants:
            if variant.paper is not None:
                assert model_meta(variant.model).result(variant.paper).miou > 0
