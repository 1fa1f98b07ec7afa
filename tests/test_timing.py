"""Elapsed time and ETA over attempts (sptui.timing, Job), and the log's progress lines (Context).

A resumed attempt's rate counts only its own steps; elapsed adds every attempt; a real queue file, real
checkpoints and a real Context drive it (the "kind" is this test, calling the Context as a kind does)."""

import time

import pytest
import torch

from sptui.context import Context, ProgressLines
from sptui.queue import Queue, own_identity
from sptui.runner import QueueHooks
from sptui.runs import RunDir
from sptui.spec import parse_text
from sptui.timing import eta_seconds, fmt_clock, fmt_duration

from .helpers import tms_job


def test_eta_counts_only_this_attempts_steps():
    assert eta_seconds(step=500, total=1000, base_step=0, seconds=50) == pytest.approx(50)
    # resumed at 800: 50 s for 100 own steps, 100 to go -> 50 s (not 50/900*100 = 5.6 s)
    assert eta_seconds(step=900, total=1000, base_step=800, seconds=50) == pytest.approx(50)
    assert eta_seconds(step=800, total=1000, base_step=800, seconds=50) is None  # no own progress yet
    assert eta_seconds(step=10, total=None, base_step=0, seconds=5) is None
    assert eta_seconds(step=1000, total=1000, base_step=0, seconds=5) == 0


def test_formats():
    assert fmt_duration(None) == "" and fmt_duration(65) == "1m05s" and fmt_duration(3 * 3600 + 7 * 60) == "3h07m"
    now = time.mktime((2024, 3, 2, 15, 0, 0, 0, 0, -1))
    assert fmt_clock(now - 3600, now) == "14:00"
    assert fmt_clock(now - 86400, now) == "Mar 01 15:00"
    assert fmt_clock(now - 400 * 86400, now) == "2023-01-27"  # another year: the date, in the 12-cell column
    assert fmt_clock(None) == ""


def _claimed(queue):
    pid, start = own_identity()
    return queue.claim(pid, start)


def test_resumed_attempt_eta_and_elapsed_over_attempts(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(tms_job("resume", steps=1000), "t.toml"))
        job = _claimed(q)
        run = RunDir(job.run_dir(artifacts))
        run.create(job.job_spec().to_toml())
        ctx = Context(job.job_spec(), run, hooks=QueueHooks(q, job.id))
        ctx.set_total(1000)
        ctx.save_checkpoint(800, {"w": torch.zeros(2)})
        ctx.close()
        q.finish(job.id, "interrupted")
        # the first attempt ran from t=1000 to its last report at t=1060; it was found dead at t=5000
        q.db.execute("UPDATE jobs SET started = 1000, heartbeat = 1060, finished = 5000 WHERE id = ?", (job.id,))
        q.requeue(job.id)
        queued = q.get(job.id)
        assert queued.prior_seconds == pytest.approx(60) and queued.first_started == 1000
        assert queued.elapsed() == pytest.approx(60) and queued.attempt_elapsed() is None

        job = _claimed(q)
        hooks = QueueHooks(q, job.id)
        ctx = Context(job.job_spec(), run, hooks=hooks)
        assert ctx.load_checkpoint().step == 800
        ctx.set_total(1000)
        job = q.get(job.id)
        assert (job.step, job.resumed_step) == (800, 800)
        assert job.eta(job.started + 10) is None  # nothing done by this attempt yet: no guess
        ctx.progress(900)
        hooks.flush()
        job = q.get(job.id)
        # 100 own steps in 10 s, 100 to go: 10 s (counting the resumed steps said 10/900*100 = 1.1 s)
        assert job.eta(job.started + 10) == pytest.approx(10)
        assert job.elapsed(job.started + 10) == pytest.approx(70)  # 60 s before, 10 s now
        assert job.attempt_elapsed(job.started + 10) == pytest.approx(10)
        assert job.first_start == 1000
        ctx.close()


def test_a_requeue_of_a_run_that_never_started_adds_nothing(artifacts):
    with Queue(artifacts) as q:
        (job,) = q.submit(parse_text(tms_job("never"), "t.toml"))
        q.cancel(job.id)
        q.requeue(job.id)
        job = q.get(job.id)
        assert job.prior_seconds == 0 and job.elapsed() is None and job.first_started is None


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_lines_at_a_steady_pace():
    clock = Clock()
    pace = ProgressLines(10.0, clock=clock)
    clock.now = 5
    assert pace.line(100, 1000) is None  # too soon
    clock.now = 10
    pace.note("train", {"loss": [0.5, 0.25]})
    line = pace.line(200, 1000)
    assert line == "progress: step 200/1000 (20%), 20 steps/s, eta 40s, train loss 0.375".replace("40s", "0m40s")
    clock.now = 25
    assert pace.line(200, 1000) is None  # no step since the last line: nothing new to say
    pace.restart(600)  # resumed from a checkpoint at 600
    clock.now = 45
    assert pace.line(700, 1000) == "progress: step 700/1000 (70%), 5 steps/s, eta 1m00s, train loss 0.375"


def test_context_writes_progress_lines_into_the_log(tmp_path):
    run = RunDir(tmp_path / "runs" / "0001-lines")
    spec = parse_text(tms_job("lines"), "t.toml")[0]
    run.create(spec.to_toml())
    ctx = Context(spec, run, progress_line_seconds=0.0)
    ctx.set_total(300)
    ctx.log(10, split="train", loss=0.5)
    ctx.progress(20)
    ctx.close()
    lines = [line for line in run.log.read_text().splitlines() if "progress:" in line]
    assert len(lines) == 2 and "step 20/300 (7%)" in lines[1] and "train loss 0.5" in lines[1]
