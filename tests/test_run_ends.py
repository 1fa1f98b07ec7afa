"""How a run ends when it should not "succeed": a loss that became NaN or inf fails with the step and the
instances; a run that cannot fit in memory is refused before it starts; a job stopped while drawing its
plots, its results complete, is only redrawn when requeued (not trained again)."""

from __future__ import annotations

import hashlib
import os
import re
import signal

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
