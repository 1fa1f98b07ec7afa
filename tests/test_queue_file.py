"""The queue file and the run folders as a user can break them: a damaged queue.db (a page overwritten),
`sptui recover`, a deleted run folder, and a job whose end only its run folder could record."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import time

from sptui.queue import Queue, own_identity
from sptui.runner import execute
from sptui.runs import RunDir
from sptui.spec import parse_text

from .helpers import sptui, tms_job

PAGE = 4096


def run_now(root, text):
    """Queue a real tiny job and run it in this process the way a worker does; returns the final Job."""
    with Queue(root) as queue:
        (job,) = queue.submit(parse_text(text, "t.toml"))
        claimed = queue.claim(*own_identity())
        assert claimed.id == job.id
        outcome = execute(job.job_spec(), RunDir(job.run_dir(root)), artifacts_root=root, render=False)
        queue.finish(job.id, outcome.state, error=outcome.error)
        return queue.get(job.id)


def damage_page_holding(db_path, marker: bytes) -> int:
    """Overwrite the page of the file that holds `marker` with garbage; returns its page number."""
    data = bytearray(db_path.read_bytes())
    at = data.index(marker)
    page = at // PAGE
    data[page * PAGE:(page + 1) * PAGE] = bytes((i * 7 + 3) % 251 for i in range(PAGE))
    db_path.write_bytes(bytes(data))
    return page + 1


def passes_quick_check(db_path) -> bool:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except sqlite3.DatabaseError:  # "database disk image is malformed": damaged where the check starts
        return False
    finally:
        con.close()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_queue_is_refused_in_one_line_and_recover_rebuilds_it(artifacts, tmp_path):
    done = run_now(artifacts, tms_job("good", steps=30, log_points=3))
    diverged = run_now(artifacts, tms_job("bad", steps=30, log_points=3, seeds=(1,),
                                          extra="lr = 1.0\nweight_decay = 10.0"))
    assert (done.state, diverged.state) == ("succeeded", "failed")
    waiting = [f"waiting-{i:02d}-" + "x" * 60 for i in range(40)]  # queued: no run folder, only rows
    with Queue(artifacts) as queue:
        queue.submit(parse_text("".join(tms_job(name, seeds=(100 + i,)) for i, name in enumerate(waiting)), "w.toml"))
    db = artifacts / "queue.db"
    assert not (artifacts / "queue.db-wal").exists()  # every connection closed: the file holds everything
    damage_page_holding(db, b'"name": "bad"')  # the failed run's row, and the queued rows beside it
    assert not passes_quick_check(db)  # really damaged
    before = digest(db)

    for args in (("ls",), ("show", "1"), ("submit", str(_job_file(tmp_path)))):
        result = sptui(*args, root=artifacts)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.startswith(f"sptui: error: {db} is damaged (") and result.stderr.count("\n") == 1
        assert f"`sptui --artifacts {artifacts} recover` rebuilds the queue" in result.stderr
    assert digest(db) == before  # nothing was written into it

    result = sptui("recover", root=artifacts, check=True)
    kept = sorted(p for p in artifacts.glob("queue.db.damaged-*") if p.name[-1].isdigit())  # (and its -wal, -shm)
    assert len(kept) == 1 and digest(kept[0]) == before
    first, second = result.stdout.splitlines()[:2]
    assert second == f"the damaged file is kept as {kept[0]}"
    with Queue(artifacts) as queue:  # passes its quick_check on opening
        jobs = {j.name: j for j in queue.list()}
    assert jobs["good"].state == "succeeded" and jobs["good"].run_id == done.run_id
    assert jobs["bad"].state == "failed" and jobs["bad"].error == diverged.error  # from its run folder
    assert jobs["bad"].id == diverged.id
    recovered = [n for n in waiting if n in jobs]
    assert all(jobs[n].state == "queued" for n in recovered)
    assert 0 < len(recovered) < len(waiting)  # the rows on the damaged page are lost, the others are not
    from_file, from_folders = (int(w) for w in re.findall(r": (\d+) jobs? read back from the old file, (\d+) "
                                                     r"rebuilt from their run folders$", first)[0])
    assert from_file + from_folders == len(jobs) and from_folders >= 1  # "bad" at least came from its folder
    assert sptui("recover", root=artifacts).stderr.startswith(f"sptui: error: {db} passes its integrity check")
    new = sptui("submit", str(_job_file(tmp_path)), root=artifacts, check=True).stdout.split()[0]
    assert int(new.split("-")[0]) == len(waiting) + 3  # a new id after every id the old queue gave out


def _job_file(tmp_path):
    path = tmp_path / "new.toml"
    path.write_text(tms_job("new", seeds=(999,)))
    return path


def test_recover_rebuilds_a_deleted_queue_from_the_run_folders(artifacts):
    done = run_now(artifacts, tms_job("good", steps=30, log_points=3))
    (artifacts / "queue.db").unlink()
    result = sptui("recover", "--json", root=artifacts, check=True)
    report = json.loads(result.stdout)
    assert (report["from_file"], report["from_folders"], report["kept"]) == (0, 1, None)
    with Queue(artifacts) as queue:
        (job,) = queue.list()
    assert (job.id, job.run_id, job.state, job.kind, job.name) == (done.id, done.run_id, "succeeded", "tms", "good")
    assert job.job_spec() == done.job_spec()


def test_a_deleted_run_folder_shows_as_missing(artifacts):
    done = run_now(artifacts, tms_job("gone", steps=30, log_points=3))
    shutil.rmtree(done.run_dir(artifacts))
    with Queue(artifacts) as queue:  # cancelled before it ever ran: it never had a folder to miss
        (never,) = queue.submit(parse_text(tms_job("never", seeds=(3,)), "t.toml"))
        queue.cancel(never.id)
    listed = sptui("ls", root=artifacts, check=True).stdout
    assert "succeeded, folder missing" in listed
    rows = json.loads(sptui("ls", "--json", root=artifacts, check=True).stdout)
    assert sorted((r["state"], r["folder_missing"]) for r in rows) == [("cancelled", False), ("succeeded", True)]
    shown = sptui("show", "gone", root=artifacts, check=True).stdout
    assert "state: succeeded (its run folder is missing: deleted or moved)" in shown
    assert "files: (run folder missing)" in shown
    logs = sptui("logs", "gone", root=artifacts)
    assert logs.returncode == 2
    assert logs.stderr == (f"sptui: error: run {done.run_id} (succeeded): its run folder is missing (deleted or "
                           f"moved): {done.run_dir(artifacts) / 'log.txt'} cannot be shown\n")


def test_a_listing_of_many_runs_marks_exactly_the_missing_folders(artifacts):
    """A listing reads the runs folder once instead of a stat per run: the same answer as for a few runs."""
    with Queue(artifacts) as queue:
        jobs = queue.submit(parse_text("".join(tms_job(f"run-{i}", seeds=(i,)) for i in range(40)), "many.toml"))
        queue.db.execute("UPDATE jobs SET state = 'succeeded', started = 1, finished = 2")
        for job in jobs:
            job.run_dir(artifacts).mkdir(parents=True)
        gone = {jobs[3].run_id, jobs[29].run_id}
        for run_id in gone:
            (artifacts / "runs" / run_id).rmdir()
        assert {j.run_id for j in queue.list() if j.folder_missing} == gone
        assert queue.get(jobs[3].id).folder_missing and not queue.get(jobs[4].id).folder_missing


def test_a_lost_job_takes_the_end_its_run_folder_recorded(artifacts):
    """A job whose end the queue could not take (a full disk) but whose state.json could: not a 'crash'."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Queue(artifacts) as queue:
        (job,) = queue.submit(parse_text(tms_job("lost"), "t.toml"), state="running", owner_pid=dead.pid,
                              executor="batch")
        run = RunDir(job.run_dir(artifacts))
        run.root.mkdir(parents=True)
        run.record_state(state="failed", error="disk full: No space left on device writing x", finished=time.time())
        (lost,) = queue.recover()
    assert (lost.state, lost.error) == ("failed", "disk full: No space left on device writing x")


def damage_page(db_path, page: int) -> None:
    data = bytearray(db_path.read_bytes())
    data[(page - 1) * PAGE:page * PAGE] = bytes((i * 7 + 3) % 251 for i in range(PAGE))
    db_path.write_bytes(bytes(data))


def test_recover_keeps_what_each_job_waits_for(artifacts):
    """A rebuilt queue must not let a job run before the run it reads: what jobs wait for (job_deps) comes back,
    from the old file where it still holds it, else from the run ids each spec was pinned to; so does a chain
    that a failure ended, which a requeue brings back."""
    text = (tms_job("base") + tms_job("later", seeds=(1,), extra='after = ["base"]')
            + tms_job("doomed", seeds=(2,)) + tms_job("follower", seeds=(3,), extra='after = ["doomed"]'))
    with Queue(artifacts) as queue:
        base, later, doomed, follower = queue.submit(parse_text(text, "chain.toml"))
        queue.db.execute("UPDATE jobs SET state = 'running', started = 1 WHERE id = ?", (doomed.id,))
        assert queue.finish(doomed.id, "failed", error="it broke")  # the trigger ends the job waiting for it
        assert queue.get(follower.id).state == "failed"
    db = artifacts / "queue.db"

    def rebuilt() -> dict:
        with Queue(artifacts) as queue:
            jobs = {j.name: j for j in queue.list()}
            assert queue.claim(*own_identity()).name == "base"  # "later" is not claimable while base waits
            assert queue.claim(*own_identity()) is None
            queue.db.execute("UPDATE jobs SET state = 'queued', started = NULL WHERE name = 'base'")
            queue.requeue(doomed.run_id)  # brings back the job its failure ended, waiting again
            follows = queue.get(follower.id)
            queue.db.execute("UPDATE jobs SET state = 'failed' WHERE id = ?", (doomed.id,))
            queue.db.execute("UPDATE jobs SET state = 'failed', error = ? WHERE id = ?",
                             (f"needs {doomed.run_id}, which failed", follower.id))
            return jobs | {"follows": follows}

    # 1. recover --force on a healthy file: job_deps read back as they are
    forced = sptui("recover", "--force", root=artifacts, check=True)
    assert "the old file is kept as" in forced.stdout and "the damaged file" not in forced.stdout  # it was healthy
    jobs = rebuilt()
    assert jobs["later"].waiting_for == ((base.run_id, "queued"),)
    assert jobs["follows"].state == "queued" and jobs["follows"].waiting_for == ((doomed.run_id, "queued"),)

    # 2. the page of job_deps damaged: found again from the pinned specs and the errors the trigger wrote
    with sqlite3.connect(db) as con:
        (root_page,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'job_deps'").fetchone()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    damage_page(db, root_page)
    assert not passes_quick_check(db)
    result = sptui("recover", root=artifacts, check=True)
    assert "4 jobs read back from the old file" in result.stdout
    assert "the damaged file is kept as" in result.stdout
    jobs = rebuilt()
    assert jobs["later"].waiting_for == ((base.run_id, "queued"),)
    assert jobs["follows"].state == "queued" and jobs["follows"].waiting_for == ((doomed.run_id, "queued"),)


def test_a_queue_damaged_after_it_passed_its_check_is_checked_again(artifacts):
    """quick_check runs once per process for an unchanged file; a file changed since (here: damaged) is checked again."""
    from sptui.queue import QueueDamaged

    with Queue(artifacts) as queue:
        queue.submit(parse_text("".join(tms_job(f"row-{i:03d}-" + "y" * 80, seeds=(i,)) for i in range(60)), "t.toml"))
    Queue(artifacts).close()  # passes, and is remembered as passed
    damage_page_holding(artifacts / "queue.db", b'"name": "row-030-')
    try:
        Queue(artifacts).close()
    except QueueDamaged as e:
        assert "is damaged" in str(e)
    else:
        raise AssertionError("a damaged queue opened without complaint")
