"""Asking Slurm about jobs and nodes: squeue, sacct (or scontrol where there is no accounting), scancel,
partitions. Every call is bounded by a timeout; nothing here waits on a job.

Slurm's job states, and what sptui makes of them:

    PENDING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED, RESV_DEL_HOLD, CONFIGURING  -> queued (waiting in Slurm)
    RUNNING, COMPLETING, SIGNALING, STAGE_OUT, SUSPENDED, RESIZING           -> running
    COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL,
    PREEMPTED, BOOT_FAIL, DEADLINE, REVOKED, SPECIAL_EXIT                     -> ended (sptui reads the run's
                                                                                status.json; `ended_in_words`
                                                                                says what Slurm did when the job
                                                                                could not record its own end)
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

from sptui.errors import SptuiError

CALL_TIMEOUT = 20.0  # seconds a Slurm command may take (a busy slurmctld answers within a few)

WAITING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING")
RUNNING = ("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "RESIZING", "STOPPED")


@dataclass
class SlurmJob:
    """One line of squeue or sacct about one job (or one array task)."""

    job_id: str  # "123" or "123_4"
    state: str  # Slurm's word, e.g. RUNNING, OUT_OF_MEMORY
    reason: str = ""
    node: str = ""
    exit_code: str = ""  # "0:0" = status:signal (sacct)
    elapsed: str = ""
    time_limit: str = ""
    end: float | None = None  # when it ended (epoch seconds), for jobs that did


    @property
    def waiting(self) -> bool:
        return self.state in WAITING

    @property
    def running(self) -> bool:
        return self.state in RUNNING


def available() -> str | None:
    """None when this machine can submit to Slurm, else why not (one line)."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "srun") if shutil.which(c) is None]
    if missing:
        return (f"Slurm's commands are not on PATH here ({', '.join(missing)} missing): run sptui on a machine "
                "that submits to your cluster (a login node)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "the Slurm executor needs submitit: pip install 'sptui[slurm]'"
    return None


def run(argv: list[str], timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SptuiError(f"{argv[0]}: not found on PATH (is this a Slurm login node?)") from None
    except subprocess.TimeoutExpired:
        raise SptuiError(f"{' '.join(argv[:2])}: no answer from Slurm within {timeout:.0f}s (is slurmctld up?)") from None


def first_line(text: str) -> str:
    """The line of a command's output that says most: its last error line (srun's closing "task 0: Exited with
    exit code N" repeats what the state says), else its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    telling = [line for line in lines if "error" in line.lower() and not _SRUN_EXIT.search(line)]
    return (telling or lines or [""])[-1]


_SRUN_EXIT = re.compile(r"task \d+: Exited with exit code|Terminating StepId")


# ---------------------------------------------------------------- live jobs

def live_jobs() -> dict[str, SlurmJob]:
    """Every job of this user that Slurm still holds (pending, running, completing), one entry per array task."""
    result = run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%r|%N|%M|%l"])
    if result.returncode != 0:
        raise SptuiError(f"squeue failed: {first_line(result.stderr) or result.returncode}")
    jobs = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 6:
            continue
        job_id, state, reason, node, elapsed, limit = parts[:6]
        jobs[job_id] = SlurmJob(job_id, state, "" if reason in ("None", "(null)") else reason, node, "", elapsed, limit)
    return jobs


def array_of(job_id: str) -> str:
    return job_id.split("_", 1)[0]


# ---------------------------------------------------------------- ended jobs

def ended_jobs(job_ids: list[str]) -> dict[str, SlurmJob]:
    """How jobs that left squeue ended: from sacct (accounting), else from scontrol while slurmctld still remembers
    them (MinJobAge, 300 s by default). Jobs neither knows are missing from the answer."""
    if not job_ids:
        return {}
    found = _sacct(job_ids)
    for job_id in job_ids:
        if job_id not in found:
            job = _scontrol(job_id)
            if job is not None:
                found[job_id] = job
    return found


def _sacct(job_ids: list[str]) -> dict[str, SlurmJob]:
    if shutil.which("sacct") is None:
        return {}
    arrays = sorted({array_of(j) for j in job_ids})
    result = run(["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o",
                  "JobID,State,Reason,NodeList,ExitCode,Elapsed,Timelimit,End"])
    if result.returncode != 0:  # no accounting storage on this cluster: scontrol is asked instead
        return {}
    found: dict[str, SlurmJob] = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 8 or "." in parts[0]:
            continue
        job_id, state, reason, node, exit_code, elapsed, limit, end = parts[:8]
        state = state.split()[0]  # "CANCELLED by 0"
        found[job_id] = SlurmJob(job_id, state, "" if reason == "None" else reason, node, exit_code, elapsed, limit,
                                 _epoch(end))
    return {j: found[j] for j in job_ids if j in found}


def _scontrol(job_id: str) -> SlurmJob | None:
    result = run(["scontrol", "show", "job", "-o", job_id])
    if result.returncode != 0 or "JobState=" not in result.stdout:
        return None
    fields = dict(tok.split("=", 1) for tok in result.stdout.split() if "=" in tok)
    return SlurmJob(job_id, fields.get("JobState", "UNKNOWN"), fields.get("Reason", "").replace("None", ""),
                    fields.get("NodeList", "").replace("(null)", ""), fields.get("ExitCode", ""),
                    fields.get("RunTime", ""), fields.get("TimeLimit", ""), _epoch(fields.get("EndTime", "")))


def duration_seconds(text: str) -> float | None:
    """Slurm's [D-]HH:MM:SS, MM:SS (squeue %L, sacct Elapsed) in seconds; None for UNLIMITED, INVALID, ..."""
    days, _, rest = text.strip().rpartition("-")
    try:
        parts = [int(p) for p in rest.split(":")]
        total = int(days or 0) * 86400
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3:
        return None
    while len(parts) < 3:
        parts.insert(0, 0)
    return total + parts[0] * 3600 + parts[1] * 60 + parts[2]


def _epoch(text: str) -> float | None:
    """Slurm's local timestamp (2026-11-27T09:15:30) as epoch seconds; None for Unknown/None."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def ended_in_words(job: SlurmJob, log_hint: str = "", checkpoint_step: int | None = None) -> tuple[str, str]:
    """(sptui state, one line) for a job that Slurm ended without the job recording its own end.
    `checkpoint_step`: the step of the job's last checkpoint, None when it has none."""
    node = f" on {job.node}" if job.node and job.node not in ("None assigned", "") else ""
    state = job.state
    if state == "OUT_OF_MEMORY":
        return "failed", f"Slurm killed the job{node}: out of memory; ask for more (mem_gb, --mem-gb) and requeue"
    if state == "TIMEOUT":
        limit = f" ({job.time_limit})" if job.time_limit else ""
        if checkpoint_step is None:
            return "failed", (f"Slurm stopped the job{node} at its time limit{limit} with no checkpoint to resume from; "
                              "give it more time (time, --time) and requeue")
        return "failed", (f"Slurm stopped the job{node} at its time limit{limit}; `sptui requeue` resumes from its "
                          f"checkpoint at step {checkpoint_step}")
    if state == "NODE_FAIL":
        return "interrupted", f"the node{node.replace(' on', '')} failed under the job; requeue to resume from its last checkpoint"
    if state == "PREEMPTED":
        return "interrupted", f"Slurm preempted the job{node}; requeue to resume from its last checkpoint"
    if state == "BOOT_FAIL":
        return "interrupted", f"the node{node.replace(' on', '')} failed to boot for the job; requeue it"
    if state == "DEADLINE":
        return "failed", "Slurm ended the job at its deadline"
    if state == "CANCELLED":
        return "cancelled", f"cancelled in Slurm (scancel){node}"
    if state == "COMPLETED":
        return "failed", f"the job's process ended{node} without recording a result" + log_hint
    status = job.exit_code.split(":")[0] if job.exit_code else "?"
    return "failed", (f"the job failed in Slurm ({state}, exit status {status}){node} before sptui could record a "
                      f"result" + log_hint)


# ---------------------------------------------------------------- actions

def cancel(job_ids: list[str]) -> None:
    if not job_ids:
        return
    result = run(["scancel", *job_ids])
    if result.returncode != 0 and "already completing or completed" not in result.stderr \
            and "Invalid job id" not in result.stderr:
        raise SptuiError(f"scancel {' '.join(job_ids)} failed: {first_line(result.stderr)}")


def test_only(script_text: str, folder) -> str | None:
    """Ask Slurm whether it would accept this sbatch script (sbatch --test-only: nothing is submitted).
    None when it would, else Slurm's reason."""
    path = folder / f".test-only-{os.getpid()}.sh"
    path.write_text(script_text)
    try:
        result = run(["sbatch", "--test-only", str(path)])
    finally:
        path.unlink(missing_ok=True)
    if result.returncode == 0:
        return None
    return first_line(result.stderr).replace("sbatch: error: ", "") or f"sbatch --test-only exited {result.returncode}"


# ---------------------------------------------------------------- partitions and nodes

def partition_nodes(partition: str | None) -> tuple[str, list[str]]:
    """(partition name, its node names); the default partition when `partition` is None."""
    result = run(["scontrol", "show", "partition", "-o"] + ([partition] if partition else []))
    if result.returncode != 0:
        reason = first_line(result.stderr)
        if partition:
            raise SptuiError(f"partition {partition}: {reason or 'unknown to Slurm'}")
        raise SptuiError(f"cannot ask Slurm for its default partition ({reason or 'scontrol failed'}): is this a "
                         "Slurm login node, with slurmctld up?")
    for line in result.stdout.splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if partition is None and fields.get("Default") != "YES":
            continue
        expr = fields.get("Nodes", "")
        if not expr or expr == "(null)":
            return fields.get("PartitionName", partition or "?"), []
        names = run(["scontrol", "show", "hostnames", expr])
        return fields.get("PartitionName", partition or "?"), names.stdout.split()
    raise SptuiError("this cluster has no default partition: name one (partition, --partition)")
