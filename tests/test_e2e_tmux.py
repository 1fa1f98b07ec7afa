"""End to end in a real terminal: tmux runs `sptui`, a job file is submitted through the picker, a worker
started from the UI trains it, and the screen shows the state change and the curve; the PNG export
writes a file; quitting says the worker goes on; stopping a running job asks first. At 100x30 and 80x24,
the sizes the app is laid out for. Waits poll `capture-pane` against a deadline; nothing sleeps for a
fixed time."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from sptui.queue import Queue

from .helpers import wait_for

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

JOB = """
[[job]]
kind = "tms"
name = "e2e"
steps = 1500
batch_size = 128
log_points = 15
[job.sweep]
feature_probability = [0.1, 0.01]
"""

BRAILLE = {chr(c) for c in range(0x2801, 0x2900)}  # plotext's braille marker: a drawn curve


LONG_JOB = """
[[job]]
kind = "tms"
name = "long"
steps = 400000
batch_size = 64
log_points = 4000
"""


class Terminal:
    def __init__(self, socket: str):
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "e2e", *keys)

    def wait_for(self, predicate, what: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{text}")
            time.sleep(0.2)

    def wait_text(self, needle: str, timeout: float = 60.0) -> str:
        return self.wait_for(lambda t: needle in t, repr(needle), timeout)


def plot_area(screen: str) -> str:
    """The plot's frame and contents (not the header, whose clock moves on its own)."""
    lines = screen.splitlines()
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return "\n".join(lines[top : bottom + 2])  # + the x tick labels


def start_sptui(tmp_path, job_text: str, name: str, size: tuple[int, int]) -> tuple[Terminal, object]:
    root = tmp_path / "artifacts"
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / f"{name}.toml").write_text(job_text)
    term = Terminal(f"sptui-e2e-{os.getpid()}-{name}")
    env = {"SPTUI_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    # env -u: a COLUMNS/LINES inherited from the test runner would override the pane's real size
    command = "env -u COLUMNS -u LINES " + " ".join(f"{k}={v}" for k, v in env.items()) + \
        f" {sys.executable} -m sptui --artifacts {root} --device cpu"
    # the pane stays after sptui exits, so what it prints at quit can be read
    term.tmux("new-session", "-d", "-s", "e2e", "-x", str(size[0]), "-y", str(size[1]), "-c", str(tmp_path),
              f"{command}; echo '[sptui exited]'; sleep 60")
    return term, root


def footer(screen: str) -> str:
    return screen.rstrip("\n").splitlines()[-1]


def wait_for_worker(root) -> int:
    with Queue(root) as q:
        return wait_for(q.live_workers, timeout=60, what="a live worker")[0]["pid"]


def test_submit_train_watch_and_export_in_tmux(tmp_path):
    term, root = start_sptui(tmp_path, JOB, "e2e", (100, 30))
    worker_pid = None
    try:
        # the footer is drawn after the header: wait for it, then it must lead with the key that lists the rest
        term.wait_for(lambda t: "no worker" in t and footer(t).startswith("? Keys"), "the queue's footer", timeout=30)
        term.keys("n")
        term.wait_text("e2e.toml: 1 job, 2 model instances")
        term.keys("Enter")
        term.wait_text("queued 1 job from e2e.toml")
        assert " queued " in term.screen()

        term.keys("w")  # the worker panel: none runs yet, s starts one
        term.wait_text("Start a worker on cpu (s)")
        term.keys("s")
        term.wait_text("started worker pid")
        worker_pid = wait_for_worker(root)
        screen = term.wait_text("succeeded", timeout=180)
        assert "100% 1500/1500" in screen  # the percentage is not cut at 100 columns

        term.keys("Enter")  # open the run
        # a drawn curve, and its legend below it naming both splits and both instances
        term.wait_for(lambda t: "loss" in t and "step" in t and len(BRAILLE & set(t)) > 5
                      and "test #0" in t and "train #1" in t, "a drawn curve and its legend")

        term.keys("e")
        screen = term.wait_text("saved ")
        # one line: the verb and the file name, the long folder cut in the middle
        assert "saved curves-loss.png and " in screen  # the file name first, then where it and the others went
        png = root / "runs" / "0001-e2e" / "plots" / "curves-loss.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        term.keys("Escape")  # sent apart from q: ESC then q in one write reads as alt+q
        term.wait_text(" run (")  # the queue screen's header: one run
        term.keys("q")
        screen = term.wait_text("[sptui exited]", timeout=20)
        # the worker started from the UI outlives it, and quitting says so (with its pid and log)
        assert f"worker pid {worker_pid} goes on running the queue" in screen and "worker.log" in screen
        with Queue(root) as q:
            assert [w["pid"] for w in q.live_workers()] == [worker_pid]
    finally:
        if worker_pid:
            os.kill(worker_pid, signal.SIGTERM)
        subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True)


def test_curve_grows_while_training_and_cancel_from_the_ui(tmp_path):
    term, root = start_sptui(tmp_path, LONG_JOB, "long", (80, 24))
    worker_pid = None
    try:
        term.wait_text("no worker")
        term.keys("n")
        term.wait_text("long.toml: 1 job,")  # the rest wraps at 80 columns
        term.keys("Enter")
        term.wait_text("queued 1 job ")
        term.keys("w")
        term.wait_text("Start a worker on cpu (s)")
        term.keys("s")
        worker_pid = wait_for_worker(root)
        screen = term.wait_for(lambda t: " running " in t and "% " in t, "a running job's progress", timeout=120)
        assert footer(screen).startswith("? Keys")  # at 80 columns the key that lists every key stays
        term.keys("Enter")
        first = term.wait_for(lambda t: "running" in t and len(BRAILLE & set(t)) > 5, "a curve while running")
        # the curve reaches further as steps are logged: the plot changes without any key pressed
        later = term.wait_for(lambda t: plot_area(t) != plot_area(first) and "running" in t,
                              "the curve to move", timeout=60)
        assert "train" in later and "test" in later
        term.keys("Escape")
        # the queue screen's own header (a toast on the run screen also says "worker pid"); waiting for it
        # also keeps "c" from following ESC so closely that the terminal reads the two as alt+c
        term.wait_text(" run (1 running)")
        term.keys("c")
        term.wait_text("Stop the running job 0001-long?")  # asks first; n keeps it running
        term.keys("n")
        term.wait_for(lambda t: "Stop the running" not in t, "the question to close")
        with Queue(root) as q:  # the job goes on: it reports further steps, and no stop was asked
            answered = q.get(1).step or 0
            wait_for(lambda: (q.get(1).step or 0) > answered, timeout=60, what="the job to report another step")
            assert q.get(1).state == "running" and not q.get(1).cancel_requested
        term.keys("c")
        term.wait_text("Stop the running job 0001-long?")
        term.keys("y")
        term.wait_text(" cancelled ", timeout=60)
        with Queue(root) as q:
            assert q.get(1).state == "cancelled"
    finally:
        if worker_pid:
            os.kill(worker_pid, signal.SIGTERM)
        subprocess.run(["tmux", "-L", term.socket, "kill-server"], capture_output=True)
