"""GPU readings for the terminal app's GPU strip: utilisation and memory per GPU, through NVML.

NVML (`nvidia-ml-py`, imported as `pynvml`) is optional: without it, or without an NVIDIA driver, the
reading is an empty list with a one-line reason, shown quietly as "no GPU". No Textual, no torch here:
a reading must be cheap enough to take every couple of seconds from a thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    util_percent: int | None  # None where the driver does not report it (some MIG / vGPU setups)
    memory_used: int  # bytes
    memory_total: int  # bytes

    @property
    def memory_fraction(self) -> float:
        return self.memory_used / self.memory_total if self.memory_total else 0.0


@dataclass(frozen=True)
class GpuStatus:
    gpus: list[GpuReading]
    reason: str | None = None  # why there are no readings ("nvidia-ml-py is not installed", ...)


_lock = threading.Lock()
_initialised = False


def _nvml():
    """The pynvml module, initialised once per process; raises ImportError or pynvml.NVMLError."""
    global _initialised
    import pynvml

    with _lock:
        if not _initialised:
            pynvml.nvmlInit()
            _initialised = True
    return pynvml


def read_gpus() -> GpuStatus:
    """One reading of every GPU NVML sees (not limited by CUDA_VISIBLE_DEVICES: the strip shows the machine)."""
    try:
        nvml = _nvml()
    except ImportError:
        return GpuStatus([], "nvidia-ml-py is not installed (pip install 'sptui[gpu]')")
    except Exception as e:  # pynvml.NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return GpuStatus([], f"NVML unavailable: {_reason(e)}")
    try:
        readings = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: int | None = int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:  # NVMLError_NotSupported on MIG instances
                util = None
            readings.append(GpuReading(i, name, util, int(memory.used), int(memory.total)))
    except Exception as e:
        return GpuStatus([], f"NVML error: {_reason(e)}")
    if not readings:
        return GpuStatus([], "NVML sees no GPU")
    return GpuStatus(readings)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def format_bytes(n: int) -> str:
    gib = n / 2**30
    return f"{gib:.1f}G" if gib >= 1 else f"{n / 2**20:.0f}M"
