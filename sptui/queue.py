"""The job queue: one SQLite file, one `jobs` table holding a state machine.

    queued -> running -> succeeded | failed | cancelled | interrupted
    failed | cancelled | interrupted --requeue--> queued

WAL mode with synchronous=FULL, so a committed state change survives a crash or power loss. Every process
(CLI, worker, job child, batch, TUI) opens its own connection; none is carried across fork().
"""

from __future__ import annotations

import builtins
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sptui.config import queue_path, runs_dir
from sptui.errors import SptuiError
from sptui.runs import known_runs, resolve_run_id, run_folder_in, slug
from sptui.spec import JobSpec

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
REQUEUEABLE = ("failed", "cancelled", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT UNIQUE,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    spec             TEXT NOT NULL,      -- JobSpec JSON
    spec_hash        TEXT NOT NULL,
    source           TEXT,              -- the job file it came from
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    executor         TEXT NOT NULL DEFAULT 'worker',   -- who runs it: worker | batch | slurm
    device_request   TEXT,              -- --device given at submit, else the worker's choice
    created          REAL NOT NULL,
    started          REAL,
    finished         REAL,
    heartbeat        REAL,              -- the job's last report (claim, progress): `Job.quiet_for`
    host             TEXT,
    owner_pid        INTEGER,           -- the worker or batch process supervising the job
    owner_start      TEXT,              -- its start time, so a reused pid is not mistaken for it
    pid              INTEGER,           -- the job's own process (its process group leader)
    pid_start        TEXT,
    device           TEXT,              -- where it ran: cpu, cuda:0 (GPU 1), ...
    gpu              TEXT,
    step             INTEGER,
    total            INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    exit_code        INTEGER,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    slurm_job_id     TEXT,              -- executor slurm: the job ("123"), array task ("123_4") or split array ("123")
    slurm_state      TEXT               -- what Slurm last said: PENDING, RUNNING, COMPLETING, ... (sptui.slurm)
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs(state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_hash ON jobs(spec_hash);
CREATE TABLE IF NOT EXISTS workers (
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    pid_start   TEXT,
    started     REAL NOT NULL,
    heartbeat   REAL NOT NULL,          -- every 2 s from its loop: a stopped or hung worker falls silent
    device      TEXT,
    slots       INTEGER,
    PRIMARY KEY (host, pid)
);
"""

JOB_COLUMNS = (
    "id, run_id, name, kind, spec, spec_hash, source, priority, state, executor, device_request, created, "
    "started, finished, heartbeat, host, owner_pid, owner_start, pid, pid_start, device, gpu, step, total, "
    "attempts, exit_code, error, cancel_requested, slurm_job_id, slurm_state"
)
# columns added after the first release: (name, SQL type) added to older queue.db files when opened
MIGRATIONS = (("slurm_job_id", "TEXT"), ("slurm_state", "TEXT"))


@dataclass
class Job:
    id: int
    run_id: str
    name: str
    kind: str
    spec: str
    spec_hash: str
    source: str | None
    priority: int
    state: str
    executor: str
    device_request: str | None
    created: float
    started: float | None
    finished: float | None
    heartbeat: float | None
    host: str | None
    owner_pid: int | None
    owner_start: str | None
    pid: int | None
    pid_start: str | None
    device: str | None
    gpu: str | None
    step: int | None
    total: int | None
    attempts: int
    exit_code: int | None
    error: str | None
    cancel_requested: int
    slurm_job_id: str | None = None
    slurm_state: str | None = None

    def job_spec(self) -> JobSpec:
        return JobSpec.from_json(self.spec)

    def run_dir(self, root: Path) -> Path:
        return runs_dir(root) / self.run_id

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else (now or time.time())
        return max(0.0, end - self.started)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the rate so far (None until there is progress to go by)."""
        elapsed = self.elapsed(now)
        if self.state != "running" or not elapsed or not self.step or not self.total:
            return None
        return elapsed / self.step * max(0, self.total - self.step)

    def quiet_for(self, now: float | None = None) -> float | None:
        """Seconds since a running job last reported (claimed, or wrote progress), else None. A job reports
        at most once a second while it makes progress; a long silence means a long step, or a hang."""
        if self.state != "running" or self.heartbeat is None:
            return None
        return max(0.0, (now or time.time()) - self.heartbeat)

    def as_dict(self, root: Path) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in JOB_COLUMNS.replace(" ", "").split(",") if k != "spec"}
        d["run_dir"] = str(self.run_dir(root))
        d["elapsed"] = self.elapsed()
        d["eta"] = self.eta()
        d["quiet_for"] = self.quiet_for()
        return d


# ---------------------------------------------------------------- process identity

def process_start(pid: int) -> str | None:
    """A process's start time (seconds since the epoch, as text), or None if it is gone or a zombie.

    With the pid, it names one process: a pid the system has since given to another process has another
    start time, so it is not mistaken for the first (`is_alive`). psutil reads it on Linux, macOS and BSD.
    """
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):  # dead, only waiting to be reaped
            return None
        return f"{process.create_time():.3f}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):  # ValueError: a negative pid
        return None


def is_alive(pid: int | None, start: str | None) -> bool:
    """Whether the process recorded as (pid, start) still runs: not a zombie, and not a reused pid."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if start is None or start.isdigit():  # unknown, or recorded in clock ticks by sptui before psutil
            return True
        return f"{process.create_time():.3f}" == start
    except psutil.NoSuchProcess:  # gone (or a zombie, where the system says so this way)
        return False
    except psutil.AccessDenied:  # it exists but can't be inspected (another user's): not ours to declare dead
        return True
    except ValueError:  # a negative pid
        return False


HOST = socket.gethostname()
WORKER_BEAT_SECONDS = 2.0  # how often a worker writes its heartbeat
WORKER_SILENT_SECONDS = 30.0  # a worker silent this long is not responding (15 missed beats)
JOB_QUIET_SECONDS = 60.0  # the app points out a running job that has not reported for this long


# ---------------------------------------------------------------- the queue

class Queue:
    """All reads and writes of the queue DB. Cheap to create; one per process (or per thread)."""

    def __init__(self, root: str | Path, timeout: float = 30.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        runs_dir(self.root).mkdir(exist_ok=True)
        self.path = queue_path(self.root)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
                self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = FULL")
                self.db.executescript(SCHEMA)
                self._migrate()
                break
            except sqlite3.OperationalError as e:
                # switching a new file to WAL takes an exclusive lock without waiting on the busy handler:
                # processes opening a fresh queue at the same moment retry briefly instead of failing
                self.db.close()
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise SptuiError(f"{self.path}: cannot open the queue database ({e})") from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:
                raise SptuiError(f"{self.path}: cannot open the queue database ({e})") from None

    def _migrate(self) -> None:
        """Add the columns a queue.db made by an older sptui lacks (ALTER TABLE ... ADD COLUMN keeps every row)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
        for name, sql_type in MIGRATIONS:
            if name not in have:
                try:
                    self.db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}")
                except sqlite3.OperationalError as e:
                    if "duplicate column" not in str(e):  # another process added it at the same moment
                        raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------- transactions
    def _write(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        """One statement in its own IMMEDIATE transaction; RETURNING rows are read in full (fetchall)
        before COMMIT, which is what keeps concurrent writers from failing with 'database is locked'."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute(sql, tuple(args)).fetchall()
            self.db.execute("COMMIT")
            return rows
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[Job]:
        return [Job(*r) for r in self.db.execute(sql, tuple(args)).fetchall()]

    # -------------------------------------------------------- submit
    def submit(self, specs: list[JobSpec], source: str | None = None, force: bool = False,
               device: str | None = None, executor: str = "worker", state: str = "queued",
               owner_pid: int | None = None) -> list[Job]:
        """Queue specs all together or none. Without `force`, a spec already in the queue is refused.

        `state="running"` with `owner_pid` inserts a job already taken by a foreground process (batch),
        so no worker can claim it in between."""
        assert state == "queued" or owner_pid is not None
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if not force:
                for spec in specs:
                    dup = self.db.execute(
                        "SELECT run_id, state FROM jobs WHERE spec_hash = ? ORDER BY id DESC LIMIT 1", (spec.digest(),)
                    ).fetchone()
                    if dup:
                        raise SptuiError(
                            f'job "{spec.name}" is already in the queue as {dup[0]} ({dup[1]}); '
                            f"use --force to queue it again, or `sptui requeue {dup[0]}`"
                        )
            ids = []
            for spec in specs:
                (job_id,) = self.db.execute(
                    "INSERT INTO jobs (run_id, name, kind, spec, spec_hash, source, priority, state, executor, "
                    "device_request, created) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (spec.name, spec.kind, spec.to_json(), spec.digest(), source, spec.priority, state, executor,
                     device, now),
                ).fetchall()[0]
                self.db.execute("UPDATE jobs SET run_id = ? WHERE id = ?", (make_run_id(job_id, spec.name), job_id))
                if owner_pid is not None:
                    self.db.execute(
                        "UPDATE jobs SET started = ?, heartbeat = ?, host = ?, owner_pid = ?, owner_start = ?, "
                        "attempts = 1 WHERE id = ?", (now, now, HOST, owner_pid, process_start(owner_pid), job_id))
                ids.append(job_id)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return [self.get(i) for i in ids]

    # -------------------------------------------------------- reads
    def get(self, ref: int | str) -> Job:
        """A job by its id (an int), or the run a user's word names, by `sptui.runs.RUN_REFERENCE_ORDER`
        (the same order every command and `find_run` follow)."""
        if isinstance(ref, int):
            rows = self._rows(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (ref,))
            if not rows:
                raise SptuiError(f"no job {ref} in {self.path}")
            return rows[0]
        text = str(ref).strip()
        folder = run_folder_in(text) if text else None
        if folder is not None:
            run_id = folder.name
            if folder.parent != runs_dir(self.root).resolve():
                raise SptuiError(f"{folder} is not a run of {self.root} (use --artifacts {folder.parent.parent})")
        else:
            run_id = resolve_run_id(text, known_runs(self.root, self), where=str(self.root))
        rows = self._rows(f"SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = ?", (run_id,))
        if not rows:
            raise SptuiError(f'run "{text}" is the folder {runs_dir(self.root) / run_id}, which is not in the '
                             f"queue {self.path}")
        return rows[0]

    def run_names(self) -> list[tuple[str, str]]:
        """(run id, job name) of every job, for `sptui.runs.known_runs`."""
        return self.db.execute("SELECT run_id, name FROM jobs WHERE run_id IS NOT NULL").fetchall()

    def list(self, states: Iterable[str] | None = None, limit: int | None = None) -> list[Job]:
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"
        args: list[Any] = []
        if states:
            states = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            args += states
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, args)

    def changed_since(self, version: int) -> tuple[int, bool]:
        """Cheap change detection for pollers: SQLite's data_version moves when another connection commits."""
        (now,) = self.db.execute("PRAGMA data_version").fetchone()
        return now, now != version

    # -------------------------------------------------------- claim and run
    def claim(self, owner_pid: int, owner_start: str | None) -> Job | None:
        """Atomically take the highest-priority queued job for this worker (None when there is none)."""
        rows = self._write(
            "UPDATE jobs SET state = 'running', started = ?, heartbeat = ?, host = ?, owner_pid = ?, owner_start = ?, "
            "attempts = attempts + 1, error = NULL, exit_code = NULL, finished = NULL, cancel_requested = 0 "
            "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND executor != 'slurm' "
            "ORDER BY priority DESC, id LIMIT 1) "
            f"RETURNING {JOB_COLUMNS}",
            (time.time(), time.time(), HOST, owner_pid, owner_start),
        )
        return Job(*rows[0]) if rows else None

    def set_process(self, job_id: int, pid: int, device: str, gpu: str | None) -> None:
        self._write("UPDATE jobs SET pid = ?, pid_start = ?, device = ?, gpu = ? WHERE id = ?",
                    (pid, process_start(pid), device, gpu, job_id))

    def adopt(self, job_id: int, pid: int) -> bool:
        """A job's own process records itself; False if the job is no longer running (e.g. recovered as
        interrupted while the process was starting), in which case it must not run."""
        rows = self._write("UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ? AND state = 'running' RETURNING id",
                           (pid, process_start(pid), job_id))
        return bool(rows)

    def progress(self, job_id: int, step: int | None, total: int | None) -> None:
        self._write("UPDATE jobs SET step = COALESCE(?, step), total = COALESCE(?, total), heartbeat = ? "
                    "WHERE id = ? AND state = 'running'", (step, total, time.time(), job_id))

    def finish(self, job_id: int, state: str, exit_code: int | None = None, error: str | None = None) -> bool:
        """Record a final state, once: only a job still running changes (returns whether it did)."""
        assert state in FINAL
        rows = self._write(
            "UPDATE jobs SET state = ?, finished = ?, exit_code = ?, error = ? WHERE id = ? AND state = 'running' "
            "RETURNING id", (state, time.time(), exit_code, error, job_id))
        return bool(rows)

    def cancel_requested(self, job_id: int) -> bool:
        row = self.db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    # -------------------------------------------------------- user actions
    def cancel(self, ref: int | str) -> Job:
        """Cancel a queued job at once; ask a running one to stop (its worker or batch ends it)."""
        job = self.get(ref)
        if job.state == "queued":
            self._write("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                        (time.time(), job.id))
        elif job.state == "running":
            self._write("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
        else:
            raise SptuiError(f"run {job.run_id} is {job.state}; only queued or running jobs can be cancelled")
        return self.get(job.id)

    def requeue(self, ref: int | str) -> Job:
        job = self.get(ref)
        if job.state not in REQUEUEABLE:
            raise SptuiError(f"run {job.run_id} is {job.state}; only {', '.join(REQUEUEABLE)} jobs can be requeued")
        assert job.executor != "slurm", "Slurm runs are requeued by sptui.slurm.executor.requeue"
        self._write(
            "UPDATE jobs SET state = 'queued', cancel_requested = 0, pid = NULL, pid_start = NULL, step = NULL, "
            "executor = 'worker' WHERE id = ?", (job.id,))
        return self.get(job.id)

    def requeue_failed(self) -> builtins.list[Job]:
        """Every failed local run back to queued (failed Slurm runs: sptui.slurm.executor.requeue)."""
        rows = self._write("UPDATE jobs SET state = 'queued', cancel_requested = 0, pid = NULL, pid_start = NULL, "
                           "step = NULL, executor = 'worker' WHERE state = 'failed' AND executor != 'slurm' RETURNING id")
        return [self.get(r[0]) for r in rows]

    def set_priority(self, ref: int | str, priority: int) -> Job:
        job = self.get(ref)
        self._write("UPDATE jobs SET priority = ? WHERE id = ?", (int(priority), job.id))
        return self.get(job.id)

    # -------------------------------------------------------- Slurm jobs (sptui.slurm.executor)
    def slurm_submitted(self, job_id: int, slurm_job_id: str) -> None:
        """A queued slurm job was handed to Slurm as `slurm_job_id`."""
        self._write("UPDATE jobs SET slurm_job_id = ?, slurm_state = 'PENDING', attempts = attempts + 1, "
                    "cancel_requested = 0 WHERE id = ? AND state = 'queued'", (slurm_job_id, job_id))

    def slurm_update(self, job_id: int, state: str, slurm_state: str | None, step: int | None = None,
                     total: int | None = None, started: float | None = None, host: str | None = None,
                     device: str | None = None, reported: float | None = None) -> None:
        """What Slurm and the job's status.json say of a job that has not ended: queued (waiting in Slurm,
        also after a requeue) or running. `reported`: when the job last wrote its status (the heartbeat)."""
        assert state in ("queued", "running")
        self._write("UPDATE jobs SET state = ?, slurm_state = ?, step = COALESCE(?, step), total = COALESCE(?, total), "
                    "started = COALESCE(?, started), host = COALESCE(?, host), device = COALESCE(?, device), "
                    "heartbeat = COALESCE(?, heartbeat) WHERE id = ? AND state IN ('queued', 'running')",
                    (state, slurm_state, step, total, started, host, device, reported, job_id))

    def slurm_finish(self, job_id: int, state: str, error: str | None, slurm_state: str | None,
                     finished: float | None = None) -> bool:
        """Record the end of a slurm job (queued or running here: it may end between two looks). `slurm_state`:
        Slurm's word for the end when it came from Slurm's account (e.g. OUT_OF_MEMORY), else None."""
        assert state in FINAL
        rows = self._write("UPDATE jobs SET state = ?, error = ?, slurm_state = ?, "
                           "finished = ?, started = COALESCE(started, ?) WHERE id = ? AND state IN ('queued', 'running') "
                           "RETURNING id", (state, error, slurm_state, finished or time.time(), finished or time.time(),
                                            job_id))
        return bool(rows)

    def slurm_requeue(self, job_id: int) -> None:
        """Back to queued for a resubmission to Slurm (the executor stays slurm)."""
        self._write("UPDATE jobs SET state = 'queued', cancel_requested = 0, error = NULL, finished = NULL, "
                    "exit_code = NULL, slurm_job_id = NULL, slurm_state = NULL WHERE id = ?", (job_id,))

    # -------------------------------------------------------- crash recovery
    def recover(self) -> builtins.list[Job]:
        """Running jobs of this host whose own process is gone become `interrupted` (never rerun on their own).

        A job whose supervisor died but whose process still runs is left alone: it records its own end.
        """
        lost = []
        for job in self.list(states=["running"]):
            if job.host not in (None, HOST) or job.executor == "slurm":  # Slurm jobs: sptui.slurm.executor.reconcile
                continue
            if job.pid is None:
                # claimed but the child never started: only lost if the supervisor is gone too
                if is_alive(job.owner_pid, job.owner_start):
                    continue
            elif is_alive(job.pid, job.pid_start):
                continue
            if self.finish(job.id, "interrupted", error="its process ended without recording a result "
                                                        "(crash, kill -9 or power loss); requeue to resume"):
                lost.append(self.get(job.id))
        return lost

    # -------------------------------------------------------- workers
    def register_worker(self, pid: int, device: str, slots: int) -> None:
        now = time.time()
        self._write("INSERT OR REPLACE INTO workers (pid, host, pid_start, started, heartbeat, device, slots) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (pid, HOST, process_start(pid), now, now, device, slots))

    def worker_heartbeat(self, pid: int) -> None:
        self._write("UPDATE workers SET heartbeat = ? WHERE host = ? AND pid = ?", (time.time(), HOST, pid))

    def unregister_worker(self, pid: int) -> None:
        self._write("DELETE FROM workers WHERE host = ? AND pid = ?", (HOST, pid))

    def live_workers(self, now: float | None = None) -> builtins.list[dict[str, Any]]:
        """Workers on this host whose process is alive (stale rows of dead ones are dropped).

        Each says whether it is `responding`: a worker beats every 2 s from its loop, so one silent for
        WORKER_SILENT_SECONDS is alive but not working (stopped with ctrl+z or SIGSTOP, or hung); its
        queued jobs wait. `silent_for` is the seconds since its last beat.
        """
        now = now or time.time()
        alive = []
        for pid, host, start, started, heartbeat, device, slots in self.db.execute(
                "SELECT pid, host, pid_start, started, heartbeat, device, slots FROM workers").fetchall():
            if host == HOST and not is_alive(pid, start):
                self._write("DELETE FROM workers WHERE host = ? AND pid = ?", (host, pid))
                continue
            silent = max(0.0, now - heartbeat)
            alive.append({"pid": pid, "host": host, "started": started, "heartbeat": heartbeat, "device": device,
                          "slots": slots, "silent_for": silent, "responding": silent < WORKER_SILENT_SECONDS})
        return alive


def make_run_id(job_id: int, name: str) -> str:
    return f"{job_id:04d}-{slug(name)}"


def own_identity() -> tuple[int, str | None]:
    pid = os.getpid()
    return pid, process_start(pid)
