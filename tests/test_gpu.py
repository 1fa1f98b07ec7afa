"""GPU readings (sptui/gpu.py). No NVIDIA driver here, so NVML is replaced by a small stand-in module with
the same functions; the no-NVML path runs for real."""

import sys
import types

import pytest

from sptui import gpu
from sptui.tui.widgets.gpu import describe


class NotSupported(Exception):
    pass


def fake_nvml(devices, init_error=None):
    m = types.ModuleType("pynvml")

    def init():
        if init_error:
            raise init_error

    m.nvmlInit = init
    m.nvmlDeviceGetCount = lambda: len(devices)
    m.nvmlDeviceGetHandleByIndex = lambda i: devices[i]
    m.nvmlDeviceGetName = lambda h: h["name"]
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h["used"], total=h["total"])

    def util(h):
        if h["util"] is None:
            raise NotSupported("Not Supported")
        return types.SimpleNamespace(gpu=h["util"], memory=0)

    m.nvmlDeviceGetUtilizationRates = util
    return m


@pytest.fixture(autouse=True)
def fresh_nvml(monkeypatch):
    monkeypatch.setattr(gpu, "_initialised", False)


def test_no_nvml_library_is_an_empty_reading_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails, as where nvidia-ml-py is absent
    status = gpu.read_gpus()
    assert status.gpus == [] and "nvidia-ml-py" in status.reason
    assert describe(status).plain.startswith("no GPU")


def test_no_driver_is_an_empty_reading_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], init_error=RuntimeError("Driver Not Loaded\nmore")))
    status = gpu.read_gpus()
    assert status.gpus == [] and status.reason == "NVML unavailable: Driver Not Loaded"


def test_readings_per_gpu_including_one_without_utilisation(monkeypatch):
    devices = [
        {"name": b"NVIDIA H100 80GB HBM3", "used": 20 * 2**30, "total": 80 * 2**30, "util": 97},
        {"name": "NVIDIA A100 MIG 1g.10gb", "used": 512 * 2**20, "total": 10 * 2**30, "util": None},
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(devices))
    status = gpu.read_gpus()
    assert status.reason is None
    h100, mig = status.gpus
    assert (h100.index, h100.name, h100.util_percent) == (0, "NVIDIA H100 80GB HBM3", 97)
    assert h100.memory_fraction == pytest.approx(0.25)
    assert mig.util_percent is None and mig.name.startswith("NVIDIA A100")
    text = describe(status).plain
    assert "GPU0" in text and "97%" in text and "20.0G/80.0G" in text
    assert "GPU1" in text and "n/a" in text and "512M/10.0G" in text
