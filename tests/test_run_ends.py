"""How a run ends when it should not "succeed": a loss that became NaN or inf fails with the step and the
instances; a run that cannot fit in memory is refused before it starts; a job stopped while drawing its
plots, its results complete, is only redrawn when requeued (not trained again)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time

import pytest

from sptui.queue import Queue
from sptui.runs import RunDir, read_metrics

from .helpers import KindRunError, run_kind, sptui, start_worker, tms_job, wait_for

TINY = {"n_features": 5, "n_hidden": 2, "steps": 300, "batch_size": 64, "eval_batch": 256, "log_points": 10,
        "checkpoint_every": 100}


@pytest.mark.parametrize("kind, params, sweep, where", [
    # AdamW's decoupled decay p <- p (1 - lr wd) = -9 p: the weights overflow within a few dozen steps
    ("tms", {**TINY, "lr": 1.0}, {"weight_decay": [0.01, 10.0]}, " in 1 of 2 instances (#1 [weight_decay=10.0])"),
    ("functions", {"width": 4, "steps": 300, "batch_size": 64, "eval_batch": 256, "log_points": 10, "lr": 1.0,
                   "weight_decay": 10.0}, None, ""),
])
def test_a_loss_that_becomes_nan_fails_the_run_with_the_step_and_instances(tmp_path, kind, params, sweep, where):
    with pytest.raises(KindRunError) as failed:
        run_kind(kind, params, tmp_path, sweep=sweep)
    assert failed.value.state == "failed"
    logged = read_metrics(failed.value.run.metrics)
    *before, last = logged
    bad = last["loss"] if isinstance(last["loss"], list) else [last["loss"]]
    assert None in bad and all(None not in (r["loss"] if isinstance(r["loss"], list) else [r["loss"]]) for r in before)
    assert failed.value.error == (f"training diverged: the {last['split']} loss is nan at step {last['step']}{where}; "
                                  f"the last finite loss was logged at step {before[-1]['step']} (a smaller lr "
                                  "usually helps)")
    assert last["step"] < params["steps"]  # it stopped there, and saved nothing NaN as a result
    assert not (failed.value.run.results / "model.safetensors").exists()


def test_a_run_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path):
    params = {**TINY, "n_features": 100_000, "n_hidden": 1000, "batch_size": 1_000_000}
    with pytest.raises(KindRunError) as refused:
        run_kind("tms", params, tmp_path, sweep={"seed": [0, 1, 2, 3]})
    assert refused.value.state == "failed"
    assert re.fullmatch(r"this run needs about [\d.]+ GiB of memory at its peak \(4 instances\), more than the "
                        r"[\d.]+ GiB free on this machine \(available RAM\); lower batch_size or eval_batch \(or "
                        r"n_features x n_hidden\), or split the sweep into several jobs", refused.value.error), refused.value.error
    assert read_metrics(refused.value.run.metrics) == []  # refused before a single step


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_job_killed_while_drawing_its_plots_is_only_redrawn_when_requeued(artifacts, tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(tms_job("drawn", steps=600, checkpoint_every=200, log_points=12))
    (ref,) = sptui("submit", str(path), root=artifacts, check=True).stdout.split()
    worker = start_worker(artifacts)
    try:
        with Queue(artifacts) as queue:
            job = queue.get(ref)
            run = RunDir(job.run_dir(artifacts))
            # the moment the results are complete the job draws its PNGs (seconds of matplotlib): kill it there
            wait_for(lambda: run.read_state().get("results_complete"), timeout=240, interval=0.01,
                     what="the results to be complete")
            os.killpg(queue.get(ref).pid, signal.SIGKILL)
            killed = wait_for(lambda: (j := queue.get(ref)).state != "running" and j, what="the worker to notice")
        assert killed.state == "interrupted"
        metrics, model = run.metrics.read_text(), digest(run.results / "model.safetensors")
        sptui("requeue", ref, root=artifacts, check=True)
        with Queue(artifacts) as queue:
            done = wait_for(lambda: (j := queue.get(ref)).state not in ("queued", "running") and j, timeout=240,
                            what="the requeued job to end")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    assert done.state == "succeeded" and done.attempts == 2
    log = run.log.read_text()
    assert "the results were completed by an earlier attempt: only the plots are drawn" in log
    assert "resuming from checkpoint" not in log
    assert run.metrics.read_text() == metrics and digest(run.results / "model.safetensors") == model
    assert run.plot_files()


def test_a_run_drawing_its_plots_says_so_in_its_log_and_in_the_queue(artifacts):
    """Once the kind returns, the runner draws the PNGs (tms: tens of seconds on a busy machine) with every step
    done: the log says "drawing plots" before the PNGs appear, and the queue the app reads holds that phase (the
    run head shows it, no "eta 0m00s") until the run ends. Observed from the hooks, in the order they are called."""
    import dataclasses

    from sptui.queue import own_identity
    from sptui.runner import QueueHooks, execute
    from sptui.spec import parse_text
    from sptui.tui.screens.run import run_head

    seen = {}

    class Watching(QueueHooks):
        def phase(self, phase):
            super().phase(phase)
            seen["saying"] = (phase, list(run.plots.glob("*.png")), run.log.read_text().splitlines()[-1])

        def info(self, message):
            if message.startswith("wrote ") and "plot" in message:  # the drawing just ended
                job = self.queue.get(self.job_id)
                seen["drawn"] = (job, len(list(run.plots.glob("*.png"))))

    with Queue(artifacts) as queue:
        (job,) = queue.submit(parse_text(tms_job("drawing", steps=60, checkpoint_every=60), "t.toml"))
        job = queue.claim(*own_identity())
        run = RunDir(job.run_dir(artifacts))
        outcome = execute(job.job_spec(), run, hooks=Watching(queue, job.id), artifacts_root=artifacts)
        assert outcome.state == "succeeded" and not outcome.error
        phase, pngs, last_line = seen["saying"]
        assert phase == "drawing plots" and pngs == [] and last_line.endswith(" drawing plots")
        drawing, drawn = seen["drawn"]
        assert drawn > 0 and drawing.state == "running" and drawing.step == drawing.total
        assert drawing.phase_now == "drawing plots" and drawing.eta() is None
        head = run_head(drawing).plain
        assert "drawing plots" in head and "eta" not in head
        # an earlier attempt's phase is not this attempt's: requeued and claimed again, it shows its eta
        assert dataclasses.replace(drawing, started=drawing.phase_at + 1).phase_now is None
        queue.finish(job.id, outcome.state)
        assert queue.get(job.id).phase_now is None
    log = run.log.read_text()
    assert log.index(" drawing plots\n") < log.index(" wrote ")


def test_a_run_drawing_its_plots_beats_and_says_how_long_it_has_drawn(artifacts, monkeypatch):
    """Drawing reports no steps: the runner beats the job's heartbeat from a thread meanwhile, so a run that draws
    for minutes is "drawing plots for 1m30s" in the run head, with no "no report" warning; the warning comes
    only once the beat itself stops."""
    import dataclasses

    import sptui.queue
    import sptui.runner
    from sptui.queue import own_identity
    from sptui.runner import QueueHooks, execute
    from sptui.spec import parse_text
    from sptui.tui.screens.run import run_head

    monkeypatch.setattr(sptui.queue, "JOB_BEAT_SECONDS", 0.05)
    real_renderer = sptui.runner.renderer

    def slow_renderer(kind):  # a big run's minutes of matplotlib, in a second
        draw = real_renderer(kind)

        def drawing(run):
            files = draw(run)
            time.sleep(1.0)
            return files
        return drawing

    monkeypatch.setattr(sptui.runner, "renderer", slow_renderer)
    seen = {}

    class Watching(QueueHooks):
        def info(self, message):
            if message.startswith("wrote ") and "plot" in message:
                seen["drawn"] = self.queue.get(self.job_id)

    with Queue(artifacts) as queue:
        (job,) = queue.submit(parse_text(tms_job("beating", steps=60, checkpoint_every=60), "t.toml"))
        job = queue.claim(*own_identity())
        run = RunDir(job.run_dir(artifacts))
        outcome = execute(job.job_spec(), run, hooks=Watching(queue, job.id), artifacts_root=artifacts)
        assert outcome.state == "succeeded" and not outcome.error
    drawn = seen["drawn"]
    assert drawn.phase_now == "drawing plots"
    assert drawn.heartbeat >= drawn.phase_at + 0.8  # it beat during the second of drawing, not only when it began
    # 90 s into the drawing, the last beat a second ago: what it does and how long, no warning
    beat = drawn.heartbeat
    drawing = dataclasses.replace(drawn, started=beat - 120, phase_at=beat - 90)
    head = run_head(drawing, now=beat + 1).plain
    assert "drawing plots for 1m31s" in head and "no report" not in head and "heartbeat" not in head
    assert drawing.silence(now=beat + 1) is None
    # the beat stopped 61 s ago: that silence is real, and said as such
    head = run_head(drawing, now=beat + 61).plain
    assert "no heartbeat for 1m01s while drawing plots (it beats every 0.05s): stopped or hung" in head
    # in its steps (no phase), a silence is a long step, or a hang, as before
    stepping = dataclasses.replace(drawn, phase=None, phase_at=None)
    assert stepping.silence(now=beat + 30) is None
    assert stepping.silence(now=beat + 90) == "no report for 1m30s: a long step, or a hang"


# Loaded by every Python started with this folder on PYTHONPATH: short beats and silences (a test's seconds for
# the app's minute), and in a job's own process a draw that holds until the test lets it go
HOLDS_THE_DRAWING = """
import os, time
import sptui.kinds, sptui.queue
sptui.queue.JOB_BEAT_SECONDS = 0.2
sptui.queue.JOB_QUIET_SECONDS = 2.0
with open("/proc/self/cmdline", "rb") as f:
    if b"sptui.runner" in f.read().split(b"\\0"):
        real = sptui.kinds.renderer

        def held(kind):
            draw = real(kind)

            def drawing(run):
                files = draw(run)
                deadline = time.monotonic() + 120
                while not os.path.exists(os.environ["RELEASE_DRAWING"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
                return files
            return drawing
        sptui.kinds.renderer = held
"""


def test_sptui_show_says_a_real_worker_s_job_is_drawing_and_warns_only_when_its_beat_stops(artifacts, tmp_path):
    import subprocess
    import sys

    from .helpers import REPO

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLDS_THE_DRAWING)
    release = tmp_path / "release"
    env = {"PYTHONPATH": str(hook), "RELEASE_DRAWING": str(release)}
    path = tmp_path / "job.toml"
    path.write_text(tms_job("held", steps=60, checkpoint_every=60))
    (ref,) = sptui("submit", str(path), root=artifacts, check=True).stdout.split()

    def show() -> str:
        result = subprocess.run([sys.executable, "-m", "sptui", "show", ref], capture_output=True, text=True,
                                env={**os.environ, "SPTUI_ARTIFACTS": str(artifacts), **env}, cwd=REPO, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    worker = start_worker(artifacts, env=env)
    try:
        with Queue(artifacts) as queue:
            drawing = wait_for(lambda: (j := queue.get(ref)).phase_now and j, timeout=240, what="the job to draw")
            # beats go on well past the 2 s silence the test's app calls real
            wait_for(lambda: queue.get(ref).heartbeat > drawing.phase_at + 3, timeout=60, what="beats while drawing")
            shown = show()
            assert re.search(r"^ +phase: drawing plots for 0m0[3-9]s$", shown, re.M), shown
            assert "silent" not in shown and "heartbeat" not in shown
            # a frozen process stops beating: now the silence is real, and said
            pid = queue.get(ref).pid
            os.kill(pid, signal.SIGSTOP)
            try:
                wait_for(lambda: queue.get(ref).quiet_for() > 2.5, timeout=30, what="the silence")
                shown = show()
            finally:
                os.kill(pid, signal.SIGCONT)
            assert re.search(r"^ +silent: no heartbeat for 0m0\ds while drawing plots \(it beats every 0.2s\): "
                             r"stopped or hung$", shown, re.M), shown
            release.touch()
            done = wait_for(lambda: (j := queue.get(ref)).state != "running" and j, timeout=120, what="the end")
        assert done.state == "succeeded" and done.phase_now is None
        assert "phase:" not in show()
    finally:
        release.touch()
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)


def test_a_slurm_job_drawing_its_plots_beats_its_status_file(tmp_path):
    """On Slurm the job's last report is status.json's `updated` (read by the submitting side as its heartbeat):
    the runner's beat while drawing rewrites it, so a long draw on a node is not taken for a hang either."""
    from sptui.runner import beating
    from sptui.slurm.status import Status, read_status
    from sptui.slurm.task import StatusHooks

    status = Status()
    status.write(tmp_path)
    first = read_status(tmp_path).updated
    with beating(StatusHooks(tmp_path, status), every=0.05):
        time.sleep(0.5)
    assert read_status(tmp_path).updated >= first + 0.3


def test_the_eta_column_says_plots_while_a_run_draws_in_ls_and_the_run_table(artifacts):
    """Past its steps a run has no ETA; the 7-wide ETA column of `sptui ls` and the app's run table says what it
    does instead ("plots"), from one helper (Job.eta_cell), and goes back to a time for a fresh attempt."""
    from sptui.queue import own_identity
    from sptui.spec import parse_text
    from sptui.tui.widgets.runtable import row_cells

    def eta_in_ls() -> str:
        out = sptui("ls", root=artifacts, check=True).stdout.splitlines()
        header, row = out[0], next(line for line in out[1:] if "eta-col" in line)
        end = header.index("eta") + len("eta")  # a right-aligned column: its cells end under the header's end
        return row[end - 7:end].strip()

    with Queue(artifacts) as queue:
        (job,) = queue.submit(parse_text(tms_job("eta-col", steps=600), "t.toml"))
        job = queue.claim(*own_identity())
        queue.progress(job.id, 300, 600)
        stepping = queue.get(job.id)
        now = stepping.started + 60  # half done in a minute: a minute left
        assert stepping.eta_cell(now) == "1m00s" == row_cells(stepping, False, now)["eta"]
        assert re.fullmatch(r"\dm\d\ds", eta_in_ls())
        queue.progress(job.id, 600, 600)
        queue.set_phase(job.id, "drawing plots")
        drawing = queue.get(job.id)
        assert drawing.eta() is None and drawing.eta_cell() == "plots" == row_cells(drawing, False, time.time())["eta"]
        assert eta_in_ls() == "plots"
        assert json_row(artifacts)["doing"].startswith("drawing plots for 0m0")
        # a phase no word is kept for still fits the column
        import dataclasses
        assert dataclasses.replace(drawing, phase="compressing results").eta_cell() == "compres"


def json_row(root) -> dict:
    import json
    (row,) = json.loads(sptui("ls", "--json", root=root, check=True).stdout)
    return row
