"""The one owner of every output path: a suite's folder and the files of each run.

Everything a suite produces lives under ``OUT/SUITE/``::

    runs/RUN_ID/        config.json, checkpoint[.previous].pt, model_final.pt, model_best.pt,
                        result.json, lock.json, events.jsonl, predictions/val_N.png
    added_seeds.json    seeds `run --resolve-claims` added to variants
    profiles/           cost of each architecture (params, FLOPs, latency)
    samples/            the val images and labels the report shows predictions for
    launcher/           submitit's job files and logs
    report/             report.html, results.csv, results.json

No other module builds these paths from string literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    """The files of one run, all inside ``root`` (``OUT/SUITE/runs/RUN_ID``)."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        """The resolved config, written before training starts."""
        return self.root / "config.json"

    @property
    def checkpoint(self) -> Path:
        """The resumable training state; removed once the run is done."""
        return self.root / "checkpoint.pt"

    @property
    def previous_checkpoint(self) -> Path:
        """The checkpoint before the latest one, kept in case the latest cannot be read."""
        return self.root / "checkpoint.previous.pt"

    @property
    def checkpoints(self) -> tuple[Path, Path]:
        """Where a run resumes from, newest first."""
        return self.checkpoint, self.previous_checkpoint

    @property
    def final_weights(self) -> Path:
        """State dict after the last training step."""
        return self.root / "model_final.pt"

    @property
    def best_weights(self) -> Path:
        """State dict of the best periodic evaluation."""
        return self.root / "model_best.pt"

    @property
    def result(self) -> Path:
        """The run record; its presence means the run is finished (done or failed)."""
        return self.root / "result.json"

    @property
    def lock(self) -> Path:
        """Who is working on the run (see :mod:`bench.launch`)."""
        return self.root / "lock.json"

    @property
    def events(self) -> Path:
        """One JSON line per start, resume, take-over and end of work on the run."""
        return self.root / "events.jsonl"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def prediction(self, index: int) -> Path:
        """PNG of predicted class indices for val image ``index``."""
        return self.predictions / f"val_{index}.png"

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, as stored in records."""
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class SuiteLayout:
    """The output folder of one suite, ``OUT/SUITE``."""

    root: Path

    @classmethod
    def of(cls, out_dir: Path, suite_name: str) -> SuiteLayout:
        """The layout of suite ``suite_name`` under the output folder ``out_dir``."""
        return cls(Path(out_dir) / suite_name)

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def launcher(self) -> Path:
        """submitit's folder: pickled jobs, their stdout/stderr logs."""
        return self.root / "launcher"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report / "report.html"

    @property
    def results_csv(self) -> Path:
        return self.report / "results.csv"

    @property
    def results_json(self) -> Path:
        return self.report / "results.json"

    @property
    def added_seeds(self) -> Path:
        """Seeds ``run --resolve-claims`` added to variants, beyond the suite file's."""
        return self.root / "added_seeds.json"

    @property
    def profile_lock(self) -> Path:
        """Held while the suite's architectures are measured side by side."""
        return self.profiles / "lock.json"

    def run(self, run_id: str) -> RunLayout:
        """The files of run ``run_id``."""
        return RunLayout(self.runs / run_id)

    def profile(self, name: str) -> Path:
        """The cost record of one architecture (``name`` = model name + settings digest)."""
        return self.profiles / f"{name}.json"

    def sample_image(self, index: int) -> Path:
        return self.samples / f"{index}_image.png"

    def sample_label(self, index: int) -> Path:
        return self.samples / f"{index}_label.png"


def find_run(source: str | Path, out_dir: Path) -> RunLayout | None:
    """The run ``source`` names: a run folder, or a run id under ``out_dir/*/runs``.

    Returns None when ``source`` is neither (e.g. a weights file).

    Raises:
        ConfigError: a folder without ``config.json``, or an id found in several suites.
    """
    from bench.errors import ConfigError

    path = Path(source)
    if path.is_dir():
        layout = RunLayout(path)
        if not layout.config.is_file():
            raise ConfigError(f"{path} is a folder but not a run folder (it has no config.json)")
        return layout
    if path.exists() or path.suffix:
        return None
    matches = sorted(Path(out_dir).glob(f"*/runs/{source}"))
    if len(matches) > 1:
        raise ConfigError(f"{source!r}: runs of several suites under {out_dir} have this id")
    return RunLayout(matches[0]) if matches else None
