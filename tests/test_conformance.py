"""Protocol conformance: every suite matches its official recipe item by item, except for
differences it declares with a reason; an undeclared difference fails."""

from __future__ import annotations

import pytest

from bench.config import available_suites, load_suite, resolve_runs
from bench.conformance import available_recipes, load_recipe, undeclared, variant_checks
from bench.errors import ConfigError

PAPER_SUITES = ("camvid-paper", "cityscapes-paper", "voc-sbd", "camvid-quick")


@pytest.mark.parametrize("name", available_suites())
def test_every_suite_declares_every_difference_from_its_recipe(name):
    suite = load_suite(name)
    assert undeclared(variant_checks(suite, resolve_runs(suite))) == []


@pytest.mark.parametrize("name", PAPER_SUITES)
def test_paper_suites_check_every_variant_against_a_recipe(name):
    suite = load_suite(name)
    checks = variant_checks(suite, resolve_runs(suite))
    assert set(checks) == {variant.name for variant in suite.variants}
    for recipe, items in checks.values():
        assert len(items) == len(recipe.items) >= 20


@pytest.mark.parametrize(
    ("planted", "item"),
    [
        ({"optim.lr": 0.02}, "learning rate"),
        ({"augment.hue_jitter": 0.0}, "hue jitter"),
        ({"train.sync_bn": False}, "batch norm across GPUs"),
        ({"eval.flip": True}, "flip evaluation"),
    ],
)
def test_a_planted_deviation_is_caught(planted, item):
    suite = load_suite("cityscapes-paper")
    problems = undeclared(variant_checks(suite, resolve_runs(suite, planted)))
    assert problems, planted
    assert all(f": {item} (official" in problem for problem in problems)
    assert any(problem.startswith("PP-LiteSeg-T1: ") for problem in problems)


def test_the_official_paper_recipes_are_met_where_nothing_is_declared():
    suite = load_suite("cityscapes-paper")
    recipe, items = variant_checks(suite, resolve_runs(suite))["PP-LiteSeg-T1"]
    assert recipe.name == "paddleseg-cityscapes"
    assert {check.status for check in items} == {"equal"}
    t2 = dict((c.item, c) for c in variant_checks(suite, resolve_runs(suite))["PP-LiteSeg-T2"][1])
    assert t2["evaluation scale"].ours == 0.75 and t2["evaluation scale"].status == "equal"


def test_a_recipe_extends_another_by_replacing_items():
    base, darknet = load_recipe("liteseg-cityscapes"), load_recipe("liteseg-cityscapes-darknet")
    assert [item.item for item in base.items] == [item.item for item in darknet.items]
    lr = {item.item: item.expected for item in darknet.items}["learning rate"]
    assert (lr, {item.item: item.expected for item in base.items}["learning rate"]) == (1e-8, 1e-7)


def test_every_recipe_item_names_its_source():
    for name in available_recipes():
        recipe = load_recipe(name)
        assert recipe.repository and recipe.revision
        assert all(item.source for item in recipe.items)


def test_a_deviation_for_no_item_is_an_error(tmp_path):
    suite = load_suite("camvid-quick")
    broken = suite.model_copy(update={"deviations": {**suite.deviations, "lerning rate": "typo"}})
    with pytest.raises(ConfigError, match="'lerning rate'"):
        variant_checks(broken, resolve_runs(suite))
