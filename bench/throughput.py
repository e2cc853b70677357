"""Training and evaluation throughput side by side: our trainer, its floor, each speed option,
and PaddleSeg's own training step.

For each model, the run is the suite's first from-scratch variant of that model (default
suite camvid-quick, at its batch and crop, on its real data). All configurations below
run in ONE interleaved session on the CPU, with the same number of threads:

- ``trainer``: our :class:`~bench.train.Trainer`: ``_train_step`` on batches from
  ``_train_loader`` (loading, augmentation and ``data.num_workers`` as configured). This is
  what ``fit`` runs per step, without its logging, checkpoint writes and evaluations.
- ``bare``: the floor. Forward (every head), the run's loss, backward and the run's SGD step
  on one fixed batch loaded beforehand, in fp32, NCHW and eager mode.
- The speed options on the bare step:
  - ``channels_last``;
  - ``bf16``: bf16 autocast plus channels_last, only where the CPU has native bf16
    (:attr:`bench.hardware.Hardware.native_bf16`);
  - ``compile``: ``torch.compile`` of the model. The compile time is measured with the
    first step, excluded from the rates and reported.
- ``workers``: the trainer with ``data.num_workers = 2`` instead of the configured value.
- ``paddleseg`` (``pp_liteseg_t`` only): PaddleSeg's trainer step
  (:mod:`bench.throughput_paddle`). It runs in a subprocess of a given interpreter that has
  paddle, on the same fixed batch and with the same thread count, and is told over a pipe
  to run K steps per round. Unlike ``trainer``, it loads no data, so ours/PaddleSeg
  understates our speed.
- ``eval``: images/s of :func:`bench.evaluate.evaluate` (fp32, the run's eval spec) on the
  first N images of the val split at full resolution.

Timing rules. First every configuration runs once untimed (warm-up). Then come ``rounds``
rounds; each round runs every configuration once (K steps, or the N images), in a fixed
order. Before each run there is a pause (:data:`PAUSE_S`): by then the OpenMP threads of
the previous configuration have stopped spinning (Paddle's Intel OpenMP spins for
KMP_BLOCKTIME, 200 ms) and DataLoader workers have refilled their queue. Each round gives
one rate per configuration. A rate in the report is the median over rounds, and every
ratio is a quotient of two such medians.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from bench.config import RunConfig, load_suite, resolve_runs
from bench.data import resolve_data_root
from bench.distributed import DistContext
from bench.errors import ConfigError
from bench.evaluate import evaluate
from bench.hardware import detect
from bench.layout import RunLayout
from bench.losses import weighted_loss
from bench.profile import cpu_threads
from bench.train import Trainer

DEFAULT_MODELS = ("pp_liteseg_t", "pp_liteseg_b", "liteseg_mobilenetv2")
OPTIONS = ("channels_last", "bf16", "compile", "workers")
PADDLE_MODEL = "pp_liteseg_t"
DATA_WORKERS = 2
PAUSE_S = 0.5
PADDLE_WORKER = Path(__file__).with_name("throughput_paddle.py")
LABELS = {
    "trainer": "our Trainer, data included",
    "bare": "bare step fp32 NCHW eager (floor)",
    "channels_last": "bare step, channels_last",
    "bf16": "bare step, bf16 autocast + channels_last",
    "compile": "bare step, torch.compile",
    "workers": f"our Trainer, data.num_workers={DATA_WORKERS}",
    "paddleseg": "PaddleSeg trainer step, fixed batch",
    "eval": "evaluate(), full resolution, fp32",
}
# (name, numerator, denominator): each a quotient of two medians of one model.
RATIOS = (
    ("ours/floor", "trainer", "bare"),
    ("ours/PaddleSeg", "trainer", "paddleseg"),
    ("floor/PaddleSeg", "bare", "paddleseg"),
    ("channels_last vs fp32 eager", "channels_last", "bare"),
    ("bf16+channels_last vs fp32 eager", "bf16", "bare"),
    ("compile vs fp32 eager", "compile", "bare"),
    (f"num_workers={DATA_WORKERS} vs ours", "workers", "trainer"),
    (f"num_workers={DATA_WORKERS} vs floor", "workers", "bare"),
)


@dataclass(frozen=True)
class ThroughputSettings:
    """What one session measures.

    Args:
        models: model names; each needs a from-scratch variant in ``suite``.
        rounds: timed rounds (the median is taken over them).
        steps: training steps per configuration and round (K).
        eval_images: val images per evaluation round (N).
        options: the speed options to include (a subset of :data:`OPTIONS`).
        paddle_python: an interpreter with paddlepaddle and paddleseg, for PaddleSeg's step;
            None leaves it out.
        threads: CPU threads of every configuration (default: all available cores).
        suite: the suite whose runs set batch, crop, data, loss and optimizer.
        overrides: dotted ``--set`` overrides applied to every run of the suite.
        pause_s: pause before each timed run.
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    rounds: int = 3
    steps: int = 3
    eval_images: int = 8
    options: tuple[str, ...] = OPTIONS
    paddle_python: Path | None = None
    threads: int | None = None
    suite: str = "camvid-quick"
    overrides: dict[str, Any] = field(default_factory=dict)
    pause_s: float = PAUSE_S


@dataclass(frozen=True)
class Timed:
    """One configuration under test: each call of ``run`` does ``units`` units of work
    (steps or images) and returns the seconds they took."""

    model: str
    key: str
    label: str
    unit: str
    units: int
    run: Callable[[], float]
    note: str = ""


@dataclass
class Measurement:
    """The rates of one configuration, one per round (``unit`` per second), or why it was
    skipped."""

    model: str
    key: str
    label: str
    unit: str
    rates: list[float] = field(default_factory=list)
    skipped: str | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        """The median rate over the rounds; None when skipped."""
        return statistics.median(self.rates) if self.rates else None


@dataclass(frozen=True)
class Ratio:
    """``median(numerator) / median(denominator)`` of one model; None if either is skipped."""

    model: str
    name: str
    numerator: str
    denominator: str
    value: float | None


@dataclass
class ThroughputReport:
    """The measurements and ratios of a session, and what they were measured on."""

    machine: str
    threads: int
    versions: dict[str, str]
    settings: dict[str, Any]
    measurements: list[Measurement]
    ratios: list[Ratio]

    def table(self) -> str:
        """The printed report: machine line, one row per configuration, then the ratios."""
        return "\n".join([*self._header(), "", *self._rate_rows(), "", *self._ratio_rows()])

    def as_dict(self) -> dict[str, Any]:
        """Everything in the report, JSON-serialisable (rates per round included)."""
        return {
            "machine": self.machine,
            "threads": self.threads,
            "versions": self.versions,
            "settings": self.settings,
            "measurements": [
                {**vars(measurement), "median": measurement.median}
                for measurement in self.measurements
            ],
            "ratios": [vars(ratio) for ratio in self.ratios],
        }

    def _header(self) -> list[str]:
        s = self.settings
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return [
            f"machine: {self.machine}",
            f"{versions}; {self.threads} CPU thread{'s' if self.threads > 1 else ''}",
            f"{s['suite']}: batch {s['batch']}, crop {s['crop'][0]}x{s['crop'][1]}; "
            f"{s['rounds']} interleaved rounds x {s['steps']} steps "
            f"(eval: {s['eval_images']} val images), medians over rounds",
        ]

    def _rate_rows(self) -> list[str]:
        rows = [f"{'model':<20} {'configuration':<44} {'rate':>14} {'per unit':>10}  range (note)"]
        for m in self.measurements:
            if m.median is None:
                rows.append(f"{m.model:<20} {m.label:<44} skipped: {m.skipped}")
                continue
            rate = f"{m.median:.3g} {m.unit}s/s"
            spread = f"{min(m.rates):.3g}-{max(m.rates):.3g}" + (f" ({m.note})" if m.note else "")
            rows.append(
                f"{m.model:<20} {m.label:<44} {rate:>14} {1e3 / m.median:>7.0f} ms  {spread}"
            )
        return rows

    def _ratio_rows(self) -> list[str]:
        rows = [f"{'model':<20} {'ratio (of medians)':<44} {'value':>14}"]
        for ratio in self.ratios:
            value = "skipped" if ratio.value is None else f"{ratio.value:.2f}"
            rows.append(f"{ratio.model:<20} {ratio.name:<44} {value:>14}")
        return rows


def compute_ratios(measurements: Sequence[Measurement]) -> list[Ratio]:
    """Every ratio of :data:`RATIOS` whose two configurations were both part of the session
    for a model (measured or skipped), as a quotient of their median rates."""
    by_key = {(m.model, m.key): m for m in measurements}
    ratios = []
    for model in dict.fromkeys(m.model for m in measurements):
        for name, numerator, denominator in RATIOS:
            top, bottom = by_key.get((model, numerator)), by_key.get((model, denominator))
            if top is None or bottom is None:
                continue
            value = None if None in (top.median, bottom.median) else top.median / bottom.median
            ratios.append(Ratio(model, name, numerator, denominator, value))
    return ratios


def interleave(timed: Sequence[Timed], rounds: int, pause_s: float) -> list[list[float]]:
    """Warm up every configuration once, then run ``rounds`` rounds, each configuration once
    per round in the given order after a pause of ``pause_s``; its rates (units/s) per round."""
    for entry in timed:
        entry.run()
    rates: list[list[float]] = [[] for _ in timed]
    for _ in range(rounds):
        for entry, samples in zip(timed, rates, strict=True):
            time.sleep(pause_s)
            samples.append(entry.units / entry.run())
    return rates


def measure_throughput(
    settings: ThroughputSettings, data_root: str | Path | None = None
) -> ThroughputReport:
    """Measure every model and option of ``settings`` in one interleaved session (the rules
    are given in the module docstring). ``data_root`` defaults to ``$LITESEG_BENCH_DATA``.

    Raises:
        ConfigError: an unknown option, or a model without a from-scratch variant in the suite.
    """
    unknown = sorted(set(settings.options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown throughput option(s) {unknown}; choose from {list(OPTIONS)}")
    runs = {model: _run_config(settings, model) for model in settings.models}
    with (
        tempfile.TemporaryDirectory(prefix="liteseg-throughput-") as workdir,
        cpu_threads(settings.threads) as threads,
        contextlib.ExitStack() as stack,
    ):
        timed: list[Timed] = []
        skipped: list[Measurement] = []
        versions = {"torch": torch.__version__}
        for model, config in runs.items():
            root = resolve_data_root(data_root, dataset=config.data.dataset)
            session = _ModelSession(config, root, Path(workdir) / model, settings, threads)
            timed += session.timed(stack, versions)
            skipped += session.skipped
        rates = interleave(timed, settings.rounds, settings.pause_s)
    measurements = [
        Measurement(t.model, t.key, t.label, t.unit, samples, note=t.note)
        for t, samples in zip(timed, rates, strict=True)
    ]
    measurements = _in_session_order(measurements + skipped, settings.models)
    first = next(iter(runs.values()))
    return ThroughputReport(
        machine=detect().describe(),
        threads=threads,
        versions=versions,
        settings={
            "suite": settings.suite,
            "models": list(settings.models),
            "batch": first.train.batch_size,
            "crop": list(first.augment.crop_size),
            "rounds": settings.rounds,
            "steps": settings.steps,
            "eval_images": settings.eval_images,
            "options": list(settings.options),
            "pause_s": settings.pause_s,
        },
        measurements=measurements,
        ratios=compute_ratios(measurements),
    )


def _in_session_order(measurements: list[Measurement], models: Sequence[str]) -> list[Measurement]:
    keys = list(LABELS)
    return sorted(measurements, key=lambda m: (models.index(m.model), keys.index(m.key)))


def _run_config(settings: ThroughputSettings, model: str) -> RunConfig:
    """The suite's first from-scratch run of ``model``, long enough for the whole session
    (its ``train.iters`` is raised, never lowered: only the lr schedule's length changes)."""
    runs = resolve_runs(load_suite(settings.suite), settings.overrides)
    for run in runs:
        if run.model.name == model and run.model.pretrained is None:
            needed = settings.steps * (settings.rounds + 1) + 1
            return _updated(run, "train", iters=max(run.train.iters, needed))
    names = sorted({run.model.name for run in runs if run.model.pretrained is None})
    raise ConfigError(
        f"suite {settings.suite!r} has no from-scratch variant of model {model!r}; "
        f"its from-scratch models: {', '.join(names)}"
    )


def _updated(config: RunConfig, section: str, **values: Any) -> RunConfig:
    return config.model_copy(update={section: getattr(config, section).model_copy(update=values)})


class _ModelSession:
    """The configurations of one model: its trainers, bare steps, PaddleSeg step, evaluation."""

    def __init__(
        self,
        config: RunConfig,
        data_root: Path,
        workdir: Path,
        settings: ThroughputSettings,
        threads: int,
    ) -> None:
        self.config = config
        self.model = config.model.name
        self.data_root = data_root
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.settings = settings
        self.threads = threads
        self.skipped: list[Measurement] = []
        self.trainer = self._trainer(config, "trainer")
        self.batch = next(iter(self.trainer._train_loader()))

    def timed(self, stack: contextlib.ExitStack, versions: dict[str, str]) -> list[Timed]:
        """The configurations to interleave; those that cannot run go to :attr:`skipped`."""
        options = self.settings.options
        workers = f"num_workers={self.config.data.num_workers}"
        timed = [self._training("trainer", self.trainer, note=workers)]
        timed.append(self._bare("bare"))
        if "channels_last" in options:
            timed.append(self._bare("channels_last", channels_last=True))
        if "bf16" in options:
            timed += self._bf16()
        if "compile" in options:
            timed += self._compiled()
        if "workers" in options:
            config = _updated(self.config, "data", num_workers=DATA_WORKERS)
            timed.append(self._training("workers", self._trainer(config, "workers")))
        if self.model == PADDLE_MODEL and self.settings.paddle_python is not None:
            timed += self._paddleseg(stack, versions)
        timed.append(self._evaluation())
        return timed

    def _skip(self, key: str, reason: str) -> list[Timed]:
        self.skipped.append(Measurement(self.model, key, LABELS[key], "step", skipped=reason))
        return []

    def _trainer(self, config: RunConfig, name: str) -> Trainer:
        context = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
        layout = RunLayout(self.workdir / name)
        trainer = Trainer(config, layout, self.data_root, context, progress=False)
        if config.data.cache:  # decode once before DataLoader workers fork, as after epoch 1
            for index in range(len(trainer.train_set)):
                trainer.train_set.load_pair(index)
        return trainer

    def _training(self, key: str, trainer: Trainer, note: str = "") -> Timed:
        batches = iter(trainer._train_loader())
        steps = self.settings.steps

        def run() -> float:
            started = time.perf_counter()
            for _ in range(steps):
                trainer._train_step(*next(batches))
            return time.perf_counter() - started

        return Timed(self.model, key, LABELS[key], "step", steps, run, note)

    def _bare(
        self,
        key: str,
        *,
        channels_last: bool = False,
        amp: torch.dtype | None = None,
        compiled: bool = False,
    ) -> Timed:
        step = _bare_step(self.trainer, self.batch, channels_last, amp, compiled)
        note = ""
        if compiled:
            note = f"compile + first step {_seconds(step):.0f} s, excluded"
        steps = self.settings.steps
        return Timed(
            self.model, key, LABELS[key], "step", steps, lambda: _seconds(step, steps), note
        )

    def _bf16(self) -> list[Timed]:
        if not detect().native_bf16:
            return self._skip(
                "bf16",
                "this CPU has no native bf16 (AVX512-BF16 or AMX-BF16); emulated bf16 is "
                "slower than fp32 (bench.hardware.Hardware.native_bf16)",
            )
        return [self._bare("bf16", channels_last=True, amp=torch.bfloat16)]

    def _compiled(self) -> list[Timed]:
        try:
            return [self._bare("compile", compiled=True)]
        except Exception as error:  # inductor fails in many ways (no compiler, unsupported op)
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return self._skip(
                "compile", f"torch.compile failed: {type(error).__name__}: {first_line}"
            )

    def _paddleseg(self, stack: contextlib.ExitStack, versions: dict[str, str]) -> list[Timed]:
        python = self.settings.paddle_python
        try:
            worker = stack.enter_context(PaddleStep(python, self._paddle_settings(), self.threads))
        except PaddleUnavailable as error:
            return self._skip(
                "paddleseg",
                f"no PaddleSeg step with {python}: {error}; give an interpreter that has "
                "paddlepaddle and paddleseg (nox -s throughput installs them)",
            )
        versions.update(worker.versions)
        steps = self.settings.steps
        return [
            Timed(
                self.model,
                "paddleseg",
                LABELS["paddleseg"],
                "step",
                steps,
                lambda: worker.run(steps),
            )
        ]

    def _paddle_settings(self) -> dict[str, Any]:
        images, labels = self.batch
        path = self.workdir / "batch.npz"
        np.savez(path, images=images.numpy(), labels=labels.numpy().astype(np.int64))
        cfg = self.config
        info = self.trainer.info
        return {
            "batch": str(path),
            "threads": self.threads,
            "num_classes": info.num_classes,
            "ignore_index": info.ignore_index,
            "coef": list(cfg.loss.weights),
            "lr": cfg.optim.lr,
            "end_lr": cfg.optim.end_lr,
            "power": cfg.optim.poly_power,
            "warmup_iters": cfg.optim.warmup_iters,
            "warmup_start_lr": cfg.optim.warmup_start_lr,
            "momentum": cfg.optim.momentum,
            "weight_decay": cfg.optim.weight_decay,
            "iters": self.trainer.total_steps,
        }

    def _evaluation(self) -> Timed:
        trainer = self.trainer
        count = min(self.settings.eval_images, len(trainer.val_set))
        loader = DataLoader(
            Subset(trainer.val_set, range(count)), batch_size=self.config.eval.batch_size
        )

        def run() -> float:
            started = time.perf_counter()
            evaluate(
                trainer.model,
                loader,
                trainer.info.num_classes,
                trainer.info.class_names,
                ignore_index=trainer.info.ignore_index,
                channels_last=self.config.train.channels_last,
                spec=self.config.eval,
            )
            return time.perf_counter() - started

        return Timed(self.model, "eval", LABELS["eval"], "image", count, run)


def _bare_step(
    trainer: Trainer,
    batch: tuple[torch.Tensor, torch.Tensor],
    channels_last: bool,
    amp: torch.dtype | None,
    compiled: bool,
) -> Callable[[], None]:
    """Forward, the run's loss, backward and SGD step of a copy of the trainer's model on
    ``batch`` (no data loading, loss read-out, schedule or scaler)."""
    cfg = trainer.cfg
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(trainer.model).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        nesterov=cfg.optim.nesterov,
        weight_decay=cfg.optim.weight_decay,
    )
    forward = torch.compile(model) if compiled else model
    images = batch[0].contiguous(memory_format=memory_format)
    labels = batch[1]

    def step() -> None:
        with torch.autocast("cpu", amp, enabled=amp is not None):
            outputs = forward(images)
        loss = weighted_loss(trainer.criterion, outputs, labels, cfg.loss.weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _seconds(call: Callable[[], None], count: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return time.perf_counter() - started


class PaddleUnavailable(Exception):
    """PaddleSeg's step cannot run: no interpreter, no paddle in it, or the worker died."""


class PaddleStep:
    """PaddleSeg's training step in a subprocess (:mod:`bench.throughput_paddle`) that stays
    alive for the session; a context manager that ends it on exit.

    Args:
        python: the interpreter to run the worker with (it needs paddle and paddleseg only).
        settings: the worker's settings (see :mod:`bench.throughput_paddle`).
        threads: CPU threads (also ``OMP_NUM_THREADS`` of the subprocess).

    Raises:
        PaddleUnavailable: the interpreter does not exist or the worker could not build
            the step (the reason names the error).
    """

    def __init__(self, python: Path, settings: dict[str, Any], threads: int) -> None:
        # Kept open while the worker lives (closed by close()); read when it fails.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        try:
            self.process = subprocess.Popen(
                [str(python), str(PADDLE_WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env=env,
            )
        except OSError as error:
            self._stderr.close()
            raise PaddleUnavailable(f"cannot start it ({error.strerror})") from None
        try:
            self.versions = self._request(settings)
        except PaddleUnavailable:
            self.close()
            raise

    def run(self, steps: int) -> float:
        """Seconds PaddleSeg's trainer takes for ``steps`` steps (timed in the worker)."""
        return self._request({"steps": steps})["seconds"]

    def close(self) -> None:
        """End the worker (end of its input) and wait for it."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> PaddleStep:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError:
            pass  # the worker is gone; its stderr says why
        line = self.process.stdout.readline()
        if not line:
            raise PaddleUnavailable(f"the worker exited: {self._stderr_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise PaddleUnavailable(reply["error"])
        return reply

    def _stderr_tail(self) -> str:
        self.process.wait()
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.process.returncode}"
