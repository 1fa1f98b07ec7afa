"""`sptui recover`: rebuild a damaged (or deleted) queue.db from what can still be read of it and from the
run folders.

Every run that started has a folder holding its resolved spec (job.toml) and what it recorded itself
(state.json, and the last "=== <state>" line of its log.txt). Queued jobs have no folder yet, so the rows
the damage did not touch are read back from the damaged file first, one by one (a row on a damaged page
is lost, the others are not). The damaged file is kept beside the new one as queue.db.damaged-<time>.

What a job waits for (job_deps, sptui.pipeline) is read back where the old file still holds it, and found
again from the job's spec otherwise: a queued spec holds the run ids its references were pinned to, so a
rebuilt queue never lets a job run before the run it reads.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sptui.config import queue_path, runs_dir
from sptui.errors import SptuiError
from sptui.names import counted
from sptui.queue import FINAL, JOB_COLUMNS, DiskFull, Queue, QueueDamaged, is_alive
from sptui.runs import RunDir
from sptui.spec import JobSpec, load_file

COLUMNS = [c.strip() for c in JOB_COLUMNS.split(",")]
SCAN_PAST = 1000  # job ids tried past the highest one known, for rows the damage hid from max(id)
END_LINE = re.compile(r"^\S+ \S+ === (succeeded|failed|cancelled|interrupted) after [\d.]+s(?:: (.*))?$")


@dataclass
class Rebuilt:
    path: Path  # the new queue.db
    kept: Path | None  # where the damaged file went (None: there was none)
    from_file: int  # rows read back from the damaged file
    from_folders: int  # rows rebuilt from run folders
    skipped: list[str] = field(default_factory=list)  # run folders that could not be read, and why
    damaged: bool = True  # False: a healthy queue rebuilt on request (--force)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kept": str(self.kept) if self.kept else None, "from_file": self.from_file,
                "from_folders": self.from_folders, "skipped": self.skipped, "damaged": self.damaged}

    def lines(self) -> list[str]:
        out = [f"rebuilt {self.path}: {counted(self.from_file, 'job')} read back from the old file, {self.from_folders} "
               "rebuilt from their run folders"]
        if self.kept:
            out.append(f"the {'damaged' if self.damaged else 'old'} file is kept as {self.kept}")
        out += [f"skipped {s}" for s in self.skipped]
        return out


def rebuild(root: str | Path, force: bool = False) -> Rebuilt:
    """Rebuild the queue of `root`. Refuses a healthy queue unless `force`, and a queue a live worker uses."""
    root = Path(root)
    path = queue_path(root)
    healthy = False
    if path.exists():
        try:
            Queue(root).close()
            healthy = True
        except QueueDamaged:
            healthy = False
        if healthy and not force:
            raise SptuiError(f"{path} passes its integrity check: nothing to recover (--force rebuilds it anyway "
                             "from what it holds and the run folders)")
    rows, deps, highest = _salvage(path, root) if path.exists() else ([], [], 0)
    by_run = {row["run_id"]: row for row in rows}
    rebuilt, skipped = [], []
    folder = runs_dir(root)
    for run_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not run_dir.is_dir() or run_dir.name.startswith(".") or run_dir.name in by_run:
            continue
        try:
            rebuilt.append(_row_from_folder(RunDir(run_dir)))
        except SptuiError as e:
            skipped.append(f"{run_dir}: {e}")
    taken = {row["id"] for row in rows}
    next_id = max([*taken, *(r["id"] or 0 for r in rebuilt), 0]) + 1
    for row in rebuilt:  # a folder named otherwise (copied in) gets a new id; its run id stays its name
        if row["id"] is None or row["id"] in taken:
            row["id"], next_id = next_id, next_id + 1
        taken.add(row["id"])
    # new ids follow every id the old queue gave out, even those of lost rows
    staging = _build_beside(root, rows + rebuilt, _dependencies(rows + rebuilt, deps), max([highest, *taken]) + 1)
    try:  # only a whole new queue replaces the old one
        kept = _set_aside(path) if path.exists() else None
        staging.joinpath(path.name).replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with Queue(root) as queue:
        queue.recover()  # rows that were running, whose process is gone
    return Rebuilt(path, kept, len(rows), len(rebuilt), skipped, damaged=not healthy)


def _build_beside(root: Path, rows: list[dict[str, Any]], deps: list[tuple[int, int, str, int]], next_id: int) -> Path:
    """The rebuilt queue, written whole in a folder beside queue.db (the same file system, so it is renamed into
    place) before the old file is touched: a full disk or a read-only folder stops the rebuild with one line and
    leaves queue.db as it was (it used to be set aside first, leaving an empty queue that listed no runs)."""
    staging = root / f".recover-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        with Queue(staging, check=False) as queue:
            if queue.no_writes is not None:
                raise queue.no_writes
            queue.restore(rows, deps, next_id=next_id)
            queue.db.execute("PRAGMA journal_mode = DELETE")  # one file, with nothing left in a -wal beside it
    except DiskFull:
        shutil.rmtree(staging, ignore_errors=True)
        raise DiskFull(f"disk full: no room to rebuild {queue_path(root)} beside it; it is left as it was. Free some "
                       "space, then recover again") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


# ---------------------------------------------------------------- the damaged file

def _salvage(path: Path, root: Path) -> tuple[list[dict[str, Any]], list[tuple], int]:
    """(every row of `jobs` that can still be read, as dicts; the job_deps rows that can; the highest job id
    the file remembers). Refuses while a live worker uses the file."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.DatabaseError:
        return [], [], 0
    try:
        _refuse_live_workers(db, path)
        highest = _highest_id(db, root)
        try:
            found = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id").fetchall()
        except sqlite3.DatabaseError:  # a damaged page on the way: read the rows one by one
            found = []
            for job_id in range(1, highest + SCAN_PAST + 1):
                try:
                    found += db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchall()
                except sqlite3.DatabaseError:
                    continue
        try:
            deps = db.execute("SELECT job_id, needs, param, ended_it FROM job_deps").fetchall()
        except sqlite3.DatabaseError:  # damaged (or a queue from before pipelines): found again from the specs
            deps = []
    finally:
        db.close()
    rows = []
    for values in found:
        row = dict(zip(COLUMNS, values))
        try:  # a row whose text the damage reached is not trusted
            JobSpec.from_json(row["spec"])
        except (ValueError, KeyError, TypeError):
            continue
        if row["state"] in FINAL + ("queued", "running") and row["run_id"]:
            rows.append(row)
    return rows, deps, max([highest, *(row["id"] for row in rows)])


def _dependencies(rows: list[dict[str, Any]], salvaged: list[tuple]) -> list[tuple[int, int, str, int]]:
    """(job_id, needs, param, ended_it) for the rebuilt queue: the old file's rows between jobs that are
    back, and for every job without one, the runs its pinned spec names that are in the rebuilt queue.
    `ended_it` (the run's failure or cancellation ended the job) is read from the job's error, which the
    queue's trigger wrote as "needs X, which failed" or "cancelled with X, which it needs"."""
    from sptui.pipeline import _references

    by_run = {row["run_id"]: row for row in rows}
    ids = {row["id"] for row in rows}
    found = {(job_id, needs): (param, ended) for job_id, needs, param, ended in salvaged
             if job_id in ids and needs in ids}
    known = {job_id for job_id, _ in found}
    for row in rows:
        if row["id"] in known:
            continue
        try:
            references = _references(JobSpec.from_json(row["spec"]))
        except (SptuiError, ValueError, KeyError, TypeError):  # a kind this sptui does not know: nothing to read
            continue
        for key, word, _ in references:
            need = by_run.get(word.strip())
            if need is None or need["id"] == row["id"]:
                continue
            ended = row["state"] in ("failed", "cancelled") and row["error"] in (
                f"needs {need['run_id']}, which failed", f"cancelled with {need['run_id']}, which it needs")
            found.setdefault((row["id"], need["id"]), (key, int(ended)))
    return [(job_id, needs, param, ended) for (job_id, needs), (param, ended) in sorted(found.items())]


def _refuse_live_workers(db: sqlite3.Connection, path: Path) -> None:
    try:
        workers = db.execute("SELECT pid, pid_start FROM workers").fetchall()
    except sqlite3.DatabaseError:
        return
    for pid, start in workers:
        if is_alive(pid, start):
            raise SptuiError(f"worker pid {pid} is still using {path}: stop it first (kill {pid}), then recover")


def _highest_id(db: sqlite3.Connection, root: Path) -> int:
    """The highest job id anything remembers: the table's own counters where readable, the run folders."""
    highest = 0
    for sql in ("SELECT max(id) FROM jobs", "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"):
        try:
            value = db.execute(sql).fetchone()
            highest = max(highest, int(value[0] or 0) if value else 0)
        except (sqlite3.DatabaseError, TypeError, ValueError):
            continue
    folder = runs_dir(root)
    numbers = [int(p.name.split("-", 1)[0]) for p in folder.iterdir() if p.name.split("-", 1)[0].isdigit()] \
        if folder.is_dir() else []
    return max([highest, *numbers])


def _set_aside(path: Path) -> Path:
    """Move queue.db (and its -wal and -shm, which belong to it) to queue.db.damaged-<time>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("-wal", "-shm", ""):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(str(kept) + suffix)
    return kept


# ---------------------------------------------------------------- a run folder

def _row_from_folder(run: RunDir) -> dict[str, Any]:
    spec = _spec_of(run)
    recorded = run.read_state()
    state, error = recorded.get("state"), recorded.get("error")
    if state not in FINAL:
        state, error = _end_in_log(run)
    created = run.job_toml.stat().st_mtime
    finished = recorded.get("finished") or _mtime(run.log) or created
    head = run.run_id.split("-", 1)[0]
    return {
        "id": int(head) if head.isdigit() else None, "run_id": run.run_id, "name": spec.name, "kind": spec.kind,
        "spec": spec.to_json(), "spec_hash": spec.digest(), "source": str(run.job_toml), "priority": spec.priority,
        "state": state, "executor": "worker", "created": created, "started": created, "finished": finished,
        "attempts": 1, "error": error, "cancel_requested": 0,
    }


def _spec_of(run: RunDir) -> JobSpec:
    """The run's spec from job.toml: validated where it still validates, else as written (an old run whose
    parameters a newer sptui would refuse keeps its record)."""
    if not run.job_toml.exists():
        raise SptuiError("no job.toml (not a run folder)")
    try:
        return load_file(run.job_toml)[0]
    except SptuiError:
        pass
    try:
        (job,) = tomllib.loads(run.job_toml.read_text())["job"]
        params = {k: v for k, v in job.items() if k not in ("kind", "name", "priority", "sweep")}
        return JobSpec(kind=str(job["kind"]), name=str(job["name"]), params=params, sweep=job.get("sweep", {}),
                       priority=int(job.get("priority", 0)))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SptuiError(f"job.toml cannot be read ({type(e).__name__}: {e})") from None


def _end_in_log(run: RunDir) -> tuple[str, str | None]:
    """The end the runner wrote as the log's last "=== <state> after Ns: error" line, else interrupted."""
    try:
        lines = run.log.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        lines = []
    for line in reversed(lines):
        match = END_LINE.match(line)
        if match:
            return match.group(1), match.group(2)
    return "interrupted", "rebuilt from its run folder, which recorded no end: requeue to resume"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
