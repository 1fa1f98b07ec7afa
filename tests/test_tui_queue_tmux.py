"""The queue table in a real terminal (tmux) at the two sizes the app is laid out for: at 100 columns every
column up to the device fits on screen (nothing scrolls off to the right); at 80 the least useful columns give
way, long names lose their middle, and every run's state still shows."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from sptui.queue import Queue, own_identity
from sptui.spec import parse_text

from .test_e2e_tmux import Terminal

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

LONG = "addition-6-paper-seeds-with-a-rather-long-name"
NAMES = ["sparsity-sweep", LONG, "dropout", "wide"]


def make_queue(root):
    """Four runs: one running at 50% on cuda:1, one cancelled, one queued at priority 3, one queued."""
    text = "".join(f'[[job]]\nkind = "tms"\nname = "{n}"\nsteps = 50\nseed = {i}\n' for i, n in enumerate(NAMES))
    with Queue(root) as q:
        jobs = q.submit(parse_text(text, "jobs/queue.toml"), device="cuda:1")
        pid, start = own_identity()  # this test process owns the running job, so it is not found dead
        running = q.claim(pid, start)
        q.progress(running.id, 25, 50)
        q.cancel(jobs[2].id)
        q.set_priority(jobs[3].id, 3)


def queue_screen(tmp_path, size):
    root = tmp_path / "artifacts"
    make_queue(root)
    term = Terminal(f"sptui-width-{os.getpid()}-{size[0]}")
    command = (f"env -u COLUMNS -u LINES TERM=xterm-256color {sys.executable} -m sptui --artifacts {root} "
               "--device cpu")
    term.tmux("new-session", "-d", "-s", "e2e", "-x", str(size[0]), "-y", str(size[1]), "-c", str(tmp_path),
              f"{command}; sleep 60")
    try:
        screen = term.wait_for(lambda t: " runs (" in t and "? Keys" in t and "wide" in t, "the queue table", 30)
    finally:
        subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True)
    lines = screen.splitlines()
    header = next(i for i, line in enumerate(lines) if " id " in line and " state " in line)
    return lines[header], lines[header + 1: header + 1 + len(NAMES)]


def test_at_100_columns_every_column_to_the_device_fits(tmp_path):
    header, rows = queue_screen(tmp_path, (100, 30))
    assert header.split() == ["id", "name", "state", "progress", "elapsed", "eta", "kind", "prio", "device"], header
    assert len(header.rstrip()) <= 100
    for row, state in zip(rows, ["running", "queued", "cancelled", "queued"]):
        assert re.search(rf" {state} ", row) and row.rstrip().endswith("cuda:1"), rows  # the last column, whole
    assert "50% 25/50" in rows[0] and rows[3].split()[-2] == "3"  # progress, and the priority beside the device
    assert "addition-6…-long-name" in rows[1]  # a long name loses its middle


def test_at_80_columns_the_least_useful_columns_give_way_and_state_stays(tmp_path):
    header, rows = queue_screen(tmp_path, (80, 24))
    assert header.split()[:6] == ["id", "name", "state", "progress", "elapsed", "eta"], header
    assert "device" not in header and "started" not in header
    for row, state in zip(rows, ["running", "queued", "cancelled", "queued"]):
        assert re.search(rf" {state}( |$)", row), rows  # (tmux drops a line's trailing blanks)
    assert "50% 25/50" in rows[0]
    assert "sparsity-sweep" in rows[0] and "addition-6…-long-name" in rows[1]  # a long name loses its middle
