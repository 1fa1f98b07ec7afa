"""A real worker process running real jobs: success, cancel, kill -9 of a job or of everything, resume."""

import json
import os
import signal

import psutil

from sptui.queue import Queue, is_alive
from sptui.runs import RunDir, read_metrics

from .helpers import sptui, start_worker, tms_job, wait_for

LONG = dict(steps=400_000, log_points=40_000)  # far longer than any test waits: these jobs end only when killed or cancelled


def submit(root, text, tmp_path, name="job.toml"):
    path = tmp_path / name
    path.write_text(text)
    result = sptui("submit", str(path), root=root, check=True)
    return [line for line in result.stdout.split() if line]


def job(root, ref):
    with Queue(root) as q:
        return q.get(ref)


def has_checkpoint(root, ref):
    return list(RunDir(job(root, ref).run_dir(root)).checkpoints.glob("step-*.safetensors"))


def stop(worker):
    worker.send_signal(signal.SIGTERM)
    return worker.communicate(timeout=60)[0]


def test_worker_once_drains_the_queue_in_priority_order(artifacts, tmp_path):
    ids = submit(artifacts, tms_job("first", seeds=(1,)) + tms_job("urgent", seeds=(2,), priority=9), tmp_path)
    worker = start_worker(artifacts, "--once")
    out = worker.communicate(timeout=300)[0]
    assert worker.returncode == 0, out
    jobs = [job(artifacts, i) for i in ids]
    assert [j.state for j in jobs] == ["succeeded", "succeeded"], out
    assert jobs[1].started < jobs[0].started  # higher priority ran first
    for j in jobs:
        run = RunDir(j.run_dir(artifacts))
        assert (run.results / "model.safetensors").exists() and run.plot_files()
        assert j.step == j.total == 300 and j.attempts == 1 and j.device == "cpu"
        assert "=== succeeded" in run.log.read_text()


# Loaded by every Python started with this folder on PYTHONPATH; in a job's own process it starts a
# grandchild, as a job does that runs a data loader, a compiler pool or a shell command
STARTS_A_GRANDCHILD = """
import os, subprocess
with open("/proc/self/cmdline", "rb") as f:
    if b"sptui.runner" in f.read().split(b"\\0"):
        child = subprocess.Popen(["sleep", "600"])  # in the job's process group, as a child's children are
        with open(os.environ["GRANDCHILD_PIDS"], "a") as out:
            out.write(f"{child.pid}\\n")
"""


def test_cancel_ends_a_running_job_and_its_process_group(artifacts, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STARTS_A_GRANDCHILD)
    pids = tmp_path / "grandchildren"
    (ref,) = submit(artifacts, tms_job("long", **LONG), tmp_path)
    worker = start_worker(artifacts, env={"PYTHONPATH": str(hook), "GRANDCHILD_PIDS": str(pids)})
    try:
        running = wait_for(lambda: (j := job(artifacts, ref)).pid and j.step and j, what="the job to make progress")
        (grandchild,) = [int(line) for line in pids.read_text().split()]
        assert psutil.Process(grandchild).ppid() == running.pid and _alive(grandchild)
        assert sptui("cancel", ref, root=artifacts, check=True).stdout.strip().endswith("cancel requested")
        done = wait_for(lambda: (j := job(artifacts, ref)).state != "running" and j, what="the job to stop")
        assert done.state == "cancelled"
        wait_for(lambda: not _alive(running.pid), what="the job's process to be gone")
        wait_for(lambda: not _alive(grandchild), what="the process the job started to be gone too")
    finally:
        stop(worker)


def _alive(pid):
    """A process that still runs (a killed one that nobody has reaped yet, a zombie, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_of_a_job_shows_interrupted_and_requeue_resumes_from_its_checkpoint(artifacts, tmp_path):
    (ref,) = submit(artifacts, tms_job("crashy", steps=3000, checkpoint_every=500, log_points=30), tmp_path)
    worker = start_worker(artifacts)
    try:
        wait_for(lambda: has_checkpoint(artifacts, ref), timeout=120, what="a first checkpoint")
        victim = job(artifacts, ref)
        os.kill(victim.pid, signal.SIGKILL)
        lost = wait_for(lambda: (j := job(artifacts, ref)).state != "running" and j, what="the worker to notice")
        assert lost.state == "interrupted" and "SIGKILL" in lost.error
        checkpoint_step = int(has_checkpoint(artifacts, ref)[0].stem.split("-")[1])

        sptui("requeue", ref, root=artifacts, check=True)
        done = wait_for(lambda: (j := job(artifacts, ref)).state in ("succeeded", "failed") and j, timeout=240,
                        what="the resumed job to finish")
        assert done.state == "succeeded" and done.attempts == 2
        # the second attempt resumed at the checkpoint: its progress counts from there; elapsed spans both
        assert done.resumed_step == checkpoint_step and done.prior_seconds > 0
        assert done.elapsed() == done.prior_seconds + done.attempt_elapsed() and done.first_start < done.started
        run = RunDir(done.run_dir(artifacts))
        assert f"resuming from checkpoint at step {checkpoint_step}" in run.log.read_text()
        steps = [r["step"] for r in read_metrics(run.metrics) if r["split"] == "train"]
        assert steps == sorted(set(steps)) and steps[-1] == 3000  # one clean curve, nothing logged twice
    finally:
        stop(worker)


def test_a_worker_asked_to_stop_after_its_jobs_finishes_them_and_claims_no_more(artifacts, tmp_path):
    first, second = submit(artifacts, tms_job("a", seeds=(1,), steps=1500) + tms_job("b", seeds=(2,)), tmp_path)
    worker = start_worker(artifacts)
    try:
        wait_for(lambda: job(artifacts, first).state == "running", what="the first job to start")
        with Queue(artifacts) as q:
            assert q.request_worker_stop(worker.pid, "after-jobs")
            assert q.live_workers()[0]["stop"] == "after-jobs"  # what the app shows
        out = worker.communicate(timeout=300)[0]
        assert worker.returncode == 0, out
        assert job(artifacts, first).state == "succeeded", out  # its running job ended on its own
        assert job(artifacts, second).state == "queued", out  # and nothing more was claimed
        assert "claiming no more jobs" in out and "stopped as asked" in out
        with Queue(artifacts) as q:
            assert q.live_workers() == []
    finally:
        if worker.poll() is None:
            stop(worker)


def test_a_worker_asked_to_stop_now_interrupts_its_jobs_resumably(artifacts, tmp_path):
    (ref,) = submit(artifacts, tms_job("long", **LONG), tmp_path)
    worker = start_worker(artifacts)
    try:
        wait_for(lambda: (j := job(artifacts, ref)).pid and j.step, what="the job to make progress")
        with Queue(artifacts) as q:
            assert q.request_worker_stop(worker.pid, "now")
        out = worker.communicate(timeout=120)[0]
        assert worker.returncode == 0, out
        stopped = job(artifacts, ref)
        assert stopped.state == "interrupted" and "requeue" in stopped.error, out
    finally:
        if worker.poll() is None:
            stop(worker)


def test_kill_9_of_worker_and_job_loses_nothing_and_runs_nothing_twice(artifacts, tmp_path):
    first, second = submit(artifacts, tms_job("a", seeds=(1,), **LONG) + tms_job("b", seeds=(2,)), tmp_path)
    worker = start_worker(artifacts)
    running = wait_for(lambda: (j := job(artifacts, first)).pid and j.step and j, what="the first job to run")
    os.kill(worker.pid, signal.SIGKILL)
    os.killpg(running.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    wait_for(lambda: not is_alive(running.pid, running.pid_start), what="the job process to die")
    assert job(artifacts, first).state == "running"  # nobody alive has recorded anything yet

    again = start_worker(artifacts, "--once")
    out = again.communicate(timeout=300)[0]
    assert job(artifacts, first).state == "interrupted", out  # shown as interrupted, not silently rerun
    b = job(artifacts, second)
    assert b.state == "succeeded" and b.attempts == 1, out
    assert "marked interrupted" in out


def test_ls_json_and_logs(artifacts, tmp_path):
    (ref,) = submit(artifacts, tms_job("listed"), tmp_path)
    start_worker(artifacts, "--once").communicate(timeout=300)
    rows = json.loads(sptui("ls", "--json", root=artifacts, check=True).stdout)
    assert [(r["run_id"], r["state"], r["kind"]) for r in rows] == [(ref, "succeeded", "tms")]
    assert os.path.isdir(rows[0]["run_dir"])
    log = sptui("logs", ref, root=artifacts, check=True).stdout
    assert "tms job 'listed'" in log and "=== succeeded" in log


def test_logs_follow_streams_until_the_job_ends(artifacts, tmp_path):
    (ref,) = submit(artifacts, tms_job("followed", steps=2000), tmp_path)
    worker = start_worker(artifacts, "--once")
    follow = sptui("logs", "-f", ref, root=artifacts, check=True, timeout=300)
    worker.communicate(timeout=300)
    assert follow.stdout.rstrip().splitlines()[-1].split(" ", 2)[2].startswith("=== succeeded")


def test_worker_on_missing_gpu_is_a_clear_one_line_error(artifacts):
    result = sptui("worker", "--device", "cuda", root=artifacts)
    assert result.returncode == 2
    assert result.stderr.startswith("sptui: error: --device cuda: no CUDA GPU is visible")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_job_queued_for_a_gpu_fails_in_one_line_on_a_worker_without_one(artifacts, tmp_path):
    """`submit --device cuda` is refused here, but the app and the Python API can still queue such a job: a CPU
    worker that takes it fails it with the one line `--device cuda` gets, not torch's assertion mid-run."""
    from sptui.spec import parse_text

    with Queue(artifacts) as q:
        (queued,) = q.submit(parse_text(tms_job("on-gpu"), "job.toml"), device="cuda")
    start_worker(artifacts, "--once").communicate(timeout=300)
    ended = job(artifacts, queued.run_id)
    assert ended.state == "failed"
    assert ended.error.startswith("--device cuda: no CUDA GPU is visible"), ended.error
    assert "--device cuda: no CUDA GPU is visible" in RunDir(ended.run_dir(artifacts)).log.read_text()


def test_a_stopped_worker_falls_silent_and_answers_again_when_continued(artifacts):
    """ctrl+z on `sptui worker` leaves its process alive but its queued jobs waiting: its heartbeat says so."""
    import time

    from sptui.queue import WORKER_BEAT_SECONDS, WORKER_SILENT_SECONDS

    worker = start_worker(artifacts)
    try:
        with Queue(artifacts) as q:
            first = wait_for(q.live_workers, timeout=60, what="a live worker")[0]["heartbeat"]
            wait_for(lambda: q.live_workers()[0]["heartbeat"] > first, timeout=30, what="a second beat")
            os.kill(worker.pid, signal.SIGSTOP)
            wait_for(lambda: psutil.Process(worker.pid).status() == psutil.STATUS_STOPPED, timeout=30,
                     what="the worker to stop")  # a stopped process commits nothing more
            last = q.live_workers()[0]["heartbeat"]
            time.sleep(3 * WORKER_BEAT_SECONDS)  # the promise is that nothing happens: three beats must pass
            (stopped,) = q.live_workers()
            assert stopped["heartbeat"] == last and stopped["pid"] == worker.pid  # alive, but silent
            assert not q.live_workers(now=last + WORKER_SILENT_SECONDS + 1)[0]["responding"]
            assert q.live_workers(now=last + 1)[0]["responding"]
            os.kill(worker.pid, signal.SIGCONT)
            wait_for(lambda: q.live_workers()[0]["heartbeat"] > last, timeout=30, what="the beat to come back")
    finally:
        os.kill(worker.pid, signal.SIGCONT)
        stop(worker)


def test_a_copy_of_the_artifacts_folder_does_not_claim_the_originals_worker(artifacts, tmp_path):
    """The worker row lives in queue.db: a folder copied (cp -r, rsync) while a worker serves the original must not
    show that worker as its own (its queued jobs would seem to have one)."""
    import shutil

    worker = start_worker(artifacts)
    try:
        with Queue(artifacts) as q:
            (served,) = wait_for(q.live_workers, timeout=60, what="a live worker")
        copy = tmp_path / "copied-artifacts"
        shutil.copytree(artifacts, copy)
        with Queue(copy) as q:
            assert q.live_workers() == []
        with Queue(artifacts) as q:  # the original still has it
            assert [w["pid"] for w in q.live_workers()] == [served["pid"]] == [worker.pid]
    finally:
        stop(worker)
