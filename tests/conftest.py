"""Shared test set-up.

Torch runs with ONE thread in tests, on purpose: these machines have 2 cores, and two torch threads slow
down ~10x whenever another process (a worker, a second test) is busy on the other core.
"""

import os

os.environ.setdefault("SPTUI_TORCH_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A fresh artifacts root, also exported as SPTUI_ARTIFACTS for subprocesses."""
    root = tmp_path / "artifacts"
    root.mkdir()
    monkeypatch.setenv("SPTUI_ARTIFACTS", str(root))
    return root
