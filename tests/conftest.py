"""Fixtures shared across the test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The data root holding camvid/ ($LITESEG_BENCH_DATA); real-data tests skip without it."""
    value = os.environ.get("LITESEG_BENCH_DATA")
    if not value or not (Path(value) / "camvid").is_dir():
        pytest.skip("real-data test: set LITESEG_BENCH_DATA to the folder holding camvid/")
    return Path(value)
