"""The job queue: one SQLite file, one `jobs` table holding a state machine.

    queued -> running -> succeeded | failed | cancelled | interrupted
    failed | cancelled | interrupted --requeue--> queued

A job may wait for other jobs (`job_deps`, filled from the runs its parameters name and its `after`, see
sptui.pipeline): it is claimed only once every one of them has succeeded, so waiting holds no worker slot.
When one fails, the jobs waiting for it fail ("needs X, which failed"); when one is cancelled, they are
cancelled with it; both follow the chain, in the same transaction as the change that caused them (a trigger,
so every writer, however it ends a job, does it the same way). `requeue` of that job brings them back.

WAL mode with synchronous=FULL, so a committed state change survives a crash or power loss. Every process
(CLI, worker, job child, batch, TUI) opens its own connection; none is carried across fork().

What can go wrong with the file itself is one clear line, never a traceback nor a silent empty queue:
- a full disk (SQLITE_FULL) is `DiskFull`; SQLite has already rolled the transaction back, so the first
  error is what the user sees (an explicit ROLLBACK would raise "no transaction is active" over it);
- a damaged file (SQLITE_CORRUPT / SQLITE_NOTADB, or a failed quick_check when it is opened) is
  `QueueDamaged`: nothing more is written to it, and `sptui recover` rebuilds the queue (sptui/recover.py);
- an artifacts folder that cannot be written opens read-only: every read works, a write is `QueueReadOnly`.
"""

from __future__ import annotations

import builtins
import errno
import functools
import os
import shutil
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sptui.config import make_artifacts, queue_path, runs_dir
from sptui.errors import SptuiError
from sptui.runs import RunDir, known_runs, resolve_run_id, run_folder_in, slug
from sptui.spec import JobSpec
from sptui.timing import eta_seconds, fmt_duration

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
    slurm_state      TEXT,              -- what Slurm last said: PENDING, RUNNING, COMPLETING, ... (sptui.slurm)
    resumed_step     INTEGER,           -- the step this attempt resumed from (its checkpoint's): not its progress
    prior_seconds    REAL NOT NULL DEFAULT 0,  -- seconds run by earlier attempts (ATTEMPT_TRIGGER adds them)
    first_started    REAL,              -- when the first attempt started (started: this attempt)
    phase            TEXT,              -- what the running job does past its steps ("drawing plots"): Job.phase_now
    phase_at         REAL               -- when it said so (a phase from an earlier attempt is not this one's)
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs(state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_hash ON jobs(spec_hash);
CREATE TABLE IF NOT EXISTS job_deps (
    job_id   INTEGER NOT NULL,          -- the job that waits
    needs    INTEGER NOT NULL,          -- the job it waits for, until that one has succeeded
    param    TEXT NOT NULL,             -- why: the parameter naming that run ("model", "sweep.run[1]") or "after[0]"
    ended_it INTEGER NOT NULL DEFAULT 0,  -- 1 when `needs` failing or being cancelled ended `job_id` (requeue undoes it)
    PRIMARY KEY (job_id, needs)
);
CREATE INDEX IF NOT EXISTS job_deps_needs ON job_deps(needs);
-- A job that fails or is cancelled ends the queued jobs waiting for it the same way (recursive_triggers carries
-- it down the chain). The error names the run that ended them.
CREATE TRIGGER IF NOT EXISTS job_deps_end_waiting_v1 AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('failed', 'cancelled') AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE job_deps SET ended_it = 1
        WHERE needs = NEW.id AND job_id IN (SELECT id FROM jobs WHERE state = 'queued');
    UPDATE jobs SET state = NEW.state, finished = (julianday('now') - 2440587.5) * 86400.0,
        error = CASE NEW.state WHEN 'failed' THEN 'needs ' || NEW.run_id || ', which failed'
                ELSE 'cancelled with ' || NEW.run_id || ', which it needs' END
        WHERE state = 'queued' AND id IN (SELECT job_id FROM job_deps WHERE needs = NEW.id);
END;
CREATE TABLE IF NOT EXISTS workers (
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    pid_start   TEXT,
    started     REAL NOT NULL,
    heartbeat   REAL NOT NULL,          -- every 2 s from its loop: a stopped or hung worker falls silent
    device      TEXT,
    slots       INTEGER,
    stop        TEXT,                   -- a stop someone asked for: 'after-jobs' (finish, claim nothing) or 'now'
    root        TEXT,                   -- the artifacts folder it serves: a copy of the folder is not served by it
    PRIMARY KEY (host, pid)
);

-- Which jobs changed since a poller last looked (the app re-reads only those: a worker's heartbeat or one job's
-- progress in a queue of 10,000 runs costs one small query, not 10,000 rows). Every insert or update of a job
-- gives it the next version; triggers, so every writer is counted however it writes.
CREATE TABLE IF NOT EXISTS job_changes (
    job_id  INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS job_changes_version ON job_changes(version);
CREATE TRIGGER IF NOT EXISTS job_changes_insert_v1 AFTER INSERT ON jobs BEGIN
    INSERT OR REPLACE INTO job_changes (job_id, version)
        VALUES (NEW.id, (SELECT coalesce(max(version), 0) + 1 FROM job_changes));
END;
CREATE TRIGGER IF NOT EXISTS job_changes_update_v1 AFTER UPDATE ON jobs BEGIN
    INSERT OR REPLACE INTO job_changes (job_id, version)
        VALUES (NEW.id, (SELECT coalesce(max(version), 0) + 1 FROM job_changes));
END;
"""

JOB_COLUMNS = (
    "id, run_id, name, kind, spec, spec_hash, source, priority, state, executor, device_request, created, "
    "started, finished, heartbeat, host, owner_pid, owner_start, pid, pid_start, device, gpu, step, total, "
    "attempts, exit_code, error, cancel_requested, slurm_job_id, slurm_state, resumed_step, prior_seconds, "
    "first_started, phase, phase_at"
)
# columns added after the first release: (name, SQL type) added to older queue.db files when opened
MIGRATIONS = (("slurm_job_id", "TEXT"), ("slurm_state", "TEXT"), ("resumed_step", "INTEGER"),
              ("prior_seconds", "REAL NOT NULL DEFAULT 0"), ("first_started", "REAL"),
              ("phase", "TEXT"), ("phase_at", "REAL"))
WORKER_MIGRATIONS = (("stop", "TEXT"), ("root", "TEXT"))
WORKER_STOPS = ("after-jobs", "now")
# A requeue ends an attempt for good: its running time joins prior_seconds, so elapsed counts every attempt
# (whichever command or process requeues). An interrupted attempt ends at its last report when that is earlier
# than the time it was found dead (a crash found the next morning ran minutes, not hours). Slurm runs are left
# out: their `started` is already the first attempt's (sptui.slurm.task keeps it).
ATTEMPT_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS jobs_attempt_ended_v1 AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'queued' AND OLD.state IN ('failed', 'cancelled', 'interrupted') AND NEW.executor != 'slurm'
BEGIN
    UPDATE jobs SET
        prior_seconds = prior_seconds + COALESCE(MAX(0.0, CASE OLD.state
            WHEN 'interrupted' THEN MIN(OLD.finished, MAX(COALESCE(OLD.heartbeat, OLD.finished), OLD.started))
            ELSE OLD.finished END - OLD.started), 0.0),
        first_started = COALESCE(first_started, OLD.started),
        resumed_step = NULL
    WHERE id = NEW.id;
END;
"""


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
    resumed_step: int | None = None
    prior_seconds: float = 0.0
    first_started: float | None = None
    phase: str | None = None
    phase_at: float | None = None
    # not a column: the jobs a queued job still waits for, (run id, state) each (read by Queue.list and get)
    waiting_for: tuple[tuple[str, str], ...] = ()
    folder_missing: bool = False  # it ran and ended, but its run folder is gone (deleted or moved): not a column


    def job_spec(self) -> JobSpec:
        return JobSpec.from_json(self.spec)

    def run_dir(self, root: Path) -> Path:
        return runs_dir(root) / self.run_id

    def attempt_elapsed(self, now: float | None = None) -> float | None:
        """Seconds of this attempt (since it was last claimed), to its end or now; None before it starts
        (a requeued job keeps its last attempt's times until it is claimed again: that attempt is in prior_seconds)."""
        if self.started is None or self.state == "queued":
            return None
        end = self.finished if self.finished is not None else (now or time.time())
        return max(0.0, end - self.started)

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds run over every attempt (earlier ones plus this one); None before the first starts."""
        attempt = self.attempt_elapsed(now)
        if attempt is None:
            return self.prior_seconds or None
        return (self.prior_seconds or 0.0) + attempt

    @property
    def first_start(self) -> float | None:
        """When the run first started (its first attempt), where `started` is this attempt's start."""
        return self.first_started if self.first_started is not None else self.started

    @property
    def phase_now(self) -> str | None:
        """What a running job does past its counted steps (the runner's "drawing plots"), said by this attempt;
        else None."""
        if self.state != "running" or not self.phase or self.phase_at is None:
            return None
        return self.phase if self.started is None or self.phase_at >= self.started else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at this attempt's rate (None until this attempt has made progress of its own): steps
        resumed from a checkpoint were done by an earlier attempt and are not counted (sptui.timing). None in
        a phase past the steps (drawing plots): its steps are done, and the time it takes is not theirs."""
        if self.state != "running" or self.phase_now:
            return None
        return eta_seconds(self.step, self.total, self.resumed_step, self.attempt_elapsed(now))

    def eta_cell(self, now: float | None = None) -> str:
        """The 7-wide ETA column of `sptui ls` and the app's run table: the time left ("12m05s"), or, past the
        steps, what the job does in a word ("plots" while drawing plots: its eta is none, its steps are done),
        else blank. `doing` says the phase in full, with how long, in the run head and `sptui show`."""
        phase = self.phase_now
        if phase:
            return PHASE_WORDS.get(phase, phase[:7])
        return fmt_duration(self.eta(now))

    def quiet_for(self, now: float | None = None) -> float | None:
        """Seconds since a running job last reported (claimed, wrote progress, or beat in a phase), else None. A
        job reports at most once a second while it makes progress, and every JOB_BEAT_SECONDS in a phase past its
        steps (the runner's beat); a long silence means a long step, or a hang."""
        if self.state != "running" or self.heartbeat is None:
            return None
        return max(0.0, (now or time.time()) - self.heartbeat)

    def phase_for(self, now: float | None = None) -> float | None:
        """Seconds this attempt has been in its phase (drawing plots), else None."""
        if not self.phase_now or self.phase_at is None:
            return None
        return max(0.0, (now or time.time()) - self.phase_at)

    def doing(self, now: float | None = None) -> str | None:
        """"drawing plots for 1m30s": what a running job does past its steps and for how long (the app's run head
        and `sptui show`), else None."""
        seconds = self.phase_for(now)
        return None if seconds is None else f"{self.phase_now} for {fmt_duration(seconds)}"

    def silence(self, now: float | None = None) -> str | None:
        """What a running job's silence says once it is real (longer than JOB_QUIET_SECONDS), else None: in its
        steps a long step or a hang; in a phase, where the runner beats every JOB_BEAT_SECONDS, a process that
        has stopped (killed with its worker, frozen, a machine swapping) or hangs. One text for the app and
        `sptui show`."""
        quiet = self.quiet_for(now)
        if quiet is None or quiet <= JOB_QUIET_SECONDS:
            return None
        if self.phase_now:
            return (f"no heartbeat for {fmt_duration(quiet)} while {self.phase_now} (it beats every "
                    f"{JOB_BEAT_SECONDS:g}s): stopped or hung")
        return f"no report for {fmt_duration(quiet)}: a long step, or a hang"

    @property
    def waiting(self) -> str | None:
        """"waiting for 0005-lm-tiny" while a queued job waits for other runs (None otherwise): what `sptui ls`
        and the app show. A run that was interrupted is named so: it waits for a requeue."""
        if self.state != "queued" or not self.waiting_for:
            return None
        return "waiting for " + ", ".join(run_id if state in ("queued", "running") else f"{run_id} ({state})"
                                          for run_id, state in self.waiting_for)

    def as_dict(self, root: Path) -> dict[str, Any]:
        d = dict(self.__dict__)  # the columns, in order (a copy of the fields: `ls --json` makes 10,000 of these)
        del d["spec"], d["waiting_for"]
        d["run_dir"] = os.path.join(_runs_folder(root), self.run_id)
        d["elapsed"] = self.elapsed()
        d["eta"] = self.eta()
        d["attempt_elapsed"] = self.attempt_elapsed()
        d["quiet_for"] = self.quiet_for()
        d["doing"] = self.doing()  # "drawing plots for 1m30s", as `sptui show` says it
        d["waiting_for"] = [run_id for run_id, _ in self.waiting_for]
        d["waiting"] = self.waiting
        d["folder_missing"] = self.folder_missing
        return d


@functools.lru_cache(maxsize=8)
def _runs_folder(root: Path) -> str:
    return str(runs_dir(Path(root)))


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


_COLUMN_NAMES = tuple(JOB_COLUMNS.replace(" ", "").split(","))
_NO_SPEC = JOB_COLUMNS.replace(" spec,", " '' AS spec,", 1)
HOST = socket.gethostname()
WORKER_BEAT_SECONDS = 2.0  # how often a worker writes its heartbeat
WORKER_SILENT_SECONDS = 30.0  # a worker silent this long is not responding (15 missed beats)
JOB_QUIET_SECONDS = 60.0  # the app points out a running job that has not reported for this long
PHASE_WORDS = {"drawing plots": "plots"}  # a phase (sptui.runner.DRAWING) in the ETA column's 7 characters
JOB_BEAT_SECONDS = 5.0  # how often a job in a phase past its steps (drawing plots) writes its heartbeat
LOW_DISK_BYTES = 1 << 20  # a lost job on a disk with less free than this most likely ran out of space


# ---------------------------------------------------------------- what can go wrong with the file

class DiskFull(SptuiError):
    """The disk holding the queue (or a run) is full: nothing was written."""


class QueueDamaged(SptuiError):
    """queue.db is corrupt: it is not written to again; `sptui recover` rebuilds it from the run folders."""


class QueueReadOnly(SptuiError):
    """The artifacts folder cannot be written: the queue is open for reading only."""


_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _primary(error: BaseException) -> str:
    """SQLite's primary result code name ("SQLITE_IOERR_WRITE" -> "SQLITE_IOERR")."""
    name = getattr(error, "sqlite_errorname", "") or ""
    parts = name.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 else name


# ---------------------------------------------------------------- the queue

class Queue:
    """All reads and writes of the queue DB. Cheap to create; one per process (or per thread)."""

    def __init__(self, root: str | Path, timeout: float = 30.0, check: bool = True):
        """Open (or create) the queue of an artifacts root. An existing root that cannot be written opens
        read-only (`read_only`); `check` runs SQLite's quick_check first, so a damaged file is refused at once."""
        self.root = Path(root)
        self.path = queue_path(self.root)
        self.no_writes: SptuiError | None = None  # why this queue can only be read, when it can
        self.unrecorded: SptuiError | None = None  # why `recover` could not record the jobs it found lost (a full disk)
        if self.root.is_dir() and not _writable(self.root, self.path):
            self.no_writes = QueueReadOnly(f"the artifacts folder {self.root} is read-only: the queue can be read "
                                           "here but not changed")
        else:
            make_artifacts(self.root)  # a root that cannot be one (a file, a place the system will not make): one line
            try:
                self._open(timeout)
            except (OSError, sqlite3.DatabaseError) as e:
                if not _disk_full(e, self.root):
                    raise self._failure(e, "open") if isinstance(e, sqlite3.DatabaseError) else SptuiError(
                        f"{self.path}: cannot open the queue ({e.strerror})") from None
                # a full disk: SQLite cannot even make its shared-memory file; reading still works
                self.no_writes = DiskFull(f"disk full: the queue {self.path} cannot be written (the disk holding it "
                                          "has no space left); free some space")
        if self.no_writes is not None:
            self._open_read_only()
        if check:
            self._quick_check()

    @property
    def read_only(self) -> bool:
        return self.no_writes is not None

    def _open(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            db = None
            try:
                db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
                db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.execute("PRAGMA recursive_triggers = ON")  # a failure or cancel follows the whole chain
                db.executescript(SCHEMA)
                self.db = db
                self._migrate()
                self.db.executescript(ATTEMPT_TRIGGER)
                return
            except sqlite3.DatabaseError as e:
                if db is not None:
                    db.close()
                # switching a new file to WAL takes an exclusive lock without waiting on the busy handler:
                # processes opening a fresh queue at the same moment retry briefly instead of failing
                if not isinstance(e, sqlite3.OperationalError) or "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _open_read_only(self) -> None:
        """Reading commands work on a read-only artifacts folder: a WAL file can be read there only as
        'immutable' when its -shm file cannot be made; with no queue file at all, an empty queue (also for an
        empty file: what SQLite leaves when a full disk stops it making a new queue)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self.db.executescript(SCHEMA)
            return
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        for options in ("mode=ro", "mode=ro&immutable=1"):
            try:
                self.db = sqlite3.connect(f"{uri}?{options}", uri=True, isolation_level=None, check_same_thread=False)
                self.db.execute("SELECT count(*) FROM jobs").fetchone()
                return
            except sqlite3.DatabaseError as e:
                self.db.close()
                error = e
                if _primary(e) in _CORRUPT:
                    break
        raise self._failure(error, "open") from None

    def _quick_check(self) -> None:
        """SQLite's quick_check (every page read: ~17 ms at 10,000 runs), once per process for a file that has
        not changed since it passed: a command that opens the queue three times pays for one check."""
        key = _file_state(self.path)
        if key is not None and _CHECKED.get(self.path) == key:
            return
        with self._errors("check"):
            problems = [row[0] for row in self.db.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            self.db.close()
            raise self._damaged(" ".join(" ".join(problems).split()))
        if key is not None:
            _CHECKED[self.path] = key

    def _damaged(self, detail: str) -> QueueDamaged:
        return QueueDamaged(f"{self.path} is damaged ({detail}); nothing more is written to it. Stop any "
                            f"worker, then `sptui --artifacts {self.root} recover` rebuilds the queue from the "
                            "run folders and what can be read of this file (kept as queue.db.damaged-<time>)")

    def _failure(self, error: sqlite3.Error, doing: str) -> SptuiError:
        """The one line a SQLite error becomes."""
        code = _primary(error)
        if code == "SQLITE_FULL":
            return DiskFull(f"disk full: cannot write the queue {self.path} ({error}); free some space on the disk "
                            "holding it")
        if code in _CORRUPT:
            return self._damaged(str(error))
        if code == "SQLITE_READONLY":
            return QueueReadOnly(f"the queue {self.path} is read-only here ({error}); reading works, changes need "
                                 "a writable artifacts folder")
        return SptuiError(f"{self.path}: cannot {doing} the queue database ({error})")

    @contextmanager
    def _errors(self, doing: str):
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise self._failure(e, doing) from None

    def _migrate(self) -> None:
        """Add the columns a queue.db made by an older sptui lacks (ALTER TABLE ... ADD COLUMN keeps every row)."""
        for table, migrations in (("jobs", MIGRATIONS), ("workers", WORKER_MIGRATIONS)):
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, sql_type in migrations:
                if name not in have:
                    try:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
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
        with self._transaction():
            return self.db.execute(sql, tuple(args)).fetchall()

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error, with SQLite errors as one clear line."""
        if self.no_writes is not None:
            raise self.no_writes
        with self._errors("write"):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Undo an open transaction, if one is open. SQLite has already rolled back after SQLITE_FULL and some
        I/O errors, and a job's SIGTERM handler may raise Terminated just after COMMIT: a ROLLBACK then raises
        "no transaction is active", which must not hide the error that caused it."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._errors("read"):
            return self.db.execute(sql, tuple(args)).fetchall()

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[Job]:
        jobs = [Job(*r) for r in self._read(sql, args)]
        for job in jobs:
            cannot = self.no_writes or self.unrecorded
            if cannot is not None and _is_lost(job):  # `recover` cannot record it: shown as it would be
                job.state, error = self._lost_outcome(job)
                job.error = f"{error} (not recorded: {cannot})"
        self._mark_missing_folders(jobs)
        return self._with_waiting(jobs)

    def _mark_missing_folders(self, jobs: list[Job]) -> None:
        """`folder_missing` for the jobs that ended after they started (a run folder was made) and whose folder
        is gone. Many jobs (a listing) cost one read of the runs folder, not a stat each."""
        ended = [j for j in jobs if j.state in FINAL and j.started is not None]
        if len(ended) <= 32:
            for job in ended:
                job.folder_missing = not job.run_dir(self.root).is_dir()
            return
        try:
            present = {entry.name for entry in os.scandir(runs_dir(self.root)) if entry.is_dir()}
        except FileNotFoundError:  # no runs folder at all: every folder is gone
            present = set()
        except OSError:  # a runs folder that cannot be listed says nothing about what is gone
            return
        for job in ended:
            job.folder_missing = job.run_id not in present

    def _with_waiting(self, jobs: list[Job]) -> list[Job]:
        """Fill in what each queued job still waits for (one query, over the queued jobs only)."""
        queued = {j.id: j for j in jobs if j.state == "queued"}
        if not queued:
            return jobs
        waits: dict[int, list[tuple[str, str]]] = {}
        for job_id, run_id, state in self._read(
                "SELECT d.job_id, u.run_id, u.state FROM job_deps d JOIN jobs j ON j.id = d.job_id "
                "JOIN jobs u ON u.id = d.needs WHERE j.state = 'queued' AND u.state != 'succeeded' "
                "ORDER BY d.job_id, u.id"):
            if job_id in queued:
                waits.setdefault(job_id, []).append((run_id, state))
        for job_id, found in waits.items():
            queued[job_id].waiting_for = tuple(found)
        return jobs

    # -------------------------------------------------------- submit
    def submit(self, specs: list[JobSpec], source: str | None = None, force: bool = False,
               device: str | None = None, executor: str = "worker", state: str = "queued",
               owner_pid: int | None = None, notes: list[str] | None = None) -> list[Job]:
        """Queue specs all together or none; returns their jobs, in order.

        The runs each job names are resolved and pinned in its spec, and those in the queue become what it waits
        for (sptui.pipeline); a name that resolves to nothing refuses the whole file (SpecError).

        Duplicates (one rule for `sptui submit`, `sptui batch` and the app): a job identical to one that is queued
        or running (same kind, parameters and sweep, after pinning) is refused unless `force`: it would compute
        the same thing twice at once. A job identical to a run that has ended is queued as a new run; `notes`,
        when given, gets a line naming the earlier run.

        `owner_pid`: the foreground process (`sptui batch`) that runs these jobs itself (executor "batch": no worker
        claims them). With `state="running"` a job is taken at once."""
        from sptui import pipeline

        assert state in ("queued", "running") and (executor != "batch" or owner_pid is not None)
        now = time.time()
        with self._transaction():
            links = pipeline.resolve(specs, pipeline.RunIndex(self.root, self), source or "job file")
            for spec, found in zip(specs, links):
                if any(link.file_job is not None for link in found):
                    continue  # it names a job of this file: a new run, so never a duplicate
                digest = pipeline.pin(spec, found, []).digest()
                earlier = self.db.execute(
                    "SELECT run_id, state FROM jobs WHERE spec_hash = ? ORDER BY state IN ('queued', 'running') DESC, "
                    "id DESC LIMIT 1", (digest,)).fetchone()
                if earlier is None:
                    continue
                if earlier[1] in ("queued", "running") and not force:
                    raise SptuiError(
                        f'job "{spec.name}" is already in the queue as {earlier[0]} ({earlier[1]}); wait for it, '
                        "or use --force to run it twice")
                if notes is not None:
                    notes.append(f'job "{spec.name}" ' + (f"is also {earlier[1]} as {earlier[0]}; queued again (--force)"
                                 if earlier[1] in ("queued", "running") else
                                 f"ran before as {earlier[0]} ({earlier[1]}); queued again as a new run"))
            ids, run_ids = [], []
            owner_start = process_start(owner_pid) if owner_pid is not None else None
            for spec in specs:
                (job_id,) = self.db.execute(
                    "INSERT INTO jobs (run_id, name, kind, spec, spec_hash, source, priority, state, executor, "
                    "device_request, created, host, owner_pid, owner_start) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?) RETURNING id",
                    (spec.name, spec.kind, spec.to_json(), spec.digest(), source, spec.priority, state, executor,
                     device, now, HOST if owner_pid is not None else None, owner_pid, owner_start),
                ).fetchall()[0]
                run_id = make_run_id(job_id, spec.name)
                self.db.execute("UPDATE jobs SET run_id = ? WHERE id = ?", (run_id, job_id))
                if state == "running":
                    self.db.execute("UPDATE jobs SET started = ?, heartbeat = ?, attempts = 1 WHERE id = ?",
                                    (now, now, job_id))
                ids.append(job_id)
                run_ids.append(run_id)
            for job_id, spec, found in zip(ids, specs, links):
                if not found:
                    continue
                pinned = pipeline.pin(spec, found, run_ids)
                self.db.execute("UPDATE jobs SET spec = ?, spec_hash = ? WHERE id = ?",
                                (pinned.to_json(), pinned.digest(), job_id))
                for link in found:
                    needs = ids[link.file_job] if link.file_job is not None else link.job_id
                    if needs is not None:
                        self.db.execute("INSERT OR IGNORE INTO job_deps (job_id, needs, param) VALUES (?, ?, ?)",
                                        (job_id, needs, link.key))
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
            run_id = self._quick_run_id(text) or resolve_run_id(text, known_runs(self.root, self), where=str(self.root))
        rows = self._rows(f"SELECT {JOB_COLUMNS} FROM jobs WHERE run_id = ?", (run_id,))
        if not rows:
            raise SptuiError(f'run "{text}" is the folder {runs_dir(self.root) / run_id}, which is not in the '
                             f"queue {self.path}")
        return rows[0]

    def _quick_run_id(self, text: str) -> str | None:
        """The run id `text` names when the queue alone decides it, by the same order as `resolve_run_id`, or None
        to ask the resolver over every run: an exact run id, or a job name (not digits, not a run folder's name:
        job ids and folders come first) with a run in the queue, its newest. A lab's 10,000 runs then cost an
        index lookup, not a scan of the runs folder."""
        rows = self._read("SELECT run_id FROM jobs WHERE run_id = ?", (text,))
        if rows:
            return rows[0][0]
        if not text or text.isdigit() or (runs_dir(self.root) / text).exists():
            return None
        rows = self._read("SELECT run_id FROM jobs WHERE name = ? AND run_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                          (text,))
        return rows[0][0] if rows else None

    def run_names(self) -> list[tuple[str, str]]:
        """(run id, job name) of every job, for `sptui.runs.known_runs`."""
        return self._read("SELECT run_id, name FROM jobs WHERE run_id IS NOT NULL")

    def run_rows(self) -> list[tuple[int, str, str, str, str]]:
        """(id, run id, name, kind, state) of every job, for resolving the runs a job file names (sptui.pipeline)."""
        return self._read("SELECT id, run_id, name, kind, state FROM jobs WHERE run_id IS NOT NULL")

    def needs(self, job_id: int) -> list[tuple[str, str, str]]:
        """(run id, state, why) of every run a job waits for or waited for; `why` is the parameter naming it."""
        return self._read(
            "SELECT u.run_id, u.state, d.param FROM job_deps d JOIN jobs u ON u.id = d.needs WHERE d.job_id = ? "
            "ORDER BY u.id", (job_id,))

    def dependents(self, job_id: int, ended_only: bool = False) -> list[Job]:
        """The jobs that wait for this one, and those waiting for them, down the chain (in id order);
        `ended_only`: those its failure or cancellation ended."""
        found: dict[int, None] = {}
        frontier = [job_id]
        while frontier:
            rows = self._read(
                f"SELECT job_id FROM job_deps WHERE needs IN ({','.join('?' * len(frontier))})"
                + (" AND ended_it = 1" if ended_only else ""), frontier)
            frontier = [r[0] for r in rows if r[0] not in found and r[0] != job_id]
            found.update((i, None) for i in frontier)
        return [self.get(i) for i in sorted(found)]

    def list(self, states: Iterable[str] | None = None, limit: int | None = None, words: Iterable[str] = (),
             newest_first: bool = False, spec: bool = True) -> list[Job]:
        """Jobs in id order (oldest first, or `newest_first`), filtered in SQL so that a queue of tens of
        thousands of runs lists in milliseconds.

        `states`: any of STATES, or "waiting" (a queued job that still waits for another run). `words`: each must
        appear (case-insensitive) in the run id, job name, kind or job file. `limit`: at most that many, taken
        from the start of the order (with `newest_first`, the newest). `spec=False` leaves each Job's spec empty
        (listings never show it, and the specs are most of the bytes a big queue holds)."""
        sql = f"SELECT {JOB_COLUMNS if spec else _NO_SPEC} FROM jobs j"
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        if states:
            states = builtins.list(states)
            unknown = [s for s in states if s not in STATES + ("waiting",)]
            if unknown:
                raise SptuiError(f"no state {', '.join(map(repr, unknown))}; states are {', '.join(STATES)} "
                                 "and waiting (queued, waiting for another run)")
            plain = [s for s in states if s != "waiting"]
            either = [f"state IN ({','.join('?' * len(plain))})"] if plain else []
            args += plain
            if "waiting" in states:
                either.append("(state = 'queued' AND NOT " + _READY + ")")
            where.append("(" + " OR ".join(either) + ")")
        for word in words:
            # LIKE is case-insensitive for ASCII; a word's own % and _ are matched literally
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in ("run_id", "name", "kind", "source"))
                         + ")")
            args += [pattern] * 4
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id" + (" DESC" if newest_first else "")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, args)

    def jobs_changed(self, since: int) -> tuple[int, builtins.list[Job]]:
        """(version now, the jobs inserted or updated after version `since`), plus every queued job that waits
        for others (what it waits for may have moved without its own row changing). `since=-1`: every job.
        Jobs are never deleted, so merging these into what a poller holds gives the whole queue."""
        ((now,),) = self._read("SELECT coalesce(max(version), 0) FROM job_changes")
        if since < 0:
            return now, self.list()
        if now == since:
            return now, []
        return now, self._rows(
            f"SELECT {JOB_COLUMNS} FROM jobs j WHERE id IN (SELECT job_id FROM job_changes WHERE version > ?) "
            "OR (state = 'queued' AND id IN (SELECT job_id FROM job_deps)) ORDER BY id", (since,))

    def changed_since(self, version: int) -> tuple[int, bool]:
        """Cheap change detection for pollers: SQLite's data_version moves when another connection commits."""
        ((now,),) = self._read("PRAGMA data_version")
        return now, now != version

    # -------------------------------------------------------- claim and run
    def claim(self, owner_pid: int, owner_start: str | None) -> Job | None:
        """Atomically take the highest-priority queued job for this worker (None when there is none)."""
        rows = self._write(
            "UPDATE jobs SET state = 'running', started = ?, heartbeat = ?, host = ?, owner_pid = ?, owner_start = ?, "
            "attempts = attempts + 1, error = NULL, exit_code = NULL, finished = NULL, cancel_requested = 0 "
            "WHERE id = (SELECT id FROM jobs j WHERE state = 'queued' AND executor = 'worker' AND " + _READY +
            " ORDER BY priority DESC, id LIMIT 1) "
            f"RETURNING {JOB_COLUMNS}",
            (time.time(), time.time(), HOST, owner_pid, owner_start),
        )
        return Job(*rows[0]) if rows else None

    def claim_own(self, job_id: int, owner_pid: int, owner_start: str | None) -> Job | None:
        """`sptui batch` takes one of its own queued jobs once everything it waits for has succeeded
        (None while it waits, or when it is no longer queued: cancelled, or ended with a run it needed)."""
        rows = self._write(
            "UPDATE jobs SET state = 'running', started = ?, heartbeat = ?, host = ?, owner_pid = ?, owner_start = ?, "
            "attempts = attempts + 1, error = NULL, exit_code = NULL, finished = NULL, cancel_requested = 0 "
            "WHERE id = (SELECT id FROM jobs j WHERE id = ? AND state = 'queued' AND " + _READY + ") "
            f"RETURNING {JOB_COLUMNS}",
            (time.time(), time.time(), HOST, owner_pid, owner_start, job_id),
        )
        return Job(*rows[0]) if rows else None

    def has_work(self) -> bool:
        """Whether a worker has anything left to wait for: a queued worker job that is ready, or that waits only for
        runs that are on their way. One that waits, however far up its chain, for an interrupted run waits for a
        requeue, not for a worker (`worker --once` then ends)."""
        return bool(self._read(
            "WITH RECURSIVE stuck(id) AS ("
            " SELECT d.job_id FROM job_deps d JOIN jobs u ON u.id = d.needs JOIN jobs j ON j.id = d.job_id"
            " WHERE j.state = 'queued' AND u.state NOT IN ('succeeded', 'queued', 'running')"
            " UNION SELECT d.job_id FROM job_deps d JOIN stuck s ON d.needs = s.id JOIN jobs j ON j.id = d.job_id"
            " WHERE j.state = 'queued')"
            " SELECT 1 FROM jobs WHERE state = 'queued' AND executor = 'worker' AND id NOT IN stuck LIMIT 1"))

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

    def set_phase(self, job_id: int, phase: str) -> None:
        """A running job's phase past its steps (e.g. "drawing plots"), shown in place of its ETA."""
        now = time.time()
        self._write("UPDATE jobs SET phase = ?, phase_at = ?, heartbeat = ? WHERE id = ? AND state = 'running'",
                    (phase, now, now, job_id))

    def resumed(self, job_id: int, step: int, total: int | None) -> None:
        """This attempt resumed from a checkpoint at `step`: its progress (and ETA) count from there."""
        self._write("UPDATE jobs SET resumed_step = ?, step = ?, total = COALESCE(?, total), heartbeat = ? "
                    "WHERE id = ? AND state = 'running'", (step, step, total, time.time(), job_id))

    def finish(self, job_id: int, state: str, exit_code: int | None = None, error: str | None = None) -> bool:
        """Record a final state, once: only a job still running changes (returns whether it did)."""
        assert state in FINAL
        rows = self._write(
            "UPDATE jobs SET state = ?, finished = ?, exit_code = ?, error = ? WHERE id = ? AND state = 'running' "
            "RETURNING id", (state, time.time(), exit_code, error, job_id))
        return bool(rows)

    def abandon(self, job_ids: builtins.list[int], error: str) -> None:
        """Queued jobs their foreground process (sptui batch) will not run after all: interrupted, for a requeue."""
        self._write(f"UPDATE jobs SET state = 'interrupted', finished = ?, error = ? WHERE state = 'queued' AND id IN "
                    f"({','.join('?' * len(job_ids))})", (time.time(), error, *job_ids))

    def cancel_requested(self, job_id: int) -> bool:
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0][0])

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
        """Queue a failed, cancelled or interrupted job again (for a worker). The jobs its failure or cancellation
        ended come back with it, waiting for it again. A job that needs a run that failed or was cancelled is
        refused: that run is the one to requeue."""
        job = self.get(ref)
        if job.state not in REQUEUEABLE:
            raise SptuiError(f"run {job.run_id} is {job.state}; only {', '.join(REQUEUEABLE)} jobs can be requeued")
        assert job.executor != "slurm", "Slurm runs are requeued by sptui.slurm.executor.requeue"
        self.check_requeue(job)
        with self._transaction():
            self.db.execute(f"UPDATE jobs SET {_REQUEUED} WHERE id = ?", (job.id,))
            self._bring_back(job.id)
        return self.get(job.id)

    def check_requeue(self, job: Job) -> None:
        """A job that needs a run that failed or was cancelled is not requeued alone: that run is the one to requeue."""
        for run_id, state, _ in self.needs(job.id):
            if state in ("failed", "cancelled"):
                raise SptuiError(f"run {job.run_id} needs {run_id}, which {'was ' if state == 'cancelled' else ''}"
                                 f"{state}: requeue {run_id} (the runs it ended come back with it)")

    def _bring_back(self, job_id: int) -> None:
        """Inside a write transaction: the jobs this one's failure or cancellation ended (and those they ended)
        are queued again, waiting for it. Slurm rows stay Slurm rows, without a Slurm id until resubmitted."""
        back: list[int] = []
        frontier = [job_id]
        while frontier:
            rows = self.db.execute(
                f"UPDATE job_deps SET ended_it = 0 WHERE ended_it = 1 AND needs IN ({','.join('?' * len(frontier))}) "
                "RETURNING job_id", frontier).fetchall()
            frontier = [r[0] for r in rows if r[0] not in back and r[0] != job_id]
            back += frontier
        if back:
            self.db.execute(
                f"UPDATE jobs SET {_QUEUED_AGAIN}, executor = CASE executor WHEN 'slurm' THEN 'slurm' ELSE 'worker' END, "
                f"slurm_job_id = NULL, slurm_state = NULL WHERE id IN ({','.join('?' * len(back))}) AND state IN "
                "('failed', 'cancelled', 'interrupted')", back)

    def waits_on(self, job_id: int) -> builtins.list[Job]:
        """The jobs this one waits for that have not succeeded (empty: it may run)."""
        return self._rows(f"SELECT {', '.join('u.' + c for c in _COLUMN_NAMES)} FROM job_deps d JOIN jobs u "
                          "ON u.id = d.needs WHERE d.job_id = ? AND u.state != 'succeeded' ORDER BY u.id", (job_id,))

    def requeue_failed(self) -> builtins.list[Job]:
        """Every failed local run back to queued (failed Slurm runs: sptui.slurm.executor.requeue); the jobs a
        failed run ended come back with it, waiting for it."""
        with self._transaction():
            rows = self.db.execute(f"UPDATE jobs SET {_REQUEUED} WHERE state = 'failed' AND executor != 'slurm' "
                                   "RETURNING id").fetchall()
            for (job_id,) in rows:
                self._bring_back(job_id)
        return [self.get(r[0]) for r in sorted(rows)]

    def set_priority(self, ref: int | str, priority: int) -> Job:
        """A job's place among the runnable ones (higher first): queued jobs, and ended ones a requeue brings back
        (they keep it). A succeeded run never runs again, so a priority on it would order nothing."""
        job = self.get(ref)
        if job.state == "succeeded":
            raise SptuiError(f"run {job.run_id} has succeeded and will not run again: a priority orders queued "
                             "jobs (and failed, cancelled or interrupted ones, for when they are requeued)")
        self._write("UPDATE jobs SET priority = ? WHERE id = ?", (int(priority), job.id))
        return self.get(job.id)

    # -------------------------------------------------------- Slurm jobs (sptui.slurm.executor)
    def slurm_submitted(self, job_id: int, slurm_job_id: str) -> None:
        """A queued slurm job was handed to Slurm as `slurm_job_id`."""
        self._write("UPDATE jobs SET slurm_job_id = ?, slurm_state = 'PENDING', attempts = attempts + 1, "
                    "cancel_requested = 0 WHERE id = ? AND state = 'queued'", (slurm_job_id, job_id))

    def slurm_update(self, job_id: int, state: str, slurm_state: str | None, step: int | None = None,
                     total: int | None = None, started: float | None = None, host: str | None = None,
                     device: str | None = None, reported: float | None = None,
                     phase: tuple[str, float | None] | None = None) -> None:
        """What Slurm and the job's status.json say of a job that has not ended: queued (waiting in Slurm,
        also after a requeue) or running. `reported`: when the job last wrote its status (the heartbeat).
        `phase`: (phase, since when) while the job does something past its steps (drawing plots), else None,
        which clears an earlier start's phase."""
        assert state in ("queued", "running")
        name, since = phase or (None, None)
        self._write("UPDATE jobs SET state = ?, slurm_state = ?, step = COALESCE(?, step), total = COALESCE(?, total), "
                    "started = COALESCE(?, started), host = COALESCE(?, host), device = COALESCE(?, device), "
                    "heartbeat = COALESCE(?, heartbeat), phase = ?, phase_at = ? "
                    "WHERE id = ? AND state IN ('queued', 'running')",
                    (state, slurm_state, step, total, started, host, device, reported, name, since, job_id))

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
        """Back to queued for a resubmission to Slurm (the executor stays slurm), with the jobs its end ended."""
        with self._transaction():
            self.db.execute("UPDATE jobs SET state = 'queued', cancel_requested = 0, error = NULL, finished = NULL, "
                            "exit_code = NULL, slurm_job_id = NULL, slurm_state = NULL WHERE id = ?", (job_id,))
            self._bring_back(job_id)

    def restore(self, rows: builtins.list[dict[str, Any]], deps: Iterable[tuple[int, int, str, int]] = (),
                next_id: int = 1) -> None:
        """Insert whole rows, ids included, and what they wait for ((job_id, needs, param, ended_it) each, as
        job_deps), in one transaction (`sptui recover` rebuilding a queue); the next job submitted gets an id
        of at least `next_id`. Inserting fires no trigger: the states are taken as they were."""
        with self._transaction():
            for row in rows:
                names = [c for c in JOB_COLUMNS.replace(" ", "").split(",") if c in row]
                self.db.execute(f"INSERT INTO jobs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                                [row[c] for c in names])
            self.db.executemany("INSERT OR IGNORE INTO job_deps (job_id, needs, param, ended_it) VALUES (?, ?, ?, ?)",
                                list(deps))
            (seq,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
            if next_id - 1 > seq:
                self.db.execute("DELETE FROM sqlite_sequence WHERE name = 'jobs'")
                self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (next_id - 1,))

    # -------------------------------------------------------- crash recovery
    def recover(self) -> builtins.list[Job]:
        """Running jobs of this host whose own process is gone become `interrupted` (never rerun on their own).

        A job whose supervisor died but whose process still runs is left alone: it records its own end.
        Read-only, nothing can be recorded: nothing is changed. On a full disk the first write that fails stops it
        (this queue then shows those jobs as they ended, like a read-only one): reading commands still work.
        """
        if self.read_only:
            return []
        try:
            return self._recover()
        except DiskFull as e:
            self.unrecorded = e
            return []

    def _recover(self) -> builtins.list[Job]:
        lost = []
        for job in self._rows(f"SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'queued' AND executor = 'batch'"):
            # a batch's jobs wait in the queue for their turn: if the batch is gone, no one will run them
            if job.host in (None, HOST) and not is_alive(job.owner_pid, job.owner_start):
                rows = self._write("UPDATE jobs SET state = 'interrupted', finished = ?, error = ? WHERE id = ? AND "
                                   "state = 'queued' RETURNING id", (time.time(), f"not started: its sptui batch (pid "
                                   f"{job.owner_pid}) ended first; requeue it to run it under a worker", job.id))
                if rows:
                    lost.append(self.get(job.id))
        for job in self.list(states=["running"]):
            if not _is_lost(job):
                continue
            state, error = self._lost_outcome(job)
            if self.finish(job.id, state, error=error):
                lost.append(self.get(job.id))
        return lost

    def _lost_outcome(self, job: Job) -> tuple[str, str]:
        """How a job whose process is gone ended: what the run itself wrote in state.json when the queue
        could not be written (a full disk), else interrupted, naming a full disk where that is likely."""
        run = RunDir(job.run_dir(self.root))
        recorded = run.read_state()
        if recorded.get("state") in FINAL and (recorded.get("finished") or 0) >= (job.started or 0):
            return recorded["state"], recorded.get("error") or "recorded in the run folder (the queue could not be written then)"
        error = "its process ended without recording a result (crash, kill -9 or power loss); requeue to resume"
        try:
            free = shutil.disk_usage(run.root if run.root.is_dir() else self.root).free
        except OSError:
            free = None
        if free is not None and free < LOW_DISK_BYTES:
            error = (f"its process ended without recording a result, and the disk holding it has {free:,} bytes free: "
                     "a full disk is the likely cause; free some space, then requeue to resume")
        return "interrupted", error

    # -------------------------------------------------------- workers
    def register_worker(self, pid: int, device: str, slots: int) -> None:
        now = time.time()
        self._write("INSERT OR REPLACE INTO workers (pid, host, pid_start, started, heartbeat, device, slots, root) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (pid, HOST, process_start(pid), now, now, device, slots,
                                                         str(self.root.resolve())))

    def worker_heartbeat(self, pid: int) -> None:
        self._write("UPDATE workers SET heartbeat = ? WHERE host = ? AND pid = ?", (time.time(), HOST, pid))

    def request_worker_stop(self, pid: int, when: str, host: str = HOST) -> bool:
        """Ask a worker to stop: 'after-jobs' (it claims nothing more and exits once its running jobs end) or
        'now' (it stops its jobs, which become interrupted and resume on a requeue, and exits). The worker reads
        it from its loop (sptui.worker); False when there is no such worker."""
        assert when in WORKER_STOPS
        rows = self._write("UPDATE workers SET stop = ? WHERE host = ? AND pid = ? RETURNING pid", (when, host, pid))
        return bool(rows)

    def worker_stop(self, pid: int) -> str | None:
        """The stop asked of this worker ('after-jobs', 'now'), or None."""
        rows = self._read("SELECT stop FROM workers WHERE host = ? AND pid = ?", (HOST, pid))
        return rows[0][0] if rows else None

    def unregister_worker(self, pid: int) -> None:
        self._write("DELETE FROM workers WHERE host = ? AND pid = ?", (HOST, pid))

    def live_workers(self, now: float | None = None) -> builtins.list[dict[str, Any]]:
        """Workers on this host whose process is alive (stale rows of dead ones are dropped).

        Each says whether it is `responding`: a worker beats every 2 s from its loop, so one silent for
        WORKER_SILENT_SECONDS is alive but not working (stopped with ctrl+z or SIGSTOP, or hung); its
        queued jobs wait. `silent_for` is the seconds since its last beat; `stop` the stop asked of it, if any.
        """
        now = now or time.time()
        alive = []
        here = str(self.root.resolve())
        for pid, host, start, started, heartbeat, device, slots, stop, root in self._read(
                "SELECT pid, host, pid_start, started, heartbeat, device, slots, stop, root FROM workers"):
            # a copied (or moved) folder holds the row of the worker serving the original: not a worker of this one
            if host == HOST and (not is_alive(pid, start) or (root is not None and root != here)):
                if not self.read_only:
                    self._write("DELETE FROM workers WHERE host = ? AND pid = ?", (host, pid))
                continue
            silent = max(0.0, now - heartbeat)
            alive.append({"pid": pid, "host": host, "started": started, "heartbeat": heartbeat, "device": device,
                          "slots": slots, "silent_for": silent, "responding": silent < WORKER_SILENT_SECONDS,
                          "stop": stop})
        return alive


# what a requeue resets: back to queued, for a worker (a job a batch left behind is run by a worker)
_QUEUED_AGAIN = ("state = 'queued', cancel_requested = 0, pid = NULL, pid_start = NULL, step = NULL, error = NULL, "
                 "finished = NULL, exit_code = NULL")
_REQUEUED = _QUEUED_AGAIN + ", executor = 'worker'"
# a queued job `j` whose every dependency has succeeded
_READY = ("NOT EXISTS (SELECT 1 FROM job_deps d JOIN jobs u ON u.id = d.needs WHERE d.job_id = j.id "
          "AND u.state != 'succeeded')")


def _is_lost(job: Job) -> bool:
    """A running job of this host whose own process is gone (Slurm jobs: sptui.slurm.executor.reconcile)."""
    if job.state != "running" or job.host not in (None, HOST) or job.executor == "slurm":
        return False
    if job.pid is None:  # claimed but the child never started: only lost if the supervisor is gone too
        return not is_alive(job.owner_pid, job.owner_start)
    return not is_alive(job.pid, job.pid_start)


_CHECKED: dict[Path, tuple] = {}  # queue files that passed quick_check in this process, with their state then


def _file_state(path: Path) -> tuple | None:
    """What changes when anything writes the queue: the size and time of queue.db and of its WAL (an empty WAL
    holds nothing, however often a new connection touches it)."""
    try:
        parts = [path.stat()]
    except OSError:
        return None
    try:
        wal = Path(f"{path}-wal").stat()
        if wal.st_size:
            parts.append(wal)
    except OSError:
        pass
    return tuple((p.st_ino, p.st_size, p.st_mtime_ns) for p in parts)


def _disk_full(error: BaseException, root: Path) -> bool:
    """Whether an error opening the queue comes from a full disk (SQLite says "disk I/O error" when it
    cannot make its -shm file, or "database or disk is full")."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if _primary(error) not in ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN"):
        return False
    folder = root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < LOW_DISK_BYTES
    except OSError:
        return False


def _writable(root: Path, db: Path) -> bool:
    """Whether this process can change the queue: the root (or the folder it would be made in) and an
    existing queue file are writable. os.access also says no on a read-only mount, even to root."""
    folder = root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return False
    return not db.exists() or os.access(db, os.W_OK)


def make_run_id(job_id: int, name: str) -> str:
    return f"{job_id:04d}-{slug(name)}"


def own_identity() -> tuple[int, str | None]:
    pid = os.getpid()
    return pid, process_start(pid)
