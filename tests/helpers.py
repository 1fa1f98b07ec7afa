"""Small helpers shared by the spine tests: tiny real job files and waiting on conditions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wait_for(condition, timeout: float = 60.0, what: str = "condition", interval: float = 0.05):
    """Poll `condition()` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def tms_job(name: str = "tiny", steps: int = 300, seeds=(0,), extra: str = "", sweep: str = "", priority: int = 0,
            probability: float | None = 0.1, checkpoint_every: int = 50, log_points: int = 10) -> str:
    """A small but real toy-model job (5 features -> 2 hidden). `sweep` holds lines of its [job.sweep]."""
    seed_line = f"seed = {seeds[0]}" if len(seeds) == 1 else ""
    sweep_lines = sweep + (f"\nseed = {list(seeds)}" if len(seeds) > 1 else "")
    prob_line = f"feature_probability = {probability}" if probability is not None else ""
    return (
        f'[[job]]\nkind = "tms"\nname = "{name}"\npriority = {priority}\nn_features = 5\nn_hidden = 2\n'
        f"steps = {steps}\nbatch_size = 64\neval_batch = 256\nlog_points = {log_points}\ncheckpoint_every = {checkpoint_every}\n"
        f"{prob_line}\n{seed_line}\n{extra}\n" + (f"[job.sweep]\n{sweep_lines}\n" if sweep_lines.strip() else "")
    )


def sptui(*args: str, root: Path, check: bool = False, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPTUI_ARTIFACTS": str(root), "SPTUI_TORCH_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "sptui", *args], capture_output=True, text=True, env=env,
                            timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"sptui {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def start_worker(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SPTUI_ARTIFACTS": str(root), "SPTUI_TORCH_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sptui", "worker", "--device", "cpu", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
