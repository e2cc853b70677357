"""The "Protocol vs the paper" tables: each variant's resolved config against its official
recipe, item by item (:mod:`bench.conformance`), as plain data for the template.

Variants that follow the same recipe with the same outcome on every item share a table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bench.config import SuiteSpec
from bench.conformance import ItemCheck, Recipe, variant_checks
from reports.summary import ReportEntry

STATUS_TEXT = {"equal": "equal", "deviation": "deviation", "undeclared": "undeclared deviation"}
STATUS_CSS = {"equal": "ok", "deviation": "warn", "undeclared": "bad"}


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _row(check: ItemCheck) -> dict[str, str]:
    return {
        "item": check.item,
        "official": _value(check.official),
        "source": check.source,
        "ours": _value(check.ours),
        "status": STATUS_TEXT[check.status],
        "css": STATUS_CSS[check.status],
        "reason": check.reason or "",
    }


def protocol_tables(suite: SuiteSpec, entries: Sequence[ReportEntry]) -> list[dict[str, Any]]:
    """One table per recipe and outcome: its variants, counts and item rows."""
    configs = [entry.config for entry in entries if entry.config is not None]
    groups: dict[tuple, dict[str, Any]] = {}
    for variant, (recipe, checks) in variant_checks(suite, configs).items():
        rows = [_row(check) for check in checks]
        key = (recipe.name, json.dumps(rows))
        if key not in groups:
            groups[key] = _table(recipe, rows, checks)
        groups[key]["variants"].append(variant)
    return list(groups.values())


def _table(recipe: Recipe, rows: list[dict[str, str]], checks: list[ItemCheck]) -> dict:
    counts = {status: sum(c.status == status for c in checks) for status in STATUS_TEXT}
    return {
        "title": recipe.title,
        "repository": recipe.repository,
        "revision": recipe.revision,
        "variants": [],
        "summary": f"{counts['equal']} of {len(checks)} items equal, "
        f"{counts['deviation']} declared deviations"
        + (f", {counts['undeclared']} UNDECLARED" if counts["undeclared"] else ""),
        "rows": rows,
    }
