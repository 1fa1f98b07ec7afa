"""Small helpers shared by the tests: running a kind in-process, tiny real job files, the CLI as a
subprocess, and waiting on conditions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sptui.context import Hooks

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


def start_worker(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "SPTUI_ARTIFACTS": str(root), "SPTUI_TORCH_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "sptui", "worker", "--device", "cpu", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


class CancelAfter(Hooks):
    """Hooks that ask to cancel once the job has reported progress at `step` or later: a job stopped part-way, as
    a user's cancel stops it, to test that it resumes from its last checkpoint."""

    def __init__(self, step: int):
        self.step, self.seen = step, 0

    def progress(self, step, total, values):
        self.seen = max(self.seen, step)

    def cancel_requested(self):
        return self.seen >= self.step


class KindRunError(AssertionError):
    """A job run by `run_kind` ended in another state than succeeded. str(): "<kind> job <state>: <error>"
    (the one line a user sees), so `pytest.raises(KindRunError, match="cancelled")` reads like the outcome."""

    def __init__(self, kind: str, state: str, error: str | None, run):
        super().__init__(f"{kind} job {state}: {error or ''}")
        self.state, self.error, self.run = state, error, run


def job_toml(kind: str, params: dict[str, Any] | None = None, sweep: dict[str, list] | None = None,
             name: str = "t") -> str:
    """The job file of one job: `params` directly in the [[job]] table, `sweep` in its [job.sweep]."""
    import tomli_w

    job: dict[str, Any] = {"kind": kind, "name": name, **(params or {})}
    if sweep:
        job["sweep"] = sweep
    return tomli_w.dumps({"job": [job]})


def run_kind(kind: str, params: dict[str, Any] | None, root: Path, *,
             sweep: dict[str, list] | None = None, name: str = "t", run_id: str | None = None,
             **options: Any):
    """Run one job of `kind` in this process the way a worker runs it: through the spec parser (validation,
    defaults, sweep expansion) and `runner.execute` (run folder, Context, the kind, its plots).

    The run lands in <root>/runs/<run_id or name>; running the same run id again resumes it. `options`:
    see `run_toml` (device, hooks, render). Returns the RunDir; raises KindRunError unless it succeeded."""
    return run_toml(job_toml(kind, params, sweep, name), root, run_id=run_id or name, **options)


def run_toml(text: str, root: Path, *, run_id: str | None = None, **options: Any):
    """`run_kind` for the text of a job file holding exactly one job (after sweep expansion)."""
    from sptui.spec import parse_text

    (spec,) = parse_text(text, "test.toml")
    return run_spec(spec, Path(root) / "runs" / (run_id or spec.name), artifacts_root=root, **options)


def run_spec(spec, folder: Path, *, artifacts_root: Path | None = None, device: str = "cpu", hooks=None,
             render: bool = False):
    """Run a parsed JobSpec into `folder` through `runner.execute`; the run's other-run lookups use
    `artifacts_root` (default: $SPTUI_ARTIFACTS, as the `artifacts` fixture sets it).

    `hooks`: a sptui.context.Hooks (progress, cancellation; asked on every check, not once a second);
    `render`: draw the PNGs too (the runner does after every real job; off here to keep tests quick)."""
    from sptui.runner import execute
    from sptui.runs import RunDir

    run = RunDir(folder)
    outcome = execute(spec, run, device=device, hooks=hooks, artifacts_root=artifacts_root, cancel_poll_seconds=0.0,
                      render=render)
    if outcome.state != "succeeded" or outcome.error:
        error = KindRunError(spec.kind, outcome.state, outcome.error, run)
        if run.log.exists():
            error.add_note("log.txt ends:\n" + "\n".join(run.log.read_text().splitlines()[-25:]))
        raise error
    return run


def mount_tmpfs(path: Path, size: str):
    """Mount a small tmpfs at `path` (made if needed) for a fault test; pytest.skip with the reason where this
    process may not mount (not root, no CAP_SYS_ADMIN, no `mount`). Returns a function that unmounts it."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")

    def unmount():
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)

    return unmount


def fill_disk(folder: Path) -> Path:
    """Fill the file system holding `folder` to its last byte with one file (returned: delete it to free)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler
