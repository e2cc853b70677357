"""Settings shared by the latency benchmarks, and the machine facts saved with every run.

pytest-benchmark compares a run only with runs of the same machine id; the facts
added here (torch version, CPU and GPU names, thread count) are printed as a
warning when a saved run was measured differently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from bench.hardware import available_cores
from bench.profile import cpu_threads
from bench.profile.latency import device_name

THREADS_ENV = "LITESEG_BENCH_THREADS"


def benchmark_threads() -> int:
    """CPU threads of the benchmark run: ``$LITESEG_BENCH_THREADS`` or all available cores."""
    return int(os.environ.get(THREADS_ENV, available_cores()))


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the numbers depend on besides the code."""
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = benchmark_threads()
    machine_info["cpu_name"] = device_name(torch.device("cpu"))
    cuda = torch.cuda.is_available()
    machine_info["cuda_device"] = torch.cuda.get_device_name(0) if cuda else None
    machine_info["cuda"] = torch.version.cuda if cuda else None


@pytest.fixture(scope="session", autouse=True)
def fixed_threads() -> Iterator[int]:
    """Every benchmark runs with the same, recorded thread count."""
    with cpu_threads(benchmark_threads()) as threads:
        yield threads
