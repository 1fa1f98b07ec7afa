"""A full disk and a read-only artifacts folder, for real: a small tmpfs each test mounts (skipped, with
the reason, where this process may not mount one).

What a user is promised: the first error is what they read ("disk full", in one line, no traceback), it
is recorded on the run wherever the queue can still be written, no run is left "running", and every
reading command still works.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from sptui.queue import DiskFull, Queue
from sptui.runner import execute
from sptui.runs import RunDir
from sptui.spec import parse_text

from .helpers import fill_disk, mount_tmpfs, sptui, start_worker, tms_job

# 200 x 100 weights: every snapshot is 80 KB and there are 100, far more than the 3 MiB disk holds
FILL = tms_job("fill", extra="snapshots = 100").replace("n_features = 5\nn_hidden = 2",
                                                         "n_features = 200\nn_hidden = 100")
TINY = tms_job("tiny", steps=30, log_points=3)


@pytest.fixture
def disk(tmp_path):
    mount = tmp_path / "disk"
    unmount = mount_tmpfs(mount, "3m")
    yield mount
    unmount()


def jobs(root):
    with Queue(root) as q:
        return q.list()


def no_partial_files(root) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".tmp" in p.name]


def test_a_job_that_fills_the_disk_fails_with_disk_full_recorded_on_its_run(disk, tmp_path):
    root = disk / "artifacts"
    (tmp_path / "fill.toml").write_text(FILL)
    result = sptui("batch", str(tmp_path / "fill.toml"), root=root)
    # 1: recorded in the queue; 2: the queue had no room left to record it (said in one line)
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    (job,) = json.loads(sptui("ls", "--json", root=root, check=True).stdout)  # shown as the run recorded it
    assert job["state"] == "failed"
    assert job["error"].startswith(f"disk full: No space left on device writing {root}/runs/{job['run_id']}/checkpoints/")
    assert f"failed {job['run_id']}: disk full: No space left on device writing " in result.stdout
    recorded = RunDir(root / "runs" / job["run_id"]).read_state()["error"]
    assert job["error"].startswith(recorded)  # the run's own record agrees
    assert no_partial_files(root) == []  # the half-written snapshot is gone, and its space with it


def test_when_nothing_can_be_written_the_first_error_is_the_outcome(disk):
    """The log, the metrics and state.json all fail: the first failure is the run's outcome, and the
    failures after it (writing the traceback to the log, ...) change nothing and raise nothing."""
    root = disk / "artifacts"
    (spec,) = parse_text(TINY, "t.toml")
    run = RunDir(root / "runs" / "0001-tiny")
    run.create(spec.to_toml())
    fill_disk(disk)
    outcome = execute(spec, run, artifacts_root=root, render=False)
    assert outcome.state == "failed"
    assert outcome.error.startswith(f"disk full: No space left on device writing {run.metrics}")


def test_a_job_under_a_worker_that_fills_the_disk_is_recorded_as_disk_full(disk, tmp_path):
    root = disk / "artifacts"
    (tmp_path / "fill.toml").write_text(FILL)
    sptui("submit", str(tmp_path / "fill.toml"), root=root, check=True)
    out = start_worker(root, "--once").communicate(timeout=300)[0]  # ends, whether or not the queue had room
    # recorded in the queue where it had room, else shown from the run folder by every reader (sptui ls)
    (job,) = json.loads(sptui("ls", "--json", root=root, check=True).stdout)
    assert job["state"] == "failed" and job["error"].startswith("disk full: No space left on device writing "), out
    assert "Traceback" not in out


def test_on_a_full_disk_writing_commands_say_so_in_one_line_and_reading_still_works(disk, tmp_path):
    root = disk / "artifacts"
    (tmp_path / "tiny.toml").write_text(TINY)
    sptui("batch", str(tmp_path / "tiny.toml"), root=root, check=True)
    with Queue(root) as queue:  # a batch that died when the disk filled, its end not recorded
        dead = subprocess.Popen(["true"])
        dead.wait()
        queue.submit(parse_text(tms_job("died", seeds=(5,)), "t.toml"), state="running", owner_pid=dead.pid,
                     executor="batch")
    filler = fill_disk(disk)
    for command in ("batch", "submit"):
        result = sptui(command, str(tmp_path / "tiny.toml"), "--force" if command == "submit" else "--json", root=root)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr == (f"sptui: error: disk full: the queue {root / 'queue.db'} cannot be written (the disk "
                                 "holding it has no space left); free some space\n")
    listed = sptui("ls", root=root, check=True).stdout
    assert "0001-tiny" in listed and "succeeded" in listed
    assert "state: succeeded" in sptui("show", "1", root=root, check=True).stdout
    died = sptui("show", "died", root=root, check=True).stdout  # not shown as "running": nothing runs it
    assert "state: interrupted" in died and "a full disk is the likely cause" in died and "(not recorded: disk full" in died
    assert "=== succeeded" in sptui("logs", "tiny", root=root, check=True).stdout
    filler.unlink()
    assert sptui("submit", str(tmp_path / "tiny.toml"), "--force", root=root).returncode == 0  # space again: works
    sptui("ls", root=root, check=True)  # records what it can now: the lost run
    assert [j.state for j in jobs(root)] == ["succeeded", "interrupted", "queued"]


def test_a_write_that_finds_the_disk_full_raises_disk_full_not_a_failed_rollback(disk):
    root = disk / "artifacts"
    with Queue(root) as queue:  # open (its -wal and -shm made) before the disk fills
        queue.submit(parse_text(TINY, "t.toml"))
        filler = fill_disk(disk)
        with pytest.raises(DiskFull, match=r"^disk full: cannot write the queue .*queue\.db \(database or disk is full\)"):
            for i in range(50):  # the WAL has a little room left in its last block: fill it
                queue.submit(parse_text(tms_job(f"more{i}", seeds=(i,)), "t.toml"))
        assert queue.list()[0].name == "tiny"  # the connection still reads
        filler.unlink()
        queue.submit(parse_text(tms_job("after", seeds=(99,)), "t.toml"))  # and writes again once there is space
        assert queue.list()[-1].name == "after"


def test_a_job_lost_on_a_nearly_full_disk_is_said_to_have_run_out_of_space(disk):
    root = disk / "artifacts"
    with Queue(root) as queue:
        dead = subprocess.Popen(["true"])
        dead.wait()
        (job,) = queue.submit(parse_text(TINY, "t.toml"), state="running", owner_pid=dead.pid, executor="batch")
        RunDir(job.run_dir(root)).root.mkdir(parents=True)
        filler = fill_disk(disk)
        os.truncate(filler, filler.stat().st_size - (256 << 10))  # 256 KiB free: the queue can be written
        (lost,) = queue.recover()
    assert lost.state == "interrupted"
    assert "the disk holding it has" in lost.error and "a full disk is the likely cause" in lost.error


def test_a_read_only_artifacts_folder_can_be_read_by_every_reading_command(disk, tmp_path):
    root = disk / "artifacts"
    (tmp_path / "tiny.toml").write_text(TINY)
    sptui("batch", str(tmp_path / "tiny.toml"), root=root, check=True)
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if remounted.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
    listed = sptui("ls", root=root, check=True).stdout
    assert "0001-tiny" in listed and "succeeded" in listed
    assert '"state": "succeeded"' in sptui("show", "tiny", "--json", root=root, check=True).stdout
    assert "=== succeeded" in sptui("logs", "1", root=root, check=True).stdout
    with Queue(root) as queue:
        assert queue.read_only and [j.run_id for j in queue.list()] == ["0001-tiny"]
    exported = sptui("export", "tiny", root=root)  # writes PNGs: refused in one line
    assert exported.returncode == 2 and exported.stderr.startswith("sptui: error: Read-only file system: ")
    assert exported.stderr.count("\n") == 1
    result = sptui("submit", str(tmp_path / "tiny.toml"), "--force", root=root)
    assert result.returncode == 2
    assert result.stderr == (f"sptui: error: the artifacts folder {root} is read-only: the queue can be read here but "
                             "not changed\n")
