"""One saver for every figure: whole or not at all, the run's usual permissions, the figure closed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sptui.plots.save import save_figure  # noqa: E402
from sptui.runs import atomic_output, atomic_write_bytes, save_arrays  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PACKAGE = Path(__file__).resolve().parent.parent / "sptui"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for one test and put the old one back."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


def a_figure():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    ax.plot([0, 1], [1, 0])
    return fig


def test_a_png_is_written_whole_with_the_run_files_permissions(tmp_path, umask):
    umask(0o022)
    path = save_figure(a_figure(), tmp_path / "plots" / "a.png", dpi=80)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert mode(path) == 0o644  # like metrics.jsonl and log.txt, not mkstemp's private 0600
    assert plt.get_fignums() == []  # closed
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]
    umask(0o077)  # a user who keeps files private still gets that
    assert mode(save_figure(a_figure(), tmp_path / "b.png")) == 0o600


def test_every_atomic_file_follows_the_umask(tmp_path, umask):
    umask(0o022)
    atomic_write_bytes(tmp_path / "facts.json", b"{}")
    save_arrays(tmp_path / "x.safetensors", {"W": np.zeros(3, dtype=np.float32)})
    with atomic_output(tmp_path / "anim.gif") as partial:
        partial.write_bytes(b"GIF89a")
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {"facts.json": 0o644, "x.safetensors": 0o644,
                                                            "anim.gif": 0o644}


WRITE_PAST_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sptui.plots.save import save_figure

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
ax.imshow(np.random.default_rng(0).random((400, 400)))  # noise: a PNG far over the limit
try:
    save_figure(fig, sys.argv[1])
except OSError as e:
    print("failed:", e.strerror)
"""


def test_a_write_that_fails_half_way_leaves_the_old_png_and_no_temp_file(tmp_path):
    import subprocess
    import sys

    path = save_figure(a_figure(), tmp_path / "a.png")
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", WRITE_PAST_A_FILE_SIZE_LIMIT, str(path), str(4 * len(before))],
                            capture_output=True, text=True, timeout=120)
    assert "failed: File too large" in result.stdout, result.stdout + result.stderr
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_a_figure_that_fails_to_draw_is_closed_and_leaves_the_old_png(tmp_path):
    path = save_figure(a_figure(), tmp_path / "a.png")
    before = path.read_bytes()
    fig = a_figure()

    class Broken(matplotlib.artist.Artist):
        def draw(self, renderer):
            raise ValueError("a bad value half-way through drawing")

    fig.add_artist(Broken())
    with pytest.raises(ValueError, match="half-way"):
        save_figure(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert plt.get_fignums() == []


def test_a_gif_writer_that_fails_leaves_nothing_half_written(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "anim.gif") as partial:
        partial.write_bytes(b"GIF8")
        raise RuntimeError("killed mid-animation")
    assert list(tmp_path.iterdir()) == []


def test_figures_are_saved_only_through_save_figure():
    """A new plot that calls `savefig` itself would skip atomicity and permissions: none does."""
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if ".savefig(" in p.read_text() and p.name != "save.py"]
    assert offenders == []
