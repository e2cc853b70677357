"""Protocol conformance: every item of an official recipe against what a suite resolves to.

An official recipe (``experiments/recipes/NAME.toml``) lists protocol items, each with
the official value, where it is written (repository + path, and the line or key), and
the config key that holds our value. A suite variant names its recipe (``recipe``) and
declares every deliberate difference with its reason (``deviations``, keyed by item).
:func:`check_variant` compares the variant's resolved config with each item;
:func:`undeclared` lists the items that differ without a declared reason, which the
tests require to be none for every suite. The report shows the whole comparison.

An item's ``value`` is the official setting expressed in our config's terms (e.g. the
official crop 1024x512 as ``[512, 1024]``, LiteSeg's summed-loss learning rate
translated to our pixel-mean loss); ``official`` is how the official source states it.
Items our code cannot express as a key (``key`` absent) always need a declared reason.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.config import EXPERIMENTS_DIR, RunConfig, SuiteSpec, format_validation_error
from bench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

RECIPES_DIR = EXPERIMENTS_DIR / "recipes"

ItemStatus = Literal["equal", "deviation", "undeclared"]


class ProtocolItem(BaseModel):
    """One item of an official recipe.

    Args:
        item: short name, the key of deviations (e.g. ``"iterations"``).
        official: the official setting as its source states it.
        source: file (and key or line) in the official repository.
        key: dotted key of :class:`~bench.config.RunConfig` holding our value, or a
            variant field as ``variant.FIELD``; absent when ours is fixed by the code.
        value: the official setting in our config's terms (default: ``official``).
        ours: what our code does, for items without a key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: str = Field(min_length=1)
    official: Any
    source: str = Field(min_length=1)
    key: str | None = None
    value: Any = None
    ours: str | None = None

    @model_validator(mode="after")
    def _ours_or_key(self) -> ProtocolItem:
        if self.key is None and not self.ours:
            raise ValueError(f"item {self.item!r}: give a `key` or say what we do in `ours`")
        return self

    @property
    def expected(self) -> Any:
        return self.official if self.value is None else self.value


class Recipe(BaseModel):
    """An official training and evaluation recipe, item by item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str
    repository: str = Field(description="the official code, e.g. PaddlePaddle/PaddleSeg")
    revision: str = Field(description="the version the items were read from")
    items: tuple[ProtocolItem, ...]

    @model_validator(mode="after")
    def _unique_items(self) -> Recipe:
        names = [item.item for item in self.items]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"items must be unique; repeated: {repeated}")
        return self


def available_recipes() -> list[str]:
    """Names of the recipes in ``experiments/recipes``."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.toml"))


def load_recipe(name: str) -> Recipe:
    """Read ``experiments/recipes/NAME.toml``; errors name the file and the key.

    A recipe may ``extends`` another: it takes the other's items, its own replacing those
    of the same name (PP-LiteSeg-T2's recipe is T1's with another evaluation scale).
    """
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown recipe {name!r}; available: {', '.join(available_recipes()) or 'none'}"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    base = raw.pop("extends", None)
    if base is not None:
        own = {item.get("item"): item for item in raw.get("items", [])}
        inherited = [item.model_dump() for item in load_recipe(base).items]
        merged = [own.pop(item["item"], item) for item in inherited]
        raw["items"] = merged + list(own.values())
    try:
        return Recipe.model_validate({"name": name, **raw})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path))) from None


@dataclass(frozen=True)
class ItemCheck:
    """One row of the "Protocol vs the paper" table."""

    item: str
    official: Any
    ours: Any
    source: str
    status: ItemStatus
    reason: str | None


def _resolved(config: RunConfig, variant_fields: Mapping[str, Any], key: str) -> Any:
    if key.startswith("variant."):
        return variant_fields[key.removeprefix("variant.")]
    node: Any = config.model_dump(mode="json")
    for part in key.split("."):
        node = node[part]
    return node


def _same(ours: Any, official: Any) -> bool:
    if isinstance(ours, (list, tuple)) and isinstance(official, (list, tuple)):
        return len(ours) == len(official) and all(map(_same, ours, official))
    if isinstance(ours, bool) or isinstance(official, bool):
        return ours is official
    if isinstance(ours, (int, float)) and isinstance(official, (int, float)):
        return math.isclose(ours, official, rel_tol=1e-9, abs_tol=0.0)
    return ours == official


def check_variant(
    recipe: Recipe,
    config: RunConfig,
    deviations: Mapping[str, str],
    variant_fields: Mapping[str, Any] | None = None,
) -> list[ItemCheck]:
    """Compare one run's resolved config with every item of ``recipe``."""
    checks = []
    for item in recipe.items:
        reason = deviations.get(item.item)
        if item.key is None:
            ours, equal = item.ours, False
        else:
            try:
                ours = _resolved(config, variant_fields or {}, item.key)
            except KeyError:
                raise ConfigError(
                    f"recipe {recipe.name!r}: item {item.item!r} names key {item.key!r}, "
                    "which the run config does not have"
                ) from None
            equal = _same(ours, item.expected)
        status: ItemStatus = "equal" if equal else "deviation" if reason else "undeclared"
        checks.append(ItemCheck(item.item, item.official, ours, item.source, status, reason))
    return checks


def variant_checks(
    suite: SuiteSpec, configs: Sequence[RunConfig]
) -> dict[str, tuple[Recipe, list[ItemCheck]]]:
    """Variant name -> its recipe and item checks, for every variant that names a recipe.

    Seeds of a variant share their config up to the seed, so the first run stands for all.
    """
    results: dict[str, tuple[Recipe, list[ItemCheck]]] = {}
    first = {}
    for config in configs:
        first.setdefault(config.variant, config)
    for variant in suite.variants:
        name = variant.recipe or suite.recipe
        if name is None or variant.name not in first:
            continue
        recipe = load_recipe(name)
        deviations = {**suite.deviations, **variant.deviations}
        unknown = sorted(set(deviations) - {item.item for item in recipe.items})
        if unknown:
            raise ConfigError(
                f"suite {suite.name!r}, variant {variant.name!r}: deviations {unknown} name no "
                f"item of recipe {name!r}; items: {[item.item for item in recipe.items]}"
            )
        fields = variant.model_dump(mode="json")
        results[variant.name] = (
            recipe,
            check_variant(recipe, first[variant.name], deviations, fields),
        )
    return results


def undeclared(checks: Mapping[str, tuple[Recipe, list[ItemCheck]]]) -> list[str]:
    """``variant: item (official X, ours Y)`` for every difference without a reason."""
    return [
        f"{variant}: {check.item} (official {check.official!r}, ours {check.ours!r}; "
        f"{recipe.repository} {check.source})"
        for variant, (recipe, items) in checks.items()
        for check in items
        if check.status == "undeclared"
    ]
