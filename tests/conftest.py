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


# ---------------------------------------------------------------- a real Slurm cluster (tests/slurm_cluster.py)

@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) for the whole session,
    installed with apt-get when missing and we are root; skips with the reason where that cannot be done.
    Its folder is made under /tmp with mode 755 (munged runs as the munge user and must reach its socket)."""
    import shutil
    import tempfile

    from .slurm_cluster import ClusterUnavailable, SlurmCluster

    folder = tempfile.mkdtemp(prefix="sptui-slurm-")
    os.chmod(folder, 0o755)
    cluster = SlurmCluster(folder)
    try:
        cluster.start()
    except ClusterUnavailable as e:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no Slurm cluster here: {e}")
    yield cluster
    cluster.stop()
    assert cluster.stopped(), "a Slurm daemon outlived stop()"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The session's cluster, with SLURM_CONF set for this test (and its subprocesses); jobs left by the test
    are cancelled afterwards so the next test starts on an idle node."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    slurm_cluster.cancel_all()
