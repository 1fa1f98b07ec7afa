"""sptui/devices.py: the TF32 policy every job process applies (off unless $SPTUI_TF32=1), and host->device
copies (plain `.to` off CUDA, so the CPU path is unchanged)."""

from __future__ import annotations

import pytest
import torch

from sptui.devices import TF32_ENV, configure_cuda, set_tf32, tf32_enabled, to_device
from sptui.runner import configure_torch, describe_device


@pytest.fixture
def restore_tf32():
    before = tf32_enabled()
    yield
    set_tf32(before)


@pytest.mark.parametrize("value, expected", [("", False), ("0", False), ("1", True), ("on", True), ("no", False)])
def test_tf32_follows_the_environment_and_is_off_by_default(monkeypatch, restore_tf32, value, expected):
    set_tf32(not expected)  # start from the other setting, so the policy must set it
    monkeypatch.setenv(TF32_ENV, value)
    configure_cuda()
    assert tf32_enabled() is expected


def test_every_job_process_applies_the_policy(monkeypatch, restore_tf32):
    set_tf32(True)
    monkeypatch.delenv(TF32_ENV, raising=False)
    threads = torch.get_num_threads()
    try:
        configure_torch("cpu")  # what the runner calls before a job, on any device
    finally:
        torch.set_num_threads(threads)
    assert tf32_enabled() is False


def test_set_tf32_switches_both_ways(restore_tf32):
    set_tf32(True)
    assert tf32_enabled()
    set_tf32(False)
    assert not tf32_enabled()


def test_copies_off_cuda_are_plain_and_a_cpu_job_is_described_plainly():
    x = torch.arange(6.0).reshape(2, 3)
    y = to_device(x, "cpu")
    assert y.device.type == "cpu" and torch.equal(x, y) and not y.is_pinned()
    assert describe_device("cpu") == "cpu"
