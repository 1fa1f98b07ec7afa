"""What runs on a compute node: one sptui job, or one slice of a split sweep, in its run folder.

submitit pickles the `SlurmTask` it is given (and its return value) to carry it to the node and back. So
that pickle is three strings of sptui's own: the artifacts root, the run folder, the device. Everything
else (the spec, parameters, checkpoints, results) is read from and written to the run folder as for a local
run, by the same `sptui.runner.execute`. Progress and the end go to the run folder's status.json, never to
the queue DB (sptui.slurm.status says why).

Signals (submitit installs the handlers): Slurm sends USR2 `signal_delay_s` before the time limit and on
preemption; submitit then calls `checkpoint()`, which resubmits this same task, and requeues the job. The
kind's own last checkpoint is what the requeued job resumes from (the work since it is done again, which
gives the same result: resume is exact). SIGTERM (scancel, `scontrol requeue`, preemption) is only logged:
Slurm kills the job KillWait seconds later, and a requeued job resumes the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from sptui.context import Hooks
from sptui.runs import RunDir
from sptui.slurm.status import Status, read_status


def slurm_job_id() -> str | None:
    """This job's Slurm id as squeue shows it: "123", or "123_4" for task 4 of array 123."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


class StatusHooks(Hooks):
    """Progress into status.json, at most every WRITE_EVERY seconds (a network file system is not a DB)."""

    WRITE_EVERY = 5.0

    def __init__(self, run_root: Path, status: Status):
        self.run_root = run_root
        self.status = status
        self._last = 0.0

    def progress(self, step: int, total: int | None, values: dict[str, Any]) -> None:
        self.status.step, self.status.total = step, total
        now = time.monotonic()
        if now - self._last >= self.WRITE_EVERY:
            self._last = now
            self.status.write(self.run_root)

    def phase(self, phase: str) -> None:
        """Past its steps (the runner's "drawing plots"): written at once, with the last steps' progress, so the
        submitting side shows the phase and its duration in place of an ETA (as QueueHooks.phase does locally)."""
        self.status.phase, self.status.phase_at = phase, time.time()
        self._last = time.monotonic()
        self.status.write(self.run_root)

    def beat(self) -> None:
        self.status.write(self.run_root)  # `updated` is what the submitting side reads as the job's last report

    # cancel_requested stays False: a Slurm job is cancelled by scancel, which stops its process


class SlurmTask:
    """The callable submitit runs on the node. Plain strings only: this is what gets pickled."""

    def __init__(self, root: str, run: str, device: str = "auto", signal_delay_s: int = 120):
        self.root = str(root)
        self.run = str(run)
        self.device = device
        self.signal_delay_s = int(signal_delay_s)  # how long before its time limit Slurm signals the job

    def __repr__(self) -> str:
        return f"SlurmTask({self.run!r})"

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit calls this on USR2 (time limit near, or preemption): resubmit the same task. It resumes from
        the kind's last checkpoint in the run folder."""
        import submitit

        from sptui.checkpoint import step_files

        run = RunDir(self.run)
        saved = list(step_files(run.checkpoints))
        left = _time_left_seconds()
        if not saved and left is not None and left <= self.signal_delay_s + 60:
            # the time limit, and nothing to resume from: running it again would only end the same way
            _log(run, f"Slurm signalled the time limit ({left:.0f} s left) before the job saved a checkpoint: not requeued")
            return None
        status = read_status(run.root) or Status()
        status.state = "requeued"
        status.write(run.root)
        _log(run, "Slurm signalled the job (time limit near, or preemption): requeued; it resumes from "
                  + (f"its checkpoint at step {saved[-1]}" if saved else "the start (no checkpoint yet)"))
        return submitit.helpers.DelayedSubmission(SlurmTask(self.root, self.run, self.device, self.signal_delay_s))

    def __call__(self) -> dict[str, str | None]:
        from sptui.runner import Outcome, execute, one_line, resolve_device
        from sptui.slurm import split

        run = RunDir(self.run)
        is_slice = run.root.parent.name == split.PARTS  # plots are drawn once, from the joined slices
        if "SPTUI_TORCH_THREADS" not in os.environ and os.environ.get("SLURM_CPUS_PER_TASK"):
            os.environ["SPTUI_TORCH_THREADS"] = os.environ["SLURM_CPUS_PER_TASK"]  # the CPUs Slurm gave the job
        previous = read_status(run.root)
        status = Status(state="running", slurm_job_id=slurm_job_id(), host=socket.gethostname(), pid=os.getpid(),
                        attempts=(previous.attempts if previous else 0) + 1,
                        started=previous.started if previous and previous.started else time.time(),
                        step=previous.step if previous else None, total=previous.total if previous else None)
        signal.signal(signal.SIGTERM, _logging_handler(run, signal.getsignal(signal.SIGTERM)))
        with _output_into(run.log):
            try:
                device = resolve_device(self.device)
                status.device = device
                status.write(run.root)
                outcome = execute(run.spec(), run, device=device, hooks=StatusHooks(run.root, status),
                                  artifacts_root=self.root, render=not is_slice)
            except Exception as e:  # a run folder or spec that cannot be read, a device that is not there
                outcome = Outcome("failed", one_line(e))
                _log(run, f"=== failed before the job started: {outcome.error}")
        if outcome.error and "Job not requeued because" in outcome.error:  # submitit, at the time limit
            outcome = Outcome("failed", _not_requeued_in_words(outcome.error))
            _log(run, f"=== failed: {outcome.error}")
        status.state, status.error, status.finished = outcome.state, outcome.error, time.time()
        status.write(run.root)
        if is_slice:  # the last slice to end joins them
            split.try_join(run.root.parent.parent)
        if outcome.state in ("failed", "cancelled"):
            # a non-zero exit: Slurm calls the job FAILED, so jobs submitted --dependency=afterok on it never start
            # (its end in words is in status.json, which is what sptui reads). An interrupted job is left to
            # submitit's requeue, which keeps its Slurm id: what waits for it keeps waiting.
            sys.exit(1)
        return {"state": outcome.state, "error": outcome.error}


def _not_requeued_in_words(error: str) -> str:
    if "checkpoint function returned None" in error:
        return ("stopped at Slurm's time limit with no checkpoint to resume from; give it more time (time, --time) "
                "and requeue")
    return ("reached Slurm's time limit once more than max_requeues allows; its last checkpoint is kept: "
            "`sptui requeue RUN --time LONGER` resumes from it")


def _time_left_seconds() -> float | None:
    """Seconds until this job's time limit, from squeue (None when it cannot tell, e.g. no limit)."""
    import subprocess

    from sptui.slurm.slurmctl import duration_seconds

    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return duration_seconds(out.strip())


def _log(run: RunDir, message: str) -> None:
    with open(run.log, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def _logging_handler(run: RunDir, chained):
    def handler(signum, frame):
        _log(run, f"Slurm sent {signal.Signals(signum).name} (scancel, scontrol requeue, preemption or the time "
                  "limit); the job stops within KillWait seconds unless Slurm takes it back")
        if callable(chained):
            chained(signum, frame)

    return handler


class _output_into:
    """Send this process's stdout and stderr (prints, warnings, tracebacks) to the run's log.txt, as the local
    worker does; Slurm's own output file keeps only what happens before and after."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        return False
