"""Verify a dataset folder in one pass: counts, missing files, decodability, sizes, labels.

Unlike :func:`bench.data.build_dataset`, which stops at the first problem,
:func:`check_dataset` collects every problem of every split so that one run
tells the user everything to fix.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bench.config import SyntheticSpec
from bench.data.base import DatasetDef, DatasetMissing, Sample, decode_pair, missing_files
from bench.data.registry import dataset_definition
from bench.errors import DatasetError

logger = logging.getLogger(__name__)


@dataclass
class SplitReport:
    """Findings for one split.

    Args:
        split: split name.
        found: number of samples listed, ``None`` when the split could not be listed.
        expected: number in the official release, ``None`` when not fixed.
        problems: one line per problem.
        optional_absent: an optional split (e.g. CamVid test) that is not present.
    """

    split: str
    found: int | None = None
    expected: int | None = None
    problems: list[str] = field(default_factory=list)
    optional_absent: bool = False


@dataclass
class CheckReport:
    """Outcome of :func:`check_dataset`; :attr:`ok` is true when nothing is wrong."""

    dataset: str
    root: Path
    decoded: bool
    splits: list[SplitReport]
    obtain: str
    data_missing: bool = False

    @property
    def problems(self) -> list[str]:
        """Every problem, prefixed with its split."""
        return [
            f"{report.split}: {problem}" for report in self.splits for problem in report.problems
        ]

    @property
    def ok(self) -> bool:
        """True when every checked split is complete and valid."""
        return not self.problems

    def format(self) -> str:
        """A readable multi-line report."""
        lines = [f"{self.dataset} under {self.root}"]
        for report in self.splits:
            if report.optional_absent:
                lines.append(f"  {report.split:<10} not present (optional)")
                continue
            found = "?" if report.found is None else str(report.found)
            expected = "" if report.expected is None else f" (expected {report.expected})"
            status = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
            lines.append(f"  {report.split:<10} {found} samples{expected}: {status}")
        problems = self.problems
        if problems:
            lines.append(f"PROBLEMS ({len(problems)}):")
            lines.extend(f"  - {problem}" for problem in problems)
            if self.data_missing:
                lines.append(f"How to obtain {self.dataset}:")
                lines.extend(f"  {line}" for line in self.obtain.splitlines())
            lines.append("FAILED")
        else:
            checked = "decoded and validated" if self.decoded else "listed (not decoded)"
            total = sum(report.found or 0 for report in self.splits)
            lines.append(f"OK: {total} samples {checked}")
        return "\n".join(lines)


def check_dataset(
    name: str,
    root: Path,
    splits: list[str] | tuple[str, ...] | None = None,
    decode: bool = True,
    synthetic: SyntheticSpec | None = None,
    progress: bool = False,
) -> CheckReport:
    """Check dataset ``name`` under ``root`` and report all problems found.

    Args:
        name: dataset name (see :data:`bench.data.DATASETS`).
        root: the data root holding the dataset's folder.
        splits: splits to check; default: the dataset's required splits plus
            optional ones (CamVid test) when present.
        decode: decode every image and mask, checking sizes and label values;
            ``False`` only checks that the listed files exist.
        synthetic: parameters of the synthetic dataset.
        progress: show a progress bar on stderr.
    """
    definition = dataset_definition(name, synthetic)
    report = CheckReport(name, Path(root), decode, [], definition.how_to_obtain(root))
    requested = list(splits) if splits else [*definition.check_splits, *definition.optional_splits]
    for split in requested:
        optional = not splits and split in definition.optional_splits
        split_report = SplitReport(split, expected=definition.expected_counts.get(split))
        try:
            samples = definition.samples(Path(root), split)
        except DatasetMissing as error:
            if optional:
                split_report.optional_absent = True
            else:
                split_report.problems.append(str(error))
                report.data_missing = True
            report.splits.append(split_report)
            continue
        except DatasetError as error:
            split_report.problems.append(str(error))
            report.splits.append(split_report)
            continue
        split_report.found = len(samples)
        _check_samples(definition, split_report, samples, decode, progress)
        report.splits.append(split_report)
    return report


def _check_samples(
    definition: DatasetDef,
    report: SplitReport,
    samples: list[Sample],
    decode: bool,
    progress: bool,
) -> None:
    if not samples:
        report.problems.append("the split lists no samples")
    elif report.expected is not None and report.found != report.expected:
        report.problems.append(f"{report.found} samples listed, expected {report.expected}")
    missing = set(missing_files(samples))
    report.problems.extend(f"{path}: file is missing" for path in sorted(missing))
    if not decode:
        return
    present = [pair for pair in samples if not missing.intersection(pair)]
    logger.info("%s/%s: decoding %d samples", definition.info.name, report.split, len(present))

    def validate(pair: Sample) -> str | None:
        try:
            decode_pair(*pair, definition.label_map)
        except DatasetError as error:
            return str(error)
        return None

    # Pillow and scipy release the GIL while decoding, so threads overlap the work.
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(validate, present)
        bar = tqdm(
            results, total=len(present), desc=report.split, disable=None if progress else True
        )
        report.problems.extend(problem for problem in bar if problem is not None)
