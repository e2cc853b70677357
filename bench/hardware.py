"""What this machine computes fast: the CPU's matrix instructions, its cores, the GPU.

The suite meets different CPUs from one day to the next (AVX2-only, AVX-512 with
BF16/VNNI, AMX), so nothing assumes one: the features are read from the operating
system (``/proc/cpuinfo`` flags on Linux), recorded with every number, and decide
which precisions ``precisions = "auto"`` measures (:func:`auto_precisions`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import dataclass

# /proc/cpuinfo flag -> the name Intel and AMD documentation use.
MATRIX_FEATURES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512F",
    "avx512_bf16": "AVX512-BF16",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_fp16": "AVX512-FP16",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}


@dataclass(frozen=True)
class Hardware:
    """The CPU model, its matrix features (keys of :data:`MATRIX_FEATURES`), the cores this
    process may use, and the GPU (None without CUDA)."""

    cpu: str
    features: frozenset[str]
    cores: int
    gpu: str | None = None

    @property
    def native_bf16(self) -> bool:
        """bf16 dot products in hardware (AVX512-BF16 or AMX-BF16), not emulated in fp32."""
        return bool(self.features & {"avx512_bf16", "amx_bf16"})

    @property
    def int8_dot_product(self) -> bool:
        """int8 dot-product instructions (VNNI or AMX-INT8), the fast path of int8 kernels."""
        return bool(self.features & {"avx512_vnni", "avx_vnni", "amx_int8"})

    def feature_names(self) -> list[str]:
        """The features present, in :data:`MATRIX_FEATURES` order, as documented names."""
        return [name for flag, name in MATRIX_FEATURES.items() if flag in self.features]

    def describe(self) -> str:
        """One line: ``CPU (N cores usable; AVX2, AVX-512F, ...)[, GPU]``."""
        features = ", ".join(self.feature_names()) or "no AVX2"
        text = f"{self.cpu} ({self.cores} cores usable; {features})"
        return f"{text}, GPU {self.gpu}" if self.gpu else text


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The matrix features among the ``flags`` of a ``/proc/cpuinfo`` text (first CPU)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split()) & MATRIX_FEATURES.keys()
    return frozenset()


def cpu_model(cpuinfo: str) -> str:
    """The ``model name`` of a ``/proc/cpuinfo`` text, else what :mod:`platform` says."""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a cluster job's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@functools.cache
def detect() -> Hardware:
    """This machine's :class:`Hardware` (read once per process)."""
    cpuinfo = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as file:
        cpuinfo = file.read()
    return Hardware(cpu_model(cpuinfo), cpu_flags(cpuinfo), available_cores(), _gpu())


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def auto_precisions(runtime: str, device: str, hardware: Hardware) -> tuple[str, ...]:
    """The precisions ``precisions = "auto"`` measures on ``runtime``: fp32 and every reduced
    precision that runs natively on this hardware.

    CPU:

    - ``torch``: bf16 with native bf16 (emulated bf16 is slower than fp32 and refused).
    - ``onnxruntime``: int8 with an int8 dot product (VNNI/AMX); without one its int8
      convolutions are not faster than fp32. No bf16 kernels.
    - ``openvino``: bf16 with native bf16; int8 always (its int8 kernels use VNNI/AMX and
      have an AVX2 path, the fastest int8 on x86 CPUs without them).

    CUDA: fp16 on ``torch``, fp16 and int8 on ``tensorrt``.
    """
    reduced: tuple[str, ...] = ()
    if device == "cuda":
        reduced = {"torch": ("fp16",), "tensorrt": ("fp16", "int8")}.get(runtime, ())
    elif runtime == "torch":
        reduced = ("bf16",) if hardware.native_bf16 else ()
    elif runtime == "onnxruntime":
        reduced = ("int8",) if hardware.int8_dot_product else ()
    elif runtime == "openvino":
        reduced = (("bf16",) if hardware.native_bf16 else ()) + ("int8",)
    return ("fp32", *reduced)
