"""What a user does to a run, the same from the CLI and the app, whichever executor runs it.

A local run is cancelled and requeued in the queue DB (its worker or batch acts on it); a Slurm run through
Slurm (scancel; a resubmission that resumes from the last checkpoint), by sptui.slurm.executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sptui.errors import SptuiError
from sptui.queue import Job, Queue


def cancel(queue: Queue, root: Path, ref: int | str) -> Job:
    job = queue.get(ref)
    if job.executor == "slurm":
        from sptui.slurm import executor

        return executor.cancel(queue, root, job)
    return queue.cancel(job.id)


def requeue(queue: Queue, root: Path, ref: int | str, slurm_flags: dict[str, Any] | None = None) -> Job:
    """Queue a failed, cancelled or interrupted run again; `slurm_flags` change a Slurm run's options."""
    job = queue.get(ref)
    if job.executor == "slurm":
        from sptui.slurm import executor

        return executor.requeue(queue, root, job, slurm_flags)
    return queue.requeue(job.id)


def follow_slurm(queue: Queue, root: Path) -> str | None:
    """Bring Slurm runs' rows up to date (their jobs report into run folders, not the queue DB). Returns a note
    when there are Slurm runs to follow but Slurm cannot be asked from here."""
    if not any(j.executor == "slurm" for j in queue.list(states=["queued", "running"])):
        return None
    from sptui.slurm import executor, slurmctl

    why = slurmctl.available()
    if why is not None:
        return f"Slurm runs not updated: {why}"
    try:
        executor.reconcile(queue, root)
    except SptuiError as e:  # Slurm not answering: the rows stay as they were, the listing still works
        return f"Slurm runs not updated: {e}"
    return None
