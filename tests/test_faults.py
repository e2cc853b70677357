"""The bad-input and fault corpus: what a user gets wrong or a machine breaks, one row each.

Every row names the input or fault, the exit code, words the message must contain and
what must hold afterwards. All rows share the invariants of :func:`_run_cli`: the command
returns an exit code (an exception escaping ``main`` is a traceback the user would see)
and nothing is written outside the test's folder. A new user mistake is one new row.

Rows that need a finished suite copy one trained in this module (two variants of a tiny
synthetic suite) and damage the copy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.errors import NonFiniteOutputs
from bench.execute import read_events
from bench.layout import RunLayout, SuiteLayout

from miniatures import write_paddleseg_camvid

SUITE = """
name = "{name}"
seeds = {seeds}

[protocol.data]
dataset = "synthetic"

[protocol.data.synthetic]
num_train = 8
num_val = 2
image_size = [64, 64]
num_classes = 4

[protocol.augment]
pipeline = "seed"
crop_size = {crop}

[protocol.optim]
lr = {lr}
warmup_iters = 0

[protocol.train]
iters = {iters}
batch_size = 4
checkpoint_every = 2
log_every = 1

[protocol.eval]
visualize = [0]

[protocol.profile]
flops_sizes = [[64, 64]]
latency_size = [64, 64]
warmup = 0
repeats = 2

[[variants]]
name = "first"
model = "liteseg_mobilenetv2"

[[variants]]
name = "second"
model = "liteseg_mobilenetv2"
overrides = {{ short_residual = false }}
"""


def write_suite(folder: Path, **values) -> Path:
    """A tiny synthetic suite file (``values`` replace the defaults in the TOML text)."""
    settings = {"name": "faults", "seeds": "[0]", "crop": "[64, 64]", "lr": "0.01", "iters": 6}
    path = folder / "suite.toml"
    path.write_text(SUITE.format(**{**settings, **values}), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Fault:
    """One row: how to set it up, what the command must answer, what must hold after.

    ``arrange(tmp)`` writes what the row needs under ``tmp`` and returns the CLI
    arguments; ``after(tmp)`` checks the invariant that is specific to the row.
    """

    arrange: Callable[[Path], list[str]]
    exit_code: int
    words: tuple[str, ...]
    after: Callable[[Path], None] | None = None
    needs_finished_suite: bool = False
    marks: tuple = field(default=())


def _run_cli(argv: list[str], capsys, caplog) -> tuple[int, str]:
    caplog.set_level(logging.INFO)
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err + caplog.text


def _common(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "out"), "--data-root", str(tmp / "data"), "--device", "cpu"]


def _run(tmp: Path, *extra: str, **suite) -> list[str]:
    return ["run", str(write_suite(tmp, **suite)), *_common(tmp), "--no-progress", *extra]


def _plan(tmp: Path, *extra: str, **suite) -> list[str]:
    return ["plan", str(write_suite(tmp, **suite)), *_common(tmp), *extra]


def _suite_layout(tmp: Path) -> SuiteLayout:
    return SuiteLayout.of(tmp / "out", "faults")


def _runs(tmp: Path) -> dict[str, Path]:
    """Run folder by variant name."""
    folders = {}
    for folder in _suite_layout(tmp).runs.iterdir():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        folders[config["variant"]] = folder
    return folders


def _record(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text(encoding="utf-8"))


def _set_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


# -- rows on the suite file and the command line (validated before any work) ------------


def _toml_error(tmp: Path) -> list[str]:
    path = tmp / "broken.toml"
    path.write_text('name = "faults"\n[protocol\n', encoding="utf-8")
    return ["plan", str(path), *_common(tmp)]


def _unknown_key(tmp: Path) -> list[str]:
    return _plan(tmp, "--set", "train.itres=3")


def _escaping_name(name: str) -> Callable[[Path], list[str]]:
    return lambda tmp: _run(tmp, name=name)


def _nothing_outside_out(tmp: Path) -> None:
    assert sorted(path.name for path in tmp.iterdir()) == ["suite.toml"], "nothing is written"
    assert not (tmp.parent / "escaped").exists()


def _unwritable_out(kind: str) -> Callable[[Path], list[str]]:
    def arrange(tmp: Path) -> list[str]:
        if kind == "file":
            (tmp / "a-file").write_text("", encoding="utf-8")
            out = tmp / "a-file" / "out"
        elif kind == "read-only":
            (tmp / "locked").mkdir(mode=0o555)
            out = tmp / "locked" / "out"
        else:
            out = Path("/proc/liteseg-bench-out")
        return ["run", str(write_suite(tmp)), "--out", str(out), "--device", "cpu"]

    return arrange


AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")


# -- rows on a finished suite whose files were damaged -----------------------------------


def _damage(what: str, content: bytes, command: str = "run") -> Callable[[Path], list[str]]:
    """Damage a file of the finished run of variant ``first``, then run ``command`` on the
    suite (its original record is kept as ``first-record.json`` to compare with)."""

    def arrange(tmp: Path) -> list[str]:
        folder = _runs(tmp)["first"]
        shutil.copy(folder / "result.json", tmp / "first-record.json")
        target = {
            "result": folder / "result.json",
            "events": folder / "events.jsonl",
            "lock": folder / "lock.json",
        }[what]
        if what == "lock":  # a run that is not finished, whose claim is damaged
            (folder / "result.json").unlink()
        appended = target.read_bytes() if what == "events" else b""
        target.write_bytes(appended + content)
        if command == "status":
            return ["status", str(write_suite(tmp)), "--out", str(tmp / "out")]
        return _run(tmp)

    return arrange


def _first_rerun_second_untouched(tmp: Path) -> None:
    runs = _runs(tmp)
    assert _set_aside(runs["first"] / "result.json"), "the damaged record is kept aside"
    original = json.loads((tmp / "first-record.json").read_text(encoding="utf-8"))
    rerun = _record(runs["first"])
    assert rerun["status"] == "done" and rerun["metrics"] == original["metrics"]
    events = [event["event"] for event in read_events(RunLayout(runs["second"]))]
    assert events == ["claimed", "done"], "the other run is not trained again"


def _profile_damaged(tmp: Path) -> list[str]:
    profile = sorted(_suite_layout(tmp).profiles.glob("*.json"))[0]
    profile.write_text('{"params": "many"}', encoding="utf-8")
    return _run(tmp)


def _profile_remeasured(tmp: Path) -> None:
    profile = sorted(_suite_layout(tmp).profiles.glob("*.json"))[0]
    assert _set_aside(profile)
    assert json.loads(profile.read_text(encoding="utf-8"))["latency"], "timed again"
    for folder in _runs(tmp).values():
        assert _record(folder)["status"] == "done"


def _lock_claimed_at_once(tmp: Path) -> None:
    folder = _runs(tmp)["first"]
    assert _set_aside(folder / "lock.json") and not (folder / "lock.json").exists()
    original = json.loads((tmp / "first-record.json").read_text(encoding="utf-8"))
    assert _record(folder)["metrics"] == original["metrics"], "trained again, same result"


def _events_set_aside(tmp: Path) -> None:
    folder = _runs(tmp)["first"]
    (aside,) = _set_aside(folder / "events.jsonl")
    assert b"\x00" in aside.read_bytes()
    assert not (folder / "events.jsonl").exists(), "the next event starts a new history"


# -- rows on training: divergence, damaged checkpoints, interruption ----------------------


def _diverged_record(tmp: Path) -> None:
    for folder in _runs(tmp).values():
        record = _record(folder)
        assert record["status"] == "failed" and record["metrics"] is None
        assert not (folder / "model_final.pt").exists()


def _garbage_checkpoint(content: Callable[[bytes], bytes], keep_previous: bool):
    """Train the finished run of variant ``first`` again but stop it after step 5 (latest
    checkpoint at step 4, the previous one at step 2), then damage the latest. Its
    uninterrupted weights and record are kept as ``reference.pt`` and
    ``first-record.json``."""

    def arrange(tmp: Path) -> list[str]:
        folder = _runs(tmp)["first"]
        shutil.move(folder / "result.json", tmp / "first-record.json")
        shutil.move(folder / "model_final.pt", tmp / "reference.pt")
        argv = _run(tmp)
        with _interrupted_after(5):
            assert main(argv) == 130
        checkpoint = folder / "checkpoint.pt"
        assert torch.load(checkpoint, weights_only=True)["step"] == 4
        checkpoint.write_bytes(content(checkpoint.read_bytes()))
        if not keep_previous:
            (folder / "checkpoint.previous.pt").unlink()
        return argv

    return arrange


@contextlib.contextmanager
def _interrupted_after(step: int) -> Iterator[None]:
    """Ctrl-C in the training step that follows step ``step``."""
    from bench.train import Trainer

    original = Trainer._train_step

    def train_step(self, images, labels):
        if self.state.step == step:
            raise KeyboardInterrupt
        return original(self, images, labels)

    Trainer._train_step = train_step
    try:
        yield
    finally:
        Trainer._train_step = original


def _same_weights_as_uninterrupted(resumed_from: int | None) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        folder = _runs(tmp)["first"]
        assert _set_aside(folder / "checkpoint.pt"), "the unreadable checkpoint is kept aside"
        record = _record(folder)
        assert record["status"] == "done"
        assert record["training"]["resumed_from"] == resumed_from
        final = torch.load(folder / "model_final.pt", weights_only=True)
        reference = torch.load(tmp / "reference.pt", weights_only=True)
        assert all(torch.equal(final[key], reference[key]) for key in reference)
        original = json.loads((tmp / "first-record.json").read_text(encoding="utf-8"))
        assert record["metrics"] == original["metrics"]

    return check


def _interrupt_logged(tmp: Path) -> None:
    folder = _runs(tmp)["first"]
    events = read_events(RunLayout(folder))
    assert [event["event"] for event in events] == ["claimed", "interrupted"]
    assert (folder / "checkpoint.pt").is_file(), "the work so far is kept"


# -- rows on data files, weights files and the other commands ---------------------------

CAMVID_SUITE = """
name = "faults-camvid"
[protocol.data]
dataset = "camvid_paddleseg"
[protocol.augment]
crop_size = [6, 8]
[protocol.train]
iters = 1
batch_size = 2
[[variants]]
name = "only"
model = "liteseg_mobilenetv2"
"""


def _camvid(tmp: Path, command: str, damage: Callable[[Path], None]) -> list[str]:
    """A miniature PaddleSeg CamVid, damaged by ``damage(its folder)``, and ``command`` on it."""
    folder = write_paddleseg_camvid(tmp / "data", {"train": 2, "val": 1})
    damage(folder)
    suite = tmp / "suite.toml"
    suite.write_text(CAMVID_SUITE, encoding="utf-8")
    return [command, str(suite), *_common(tmp), *(["--no-progress"] if command == "run" else [])]


def _missing_image_in_split(folder: Path) -> None:
    with (folder / "train.txt").open("a", encoding="utf-8") as split:
        split.write("images/gone.png annot/gone.png\n")


def _garbage_image(folder: Path) -> None:
    (folder / "images" / "train_0001.png").write_bytes(b"not a png")


def _failure_logged(tmp: Path) -> None:
    (folder,) = SuiteLayout.of(tmp / "out", "faults-camvid").runs.iterdir()
    events = read_events(RunLayout(folder))
    assert [event["event"] for event in events] == ["claimed", "failed"]
    assert "train_0001.png" in events[-1]["error"]


class _ExecutesCode:
    """A pickle that would run a shell command when unpickled without restriction."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_weights(tmp: Path) -> list[str]:
    torch.save({"weights": _ExecutesCode(tmp / "executed")}, tmp / "weights.pt")
    return ["evaluate", str(tmp / "weights.pt"), "--model", "liteseg_mobilenetv2",
            "--dataset", "synthetic", "--out", str(tmp / "out")]  # fmt: skip


def _nothing_executed(tmp: Path) -> None:
    assert not (tmp / "executed").exists()


def _diverged_weights(tmp: Path) -> list[str]:
    from architectures import create_model

    model = create_model("liteseg_mobilenetv2", 4)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    torch.save(model.state_dict(), tmp / "diverged.pt")
    return ["evaluate", str(tmp / "diverged.pt"), "--model", "liteseg_mobilenetv2",
            "--dataset", "synthetic", "--data-root", str(tmp / "data"),
            "--out", str(tmp / "out")]  # fmt: skip


def _no_record_written(tmp: Path) -> None:
    assert not list(tmp.glob("out/**/*.json")), "no metrics are written for NaN outputs"


def _html_in_description(tmp: Path) -> list[str]:
    suite = write_suite(tmp)
    text = suite.read_text(encoding="utf-8")
    injected = 'description = "<script>alert(1)</script><b>bold</b>"\n'
    suite.write_text(injected + text, encoding="utf-8")
    return ["report", str(suite), "--out", str(tmp / "out")]


def _html_escaped(tmp: Path) -> None:
    html = (_suite_layout(tmp).root / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def _export(tmp: Path, *extra: str) -> list[str]:
    return ["export", "pp_liteseg_t", "--size", "64x64", "-o", str(tmp / "m.onnx"), *extra]


FAULTS: dict[str, Fault] = {
    "malformed TOML": Fault(_toml_error, 2, ("broken.toml",)),
    "unknown key in --set": Fault(_unknown_key, 2, ("train.itres", "unknown key")),
    "suite name climbing out of --out": Fault(
        _escaping_name("../escaped"), 2, ("'../escaped'", "one folder name"), _nothing_outside_out
    ),
    "absolute suite name": Fault(_escaping_name("/tmp/abs"), 2, ("'/tmp/abs'", "folder name")),
    "empty suite name": Fault(_escaping_name(""), 2, ("''", "folder name")),
    "no seeds": Fault(lambda tmp: _run(tmp, seeds="[]"), 2, ("seeds", "at least 1")),
    "boolean where a number goes": Fault(
        lambda tmp: _plan(tmp, "--set", "train.iters=true"), 2, ("iters = true", "a number")
    ),
    "zero crop size": Fault(
        lambda tmp: _plan(tmp, crop="[0, 32]"), 2, ("crop_size.0", "greater than or equal to 1")
    ),
    "infinite learning rate": Fault(lambda tmp: _plan(tmp, lr="inf"), 2, ("lr", "finite")),
    "--out under a file": Fault(_unwritable_out("file"), 2, ("--out", "is a file")),
    "--out in a read-only folder": Fault(
        _unwritable_out("read-only"), 2, ("--out", "not writable"), marks=(AS_ROOT,)
    ),
    "--out under /proc": Fault(_unwritable_out("proc"), 2, ("--out", "/proc")),
    "--lock-timeout too short": Fault(
        lambda tmp: _run(tmp, "--lock-timeout", "1"), 2, ("--lock-timeout 1.0", "at least 4")
    ),
    "damaged result.json": Fault(
        _damage("result", b'{"status": "done", "metrics": '),
        0,
        ("result.json cannot be read", "moved aside", "runs again"),
        _first_rerun_second_untouched,
        needs_finished_suite=True,
    ),
    "result.json of another schema": Fault(
        _damage("result", b'{"status": "finished"}'),
        0,
        ("result.json cannot be read", "suite: Field required"),
        _first_rerun_second_untouched,
        needs_finished_suite=True,
    ),
    "damaged profile": Fault(
        _profile_damaged,
        0,
        ("cannot be read", "counted and timed again"),
        _profile_remeasured,
        needs_finished_suite=True,
    ),
    "damaged lock.json": Fault(
        _damage("lock", b"\x00\x01garbage"),
        0,
        ("lock.json cannot be read", "counts as free"),
        _lock_claimed_at_once,
        needs_finished_suite=True,
    ),
    "damaged events.jsonl": Fault(
        _damage("events", b"\x00{half a line", command="status"),
        0,
        ("events.jsonl cannot be read", "line 3", "2 done"),
        _events_set_aside,
        needs_finished_suite=True,
    ),
    "diverges on the last step": Fault(
        lambda tmp: _run(tmp, "--set", "train.log_every=2", lr="1e6", iters=2),
        1,
        (
            "outputs are NaN/inf at evaluation",
            "Lower optim.lr",
            "liteseg-bench status",
            "--set train.log_every=2",
        ),
        _diverged_record,
    ),
    "garbage checkpoint, good previous one": Fault(
        _garbage_checkpoint(lambda data: b"not a checkpoint", keep_previous=True),
        0,
        ("checkpoint.pt cannot be read", "resumes from an earlier state"),
        _same_weights_as_uninterrupted(resumed_from=2),
        needs_finished_suite=True,
    ),
    "truncated checkpoint, no previous one": Fault(
        _garbage_checkpoint(lambda data: data[: len(data) // 2], keep_previous=False),
        0,
        ("checkpoint.pt cannot be read", "trains from step 0"),
        _same_weights_as_uninterrupted(resumed_from=None),
        needs_finished_suite=True,
    ),
    "split file names a missing image": Fault(
        lambda tmp: _camvid(tmp, "plan", _missing_image_in_split), 2, ("gone.png",)
    ),
    "undecodable image": Fault(
        lambda tmp: _camvid(tmp, "run", _garbage_image), 2, ("train_0001.png",), _failure_logged
    ),
    "weights that execute code": Fault(
        _malicious_weights,
        2,
        ("weights.pt: refused, nothing in it was run", "system"),
        _nothing_executed,
    ),
    "weights whose outputs are NaN": Fault(
        _diverged_weights, 2, ("outputs are NaN/inf at evaluation",), _no_record_written
    ),
    "HTML in a suite description": Fault(_html_in_description, 0, ("report.html",), _html_escaped),
    "export to a folder": Fault(lambda tmp: [*_export(tmp)[:-1], str(tmp)], 2, ("is a folder",)),
    "export under /proc": Fault(
        lambda tmp: [*_export(tmp)[:-1], "/proc/m.onnx"], 2, ("/proc does not accept new files",)
    ),
    "export at 100000x100000": Fault(
        lambda tmp: [
            "export",
            "pp_liteseg_t",
            "--size",
            "100000x100000",
            "-o",
            str(tmp / "m.onnx"),
        ],
        2,
        ("'100000x100000'", "8192"),
    ),
    "export with 0 classes": Fault(
        lambda tmp: _export(tmp, "--num-classes", "0"), 2, ("--num-classes", "at least 1")
    ),
    "evaluate at scale 0": Fault(
        lambda tmp: ["evaluate", "abc", "--scale", "0"], 2, ("--scale 0", "finite number > 0")
    ),
    "evaluate at scale nan": Fault(
        lambda tmp: ["evaluate", "abc", "--scale", "nan"], 2, ("--scale nan", "finite number > 0")
    ),
    "evaluate at multiscale 0": Fault(
        lambda tmp: ["evaluate", "abc", "--multiscale", "0"], 2, ("--multiscale 0",)
    ),
}


@pytest.fixture(scope="module")
def finished_suite(tmp_path_factory) -> Path:
    """A trained two-variant suite (records, profiles, events) to copy and damage."""
    root = tmp_path_factory.mktemp("finished")
    assert main(_run(root)) == 0
    return root


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=fault.marks) for name, fault in FAULTS.items()]
)
def test_fault(name, tmp_path, capsys, caplog, request):
    fault = FAULTS[name]
    tmp = tmp_path / "case"
    if fault.needs_finished_suite:
        shutil.copytree(request.getfixturevalue("finished_suite"), tmp)
    else:
        tmp.mkdir()
    argv = fault.arrange(tmp)
    capsys.readouterr()
    caplog.clear()
    code, text = _run_cli(argv, capsys, caplog)
    assert code == fault.exit_code, text[-3000:]
    for words in fault.words:
        assert words in text, f"{words!r} not in:\n{text[-3000:]}"
    assert "Traceback" not in text
    if fault.after is not None:
        fault.after(tmp)
    if argv[0] == "run" and fault.exit_code == 0:
        again, text = _run_cli(argv, capsys, caplog)
        assert again == 0 and "0 to do" in text, "a second run finds nothing to redo"


def test_fault_ctrl_c_logs_interrupted_and_resumes(tmp_path, capsys, caplog):
    argv = _run(tmp_path, "--only", "first")
    with _interrupted_after(2):
        code, text = _run_cli(argv, capsys, caplog)
    assert code == 130 and "interrupted; finished work is kept" in text
    _interrupt_logged(tmp_path)
    status = _run_cli(["status", str(write_suite(tmp_path)), "--out", str(tmp_path / "out")],
                      capsys, caplog)[1]  # fmt: skip
    assert "partial, last interrupted" in status
    code, text = _run_cli(argv, capsys, caplog)
    assert code == 0 and "resuming" in text


def test_fault_deployed_precision_with_nan_outputs_fails_only_its_run(
    tmp_path, capsys, caplog, monkeypatch
):
    def nan_outputs(model, cfg, data_root, device):
        if cfg.variant == "first":
            raise NonFiniteOutputs("the model's outputs are NaN/inf at evaluation (openvino int8)")
        return []

    monkeypatch.setattr("bench.execute.deployed_accuracies", nan_outputs)
    code, text = _run_cli(_run(tmp_path, iters=2), capsys, caplog)
    assert code == 1 and "failed: the model's outputs are NaN/inf" in text
    runs = _runs(tmp_path)
    assert (
        _record(runs["first"])["status"] == "failed" and _record(runs["first"])["metrics"] is None
    )
    assert _record(runs["second"])["status"] == "done", "the other run goes on"


@pytest.mark.long
def test_fault_output_folder_deleted_mid_run(tmp_path):
    argv = _run(tmp_path, "--lock-timeout", "4", "--only", "first", iters=400)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    runs = _suite_layout(tmp_path).runs
    while time.monotonic() < deadline and not list(runs.glob("*/checkpoint.pt")):
        time.sleep(0.1)
    shutil.rmtree(tmp_path / "out")
    _, stderr = process.communicate(timeout=300)
    text = stderr.decode()
    assert process.returncode == 1, text[-3000:]
    assert "was removed while this worker held it" in text and "Traceback" not in text
    assert "taken over" not in text
