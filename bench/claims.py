"""The papers' claims as data: what each says, what it was measured on, which runs test it.

Claims live in ``experiments/claims/*.toml``, one ``[[claims]]`` table each. A claim says
that ``better`` beats ``than`` on one metric; each of its ``tests`` names the two variants
of a suite that stand for them. The effect is always measured so that a positive value
supports the claim:

- ``miou``: mIoU(better) - mIoU(than), in percentage points, seed-paired;
- ``latency``: how much longer ``than`` takes than ``better``, in percent, paired by the
  interleaved timing rounds of one side-by-side session.

``paper_effect`` is the paper's value of that same quantity (None where the paper gives
none: the claim is then stated qualitatively and the number reads "not found").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from bench.config import (
    EXPERIMENTS_DIR,
    FrozenSpec,
    SuiteSpec,
    format_validation_error,
    repeated,
    tomllib,
)
from bench.errors import ConfigError

CLAIMS_DIR = EXPERIMENTS_DIR / "claims"
ClaimMetric = Literal["miou", "latency"]
UNITS: dict[str, str] = {"miou": "pp", "latency": "%"}


class ClaimTest(FrozenSpec):
    """Two variants of a suite standing for a claim's sides."""

    suite: str
    better: str = Field(description="the variant the claim says wins")
    than: str = Field(description="the variant it wins against")


class Claim(FrozenSpec):
    """One claim of a paper, testable by paired runs."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    paper: str
    source: str = Field(description="table or figure and row, or the sentence's section")
    statement: str
    metric: ClaimMetric
    paper_effect: float | None = Field(
        None, description="the paper's effect in the claim's unit (None: not found)"
    )
    paper_setting: str = Field(description="model, data and measurement of paper_effect")
    tests: tuple[ClaimTest, ...] = Field(min_length=1)

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def tests_in(self, suite: str) -> list[ClaimTest]:
        """The tests of this claim that name ``suite``."""
        return [test for test in self.tests if test.suite == suite]


class ClaimFile(FrozenSpec):
    """One claims file: its ``[[claims]]`` tables."""

    claims: tuple[Claim, ...]

    @field_validator("claims")
    @classmethod
    def _unique_ids(cls, claims: tuple[Claim, ...]) -> tuple[Claim, ...]:
        duplicates = repeated(claim.id for claim in claims)
        if duplicates:
            raise ValueError(f"claim ids must be unique; repeated: {duplicates}")
        return claims


def load_claims(paths: Sequence[Path] | None = None) -> tuple[Claim, ...]:
    """Read and validate claim files (default: every ``experiments/claims/*.toml``); errors
    name the file and the key."""
    claims: list[Claim] = []
    for path in paths if paths is not None else sorted(CLAIMS_DIR.glob("*.toml")):
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"claims file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
        try:
            claims.extend(ClaimFile.model_validate(raw).claims)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, str(path))) from None
    duplicates = repeated(claim.id for claim in claims)
    if duplicates:
        raise ConfigError(f"claim ids repeated across claims files: {duplicates}")
    return tuple(claims)


def claims_for(suite: SuiteSpec, claims: Sequence[Claim]) -> list[tuple[Claim, ClaimTest]]:
    """Every (claim, test) naming ``suite``; a test naming a variant the suite lacks is an
    error that names the claim."""
    variants = {variant.name for variant in suite.variants}
    found = []
    for claim in claims:
        for test in claim.tests_in(suite.name):
            missing = [name for name in (test.better, test.than) if name not in variants]
            if missing:
                raise ConfigError(
                    f"claim {claim.id!r}: suite {suite.name!r} has no variant {missing[0]!r} "
                    f"(variants: {sorted(variants)})"
                )
            found.append((claim, test))
    return found
