"""`status.json`: how a job on a compute node reports its progress and its end.

Compute nodes never open the queue DB: SQLite's WAL mode does not work across machines on a network file
system, and the nodes see the artifacts folder over one. A Slurm job writes this small file into its run
folder instead (atomically: temp file, fsync, rename), every few seconds while it runs and once at its end.
The submitting side (`sptui ls`, `show`, `batch`, the app) reads it, asks Slurm (squeue, sacct) about jobs
that ended without writing their end, and brings the queue rows up to date (sptui.slurm.executor.reconcile).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sptui.runs import atomic_write_json

STATUS_FILE = "status.json"
FINAL = ("succeeded", "failed", "cancelled", "interrupted")


@dataclass
class Status:
    state: str = "running"  # running | requeued | succeeded | failed | cancelled | interrupted
    step: int | None = None
    total: int | None = None
    error: str | None = None
    slurm_job_id: str | None = None  # "123" or "123_4" (array task)
    host: str | None = None
    pid: int | None = None
    device: str | None = None
    attempts: int = 0  # starts of this job on a node (a requeue starts it again)
    started: float | None = None  # first start
    finished: float | None = None
    updated: float | None = None
    by: str = "job"  # who wrote it: "job" (the node) or "sptui" (the submitting side, for a job Slurm ended)
    slurm_state: str | None = None  # Slurm's word for the end, when sptui learnt it from Slurm (e.g. OUT_OF_MEMORY)
    phase: str | None = None  # what the job does past its steps ("drawing plots"), this start's: the queue's Job.phase
    phase_at: float | None = None  # when it said so

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def write(self, run_root: str | Path) -> None:
        self.updated = time.time()
        atomic_write_json(Path(run_root) / STATUS_FILE, asdict(self))


def read_status(run_root: str | Path) -> Status | None:
    """The run's status file, or None when there is none yet (or it cannot be read: it is rewritten soon)."""
    try:
        raw: dict[str, Any] = json.loads((Path(run_root) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in fields(Status)}
    return Status(**{k: v for k, v in raw.items() if k in known})
