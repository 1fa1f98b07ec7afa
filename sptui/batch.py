"""`sptui batch FILE`: run job files in the foreground, no worker needed (for SSH and nohup).

Runs land in the same queue DB and run folders as worker runs, so `sptui ls` and the TUI show them.
On a TTY it shows rich progress per job; otherwise it prints plain lines at a modest rate.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sptui.errors import SptuiError
from sptui.listing import Cell, Column
from sptui.names import printable
from sptui.queue import Queue, own_identity
from sptui.runner import Outcome, QueueHooks, Terminated, execute, resolve_device
from sptui.runs import RunDir
from sptui.spec import JobSpec

PLAIN_EVERY_SECONDS = 10.0
WAIT_POLL_SECONDS = 1.0  # how often a batch looks again at the runs of others it waits for


@dataclass
class BatchResult:
    run_id: str
    id: int
    name: str
    kind: str
    state: str
    error: str | None
    seconds: float
    run_dir: str
    slurm_job_id: str | None = None  # --executor slurm

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _headline(values: dict[str, Any]) -> str:
    """A short 'loss=0.123 acc=0.98' from a metrics record (means of per-instance lists)."""
    parts: list[str] = []
    for key, value in values.items():
        if key in ("split",) or len(parts) >= 3:
            continue
        if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            value = sum(value) / len(value)
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{key}={value}")
    return " ".join(parts)


class BatchHooks(QueueHooks):
    """Queue progress (so `sptui ls` and the TUI follow the run) plus the console display."""

    def __init__(self, queue: Queue, job_id: int, display: Display):
        super().__init__(queue, job_id)
        self.display = display

    def progress(self, step: int, total: int | None, values: dict[str, Any]) -> None:
        super().progress(step, total, values)
        self.display.update(step, total, values)

    def info(self, message: str) -> None:
        self.display.info(message)


class Display:
    """Rich progress on a terminal, plain throttled lines elsewhere."""

    def __init__(self, console: Console, name: str):
        self.console = console
        self.name = printable(name)
        self.fancy = console.is_terminal
        self.last_plain = 0.0
        self.last_values = ""
        self.started = time.monotonic()
        if self.fancy:
            self.progress = Progress(
                TextColumn("{task.description}", markup=False, style="bold"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[values]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=console, transient=True,
            )
            self.task = self.progress.add_task(name, total=None, values="")
            self.progress.start()

    def update(self, step: int, total: int | None, values: dict[str, Any]) -> None:
        if values:
            self.last_values = _headline(values)
        if self.fancy:
            self.progress.update(self.task, completed=step, total=total, values=self.last_values)
            return
        now = time.monotonic()
        if now - self.last_plain >= PLAIN_EVERY_SECONDS:
            self.last_plain = now
            of = f"/{total}" if total else ""
            eta = ""
            if total and step:
                eta = f" eta {((now - self.started) / step * (total - step)):.0f}s"
            self.console.print(f"[{self.name}] step {step}{of} {self.last_values}{eta}", highlight=False, markup=False)

    def info(self, message: str) -> None:
        if message.startswith("==="):
            return
        first = printable(message.splitlines()[0]) if message else ""
        self.console.print(f"[{self.name}] {first}", highlight=False, markup=False)

    def close(self) -> None:
        if self.fancy:
            self.progress.stop()


def run_batch(root: Path, specs: list[JobSpec], source: str, device: str = "auto",
              console: Console | None = None, force: bool = False) -> list[BatchResult]:
    """Run a file's jobs here, one after another, in file order as far as their dependencies allow.

    The jobs are queued first, all together (executor "batch": no worker takes them), so references are
    resolved and pinned as `sptui submit` does, and `sptui ls` and the app show the whole file, waiting jobs
    included. A job that waits for a run of someone else's (a worker's, another batch's) is passed over until that
    run succeeds; one whose run failed or was cancelled ends with it, unrun. Ctrl-C or a hang-up stops the batch:
    the running job is interrupted (resumable) and the jobs not started are marked interrupted ("requeue to run it
    under a worker"); the results hold every job, those not started as interrupted with that error."""
    console = console or Console(stderr=True)
    device = resolve_device(device)
    queue = Queue(root)
    queue.recover()
    pid, start = own_identity()
    results: list[BatchResult] = []
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    pending: dict[int, JobSpec] = {}
    taking: int | None = None  # the job being claimed or run: a signal at any point leaves it interrupted
    try:
        notes: list[str] = []
        jobs = queue.submit(specs, source=source, force=force, executor="batch", device=device, owner_pid=pid,
                            notes=notes)
        for note in notes:
            console.print(f"note: {note}", highlight=False, markup=False)
        pending = {job.id: spec for job, spec in zip(jobs, specs)}
        said: set[tuple[int, str]] = set()
        while pending:
            ran = False
            for job_id in list(pending):
                taking = job_id
                job = queue.claim_own(job_id, pid, start)
                if job is None:
                    now = queue.get(job_id)
                    if now.state != "queued":  # cancelled, or ended with a run it needed: it never ran
                        results.append(BatchResult(now.run_id, now.id, now.name, now.kind, now.state, now.error, 0.0,
                                                   str(now.run_dir(root))))
                        console.print(f"{now.state} {now.run_id}: {printable(now.error)}", style="red", highlight=False,
                                      markup=False)
                        del pending[job_id]
                        ran = True
                    continue
                del pending[job_id]
                result = _run_one(queue, root, job, job.job_spec(), device, console)
                results.append(result)
                taking = None
                ran = True
                if result.state == "interrupted":
                    raise Terminated()  # Ctrl-C or a hang-up stops the whole batch, not just this job
                break  # back to the file's first pending job: one that waited may be ready now
            if pending and not ran:
                _say_waiting(queue, pending, said, console)
                time.sleep(WAIT_POLL_SECONDS)
    except (Terminated, KeyboardInterrupt):
        if taking is not None:  # stopped between its claim and its run: never left "running" without a process
            queue.finish(taking, "interrupted", exit_code=1, error="stopped by a signal; requeue to resume")
        if pending:
            queue.abandon(list(pending), "not started: sptui batch was stopped first; requeue it to run it under a "
                                         "worker")
            for job_id in pending:  # the summary names every job of the file, the unstarted ones too
                job = queue.get(job_id)
                results.append(BatchResult(job.run_id, job.id, job.name, job.kind, job.state, job.error, 0.0,
                                           str(job.run_dir(root))))
                console.print(f"{job.state} {job.run_id}: {printable(job.error)}", style="yellow", highlight=False,
                              markup=False)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        queue.close()
    return results


def _run_one(queue: Queue, root: Path, job, spec: JobSpec, device: str, console: Console) -> BatchResult:
    run = RunDir(job.run_dir(root))
    pid, _ = own_identity()
    started = time.monotonic()
    display = hooks = None
    try:  # from the claim on: a signal at any point ends this job as interrupted, never left "running"
        queue.set_process(job.id, pid, device, None)
        console.print(f"{job.run_id} {spec.kind} on {device} -> {run.root}", highlight=False, markup=False)
        display = Display(console, spec.name)
        hooks = BatchHooks(queue, job.id, display)
        outcome = execute(spec, run, device=device, hooks=hooks, artifacts_root=root)
    except Terminated:
        outcome = Outcome("interrupted", "stopped by a signal; requeue to resume")
    finally:
        if display is not None:
            display.close()
    said = f"{outcome.state} {job.run_id}" + (f": {printable(outcome.error)}" if outcome.error else "")
    try:
        if hooks is not None:
            hooks.flush()
        queue.finish(job.id, outcome.state, exit_code=0 if outcome.state == "succeeded" else 1, error=outcome.error)
    except SptuiError as e:  # a full disk: the run's state.json has it, if it could be written
        console.print(said, highlight=False, markup=False)
        raise SptuiError(f"{job.run_id} {outcome.state}, but its end could not be recorded in the queue: {e}") from None
    style = "green" if outcome.state == "succeeded" else "red"
    console.print(said, style=style, highlight=False, markup=False)
    return BatchResult(job.run_id, job.id, spec.name, spec.kind, outcome.state, outcome.error,
                       round(time.monotonic() - started, 2), str(run.root))


def _say_waiting(queue: Queue, pending: dict[int, JobSpec], said: set[tuple[int, str]], console: Console) -> None:
    """Once per job and run: which run of someone else's a job waits for (and what to do if nothing will run it)."""
    workers = None
    for job_id in pending:
        job = queue.get(job_id)
        for run_id, state in job.waiting_for:
            if (job_id, f"{run_id} {state}") in said:
                continue
            said.add((job_id, f"{run_id} {state}"))
            hint = ""
            if state == "interrupted":
                hint = f"; it waits for a requeue (sptui requeue {run_id}) and a worker, or stop with Ctrl-C"
            elif state == "queued":
                workers = queue.live_workers() if workers is None else workers
                if not workers and queue.get(run_id).executor == "worker":
                    hint = "; no worker is running: start one (sptui worker), or stop with Ctrl-C"
            console.print(f"[{printable(job.name)}] waiting for {run_id} ({state}){hint}", highlight=False, markup=False)


def _raise_terminated(signum, frame):
    raise Terminated()


def run_batch_slurm(root: Path, specs: list[JobSpec], source: str, flags: dict[str, Any], device: str = "auto",
                    console: Console | None = None, force: bool = False) -> list[BatchResult]:
    """`sptui batch --executor slurm`: submit every job to Slurm, then follow them here until all have ended.

    Ctrl-C or a hang-up stops the following, not the jobs: they keep running on Slurm (`sptui ls` follows
    them, `sptui cancel` stops them). Returns fewer results than specs in that case (exit status 130)."""
    from sptui.slurm import executor

    console = console or Console(stderr=True)
    queue = Queue(root)
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        notes: list[str] = []
        jobs = executor.submit(queue, root, specs, source, flags, force=force, device=device, notes=notes)
        for note in notes:
            console.print(f"note: {note}", highlight=False, markup=False)
        for job in jobs:
            console.print(f"{job.run_id} {job.kind} -> Slurm job {job.slurm_job_id}, {job.run_dir(root)}",
                          highlight=False, markup=False)
        started = time.monotonic()
        display = SlurmDisplay(console, jobs)
        try:
            final = executor.wait(queue, root, jobs, display.update)
        except (KeyboardInterrupt, Terminated):
            display.close()
            console.print("stopped following; the jobs keep running on Slurm: `sptui ls` follows them, "
                          "`sptui cancel RUN` stops one", style="yellow", highlight=False, markup=False)
            return []
        display.close()
        seconds = round(time.monotonic() - started, 2)
        results = [BatchResult(j.run_id, j.id, j.name, j.kind, j.state, j.error,
                               round(j.elapsed() or seconds, 2), str(j.run_dir(root)), j.slurm_job_id) for j in final]
        for r in results:
            style = "green" if r.state == "succeeded" else "red"
            console.print(f"{r.state} {r.run_id}" + (f": {r.error}" if r.error else ""), style=style, highlight=False,
                          markup=False)
        return results
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        queue.close()


class SlurmDisplay:
    """Progress of several Slurm jobs: one bar each on a terminal, a line per change of state elsewhere."""

    def __init__(self, console: Console, jobs):
        self.console = console
        self.fancy = console.is_terminal
        self.seen: dict[int, tuple] = {}
        self.last_plain = 0.0
        if self.fancy:
            self.progress = Progress(
                TextColumn("{task.description}", markup=False, style="bold"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[where]}", markup=False), TimeElapsedColumn(), console=console, transient=True)
            self.tasks = {j.id: self.progress.add_task(j.name, total=None, where="") for j in jobs}
            self.progress.start()

    def update(self, jobs) -> None:
        now = time.monotonic()
        every = now - self.last_plain >= PLAIN_EVERY_SECONDS
        for j in jobs:
            where = j.state if j.state not in ("queued", "running") else f"{j.state} ({(j.slurm_state or '').lower()})"
            if self.fancy:
                self.progress.update(self.tasks[j.id], completed=j.step or 0, total=j.total, where=where)
                continue
            key = (j.state, j.slurm_state)
            if self.seen.get(j.id) != key or (every and j.state == "running"):
                of = f" step {j.step or 0}/{j.total}" if j.total else ""
                self.console.print(f"[{j.name}] {where}{of}", highlight=False, markup=False)
                self.seen[j.id] = key
        if every:
            self.last_plain = now

    def close(self) -> None:
        if self.fancy:
            self.progress.stop()


def summary_rows(results: list[BatchResult]) -> tuple[list[Column], list[list[Cell]]]:
    """The summary `sptui batch` ends with, for `sptui.listing.print_table`: on a terminal the run folder is cut
    first; in a pipe every line is whole (the run folder is one field, not folded over four lines)."""
    columns = [Column("run id", shrink=True), Column("name", shrink=True), Column("kind"), Column("state"),
               Column("time", right=True), Column("run dir", shrink=True)]
    rows: list[list[Cell]] = [[r.run_id, printable(r.name), r.kind,
                               (r.state, {"succeeded": "green", "failed": "red"}.get(r.state, "yellow")),
                               f"{r.seconds:.1f}s", printable(r.run_dir)] for r in results]
    return columns, rows
