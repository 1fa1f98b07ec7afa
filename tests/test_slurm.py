"""The Slurm executor against a real single-node Slurm cluster (the `slurm` fixture, tests/slurm_cluster.py):
real sbatch, squeue, sacct, scancel and `scontrol requeue`, jobs running real sptui code on the node.
No fake sbatch anywhere; where Slurm cannot be installed these tests skip and say why."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sptui.queue import FINAL, Queue
from sptui.runner import execute
from sptui.runs import RunDir, load_arrays, read_json, read_metrics
from sptui.slurm import executor
from sptui.slurm.status import read_status
from sptui.spec import parse_text

from .helpers import sptui, tms_job, wait_for
from .test_slurm_split import assert_same_to_rounding


def job_file(tmp_path: Path, text: str, name: str = "jobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def wait_final(root: Path, job_id: int, timeout: float = 180) -> object:
    """Follow a run the way `sptui ls` does (reconcile from status.json + squeue/sacct) until it ends."""
    def ended():
        with Queue(root) as queue:
            executor.reconcile(queue, root)
            job = queue.get(job_id)
        return job if job.state in FINAL else None

    return wait_for(ended, timeout=timeout, what=f"job {job_id} to end on Slurm", interval=0.5)


def ls(root: Path) -> dict[str, dict]:
    return {row["run_id"]: row for row in json.loads(sptui("ls", "--json", root=root, check=True).stdout)}


def slurm_cmd(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def sacct_state(job_id: str) -> str:
    """The job's state in Slurm's accounting ("" until slurmdbd has recorded it: that lags the job by a moment)."""
    out = slurm_cmd("sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State")
    states = dict(line.split("|") for line in out.splitlines() if line)
    return states.get(job_id, "").split(" ")[0]  # "CANCELLED by 0"


def tms_grid(name: str, steps: int, sweep: str, extra: str = "") -> str:
    return (f'[[job]]\nkind = "tms"\nname = "{name}"\nn_features = 5\nsteps = {steps}\nbatch_size = 64\n'
            f"eval_batch = 256\nlog_points = 5\ncheckpoint_every = 100\n{extra}\n[job.sweep]\n{sweep}\n")


# ---------------------------------------------------------------- submit, batch, arrays, split

def test_submit_goes_to_slurm_and_ls_logs_show_it(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, tms_job("one", steps=120, checkpoint_every=50))
    result = sptui("submit", str(path), "--executor", "slurm", "--time", "5", "--json", root=artifacts, check=True)
    (info,) = json.loads(result.stdout)
    slurm_id = info["slurm_job_id"]
    assert slurm_id.isdigit()
    # `logs -f` follows the run's log.txt while Slurm runs the job, and returns when it has ended
    followed = sptui("logs", info["run_id"], "-f", root=artifacts, timeout=240)
    assert followed.returncode == 0 and "=== succeeded" in followed.stdout, followed.stdout + followed.stderr
    row = ls(artifacts)[info["run_id"]]
    assert (row["state"], row["executor"], row["slurm_job_id"]) == ("succeeded", "slurm", slurm_id)
    # the job records its end before its process has exited; Slurm then calls it COMPLETED
    wait_for(lambda: sacct_state(slurm_id) == "COMPLETED", timeout=30, what="sacct to say COMPLETED", interval=0.3)
    run = RunDir(row["run_dir"])
    assert (run.results / "model.safetensors").exists() and run.plot_files()
    status = read_status(run.root)
    assert (status.state, status.slurm_job_id, status.host) == ("succeeded", slurm_id, socket.gethostname())
    # submitit's folder lives in the run folder, and what it pickled is three strings of sptui's (and back: two)
    submitted = run.root / "slurm" / f"{slurm_id}_submitted.pkl"
    assert submitted.stat().st_size < 2048
    delayed = pickle.loads(submitted.read_bytes())
    assert type(delayed.function).__name__ == "SlurmTask" and delayed.args == () and delayed.kwargs == {}
    assert vars(delayed.function) == {"root": str(artifacts), "run": str(run.root), "device": "auto",
                                      "signal_delay_s": 120}
    outcome = pickle.loads((run.root / "slurm" / f"{slurm_id}_0_result.pkl").read_bytes())
    assert outcome == ("success", {"state": "succeeded", "error": None})
    shown = sptui("show", info["run_id"], root=artifacts, check=True).stdout
    assert f"slurm_job_id: {slurm_id}" in shown and f"slurm output: {run.root / 'slurm'} (2 files)" in shown


def test_batch_sends_a_sweep_as_one_job_array(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, tms_grid("hidden", 80, "n_hidden = [2, 3]"))
    result = sptui("batch", str(path), "--executor", "slurm", "--json", root=artifacts, timeout=300)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert [(r["name"], r["state"]) for r in results] == [("hidden[n_hidden=2]", "succeeded"),
                                                          ("hidden[n_hidden=3]", "succeeded")]
    rows = ls(artifacts)
    ids = [rows[r["run_id"]]["slurm_job_id"] for r in results]
    assert ids == [r["slurm_job_id"] for r in results]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_0", f"{array}_1"]  # one array, a task per job
    wait_for(lambda: [sacct_state(i) for i in ids] == ["COMPLETED", "COMPLETED"], timeout=30, what="sacct", interval=0.3)
    shapes = [load_arrays(Path(r["run_dir"]) / "results" / "model.safetensors")["W"].shape for r in results]
    assert shapes == [(1, 5, 2), (1, 5, 3)]
    # the runs of one array share submitit's folder (it names files by Slurm id); each run links to it
    links = [Path(r["run_dir"]) / "slurm" for r in results]
    assert all(link.is_symlink() for link in links) and links[0].resolve() == links[1].resolve()


def test_split_sweep_joined_equals_the_sweep_trained_in_one_piece(slurm, artifacts, tmp_path):
    text = tms_grid("split", 150, "feature_probability = [1.0, 0.3, 0.1, 0.03, 0.01]")
    pieces = sptui("batch", str(job_file(tmp_path, text, "split.toml")), "--executor", "slurm",
                   "--instances-per-task", "3", "--json", root=artifacts, timeout=300)
    assert pieces.returncode == 0, pieces.stderr
    (b,) = json.loads(pieces.stdout)
    joined = RunDir(b["run_dir"])
    parts = sorted((joined.root / "parts").iterdir())
    assert [read_status(p).slurm_job_id.split("_")[1] for p in parts] == ["0", "1"]  # 2 tasks of one array
    assert [len(RunDir(p).spec().grid()) for p in parts] == [3, 2]
    assert not any(RunDir(p).plot_files() for p in parts)  # slices draw nothing; the joined run draws once
    one = RunDir(tmp_path / "whole")  # the same sweep trained in one piece, here (no plots needed to compare)
    assert execute(parse_text(text, "whole.toml")[0], one, render=False).state == "succeeded"
    # the same to float32 rounding (tms's sparse step: see tests/test_slurm_split.py)
    assert_same_to_rounding(load_arrays(one.results / "model.safetensors"),
                            load_arrays(joined.results / "model.safetensors"))
    assert_same_to_rounding(read_json(one.results / "instances.json"), read_json(joined.results / "instances.json"))

    def curves(run):
        return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run.metrics)]

    assert_same_to_rounding(curves(one), curves(joined))
    assert {p.name for p in joined.plot_files()} >= {"sweep.png", "wtw_bias.png", "training.png"}


# ---------------------------------------------------------------- failures

def test_a_failing_job_shows_its_error_in_ls(slurm, artifacts, tmp_path):
    folder = tmp_path / "model"  # a model folder when queued, unreadable when the job loads it on the node
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    path = job_file(tmp_path, f'[[job]]\nkind = "neuron-geometry"\nname = "lost"\nmodel = "{folder}"\n')
    result = sptui("batch", str(path), "--executor", "slurm", root=artifacts, timeout=240)
    assert result.returncode == 1
    row = ls(artifacts)["0001-lost"]
    assert row["state"] == "failed" and "cannot load as a Hugging Face model" in row["error"]
    assert "cannot load as a Hugging Face model" in sptui("ls", root=artifacts, check=True).stdout + \
        sptui("show", "lost", root=artifacts, check=True).stdout


def test_a_job_slurm_cannot_start_fails_in_words_and_requeue_with_new_options_runs_it(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, tms_job("no-python", steps=60))
    result = sptui("submit", str(path), "--executor", "slurm", "--python", "/nonexistent/bin/python3", "--json",
                   root=artifacts, check=True)
    (info,) = json.loads(result.stdout)
    job = wait_final(artifacts, info["id"])
    assert job.state == "failed"
    assert job.error.startswith("the job failed in Slurm (FAILED, exit status ")
    assert "before sptui could record a result; Slurm's output" in job.error
    assert "/nonexistent/bin/python3" in job.error  # the last line of Slurm's own output names the cause
    assert job.slurm_state == "FAILED"  # Slurm's word for the end, kept beside sptui's
    requeued = sptui("requeue", info["run_id"], "--python", sys.executable, root=artifacts, check=True)
    assert f"{info['run_id']}: queued" in requeued.stdout
    job = wait_final(artifacts, info["id"])
    assert (job.state, job.error) == ("succeeded", None)
    assert job.slurm_job_id != info["slurm_job_id"]


# ---------------------------------------------------------------- cancel, requeue

def test_cancel_maps_to_scancel_for_running_and_pending_jobs(slurm, artifacts, tmp_path):
    long = job_file(tmp_path, tms_job("long", steps=10_000_000, checkpoint_every=100_000), "long.toml")
    (info,) = json.loads(sptui("submit", str(long), "--executor", "slurm", "--json", root=artifacts, check=True).stdout)

    def running():
        with Queue(artifacts) as queue:
            executor.reconcile(queue, artifacts)
            return queue.get(info["id"]).state == "running" and (read_status(queue.get(info["id"]).run_dir(artifacts))
                                                                 or None)
    wait_for(running, timeout=120, what="the long job to run", interval=0.5)
    assert ls(artifacts)["0001-long"]["slurm_state"] == "RUNNING"
    later = job_file(tmp_path, tms_job("later", steps=50), "later.toml")
    (pending,) = json.loads(sptui("submit", str(later), "--executor", "slurm", "--sbatch", "begin=now+3600", "--json",
                                  root=artifacts, check=True).stdout)
    assert "pending (begintime)" in sptui("ls", root=artifacts, check=True).stdout

    out = sptui("cancel", info["run_id"], pending["run_id"], root=artifacts, check=True).stdout
    assert "0001-long: cancel requested" in out and "0002-later: cancelled" in out
    job = wait_final(artifacts, info["id"], timeout=60)
    assert (job.state, job.error) == ("cancelled", "cancelled by the user")
    wait_for(lambda: [sacct_state(info["slurm_job_id"]), sacct_state(pending["slurm_job_id"])] == ["CANCELLED"] * 2,
             timeout=30, what="sacct to say CANCELLED", interval=0.3)
    assert slurm_cmd("squeue", "-h", "-o", "%i").strip() == ""


def test_scontrol_requeue_of_a_running_job_resumes_from_its_checkpoint(slurm, artifacts, tmp_path):
    text = RESUMABLE.format(name="resume")
    # the same job uninterrupted, in this machine's other core meanwhile
    whole = subprocess.Popen([sys.executable, "-m", "sptui", "--artifacts", str(tmp_path / "whole"), "batch", "--json",
                              str(job_file(tmp_path, text, "whole.toml"))], stdout=subprocess.PIPE, text=True)
    try:
        (info,) = json.loads(sptui("submit", str(job_file(tmp_path, text)), "--executor", "slurm", "--json",
                                   root=artifacts, check=True).stdout)
        run = RunDir(artifacts / "runs" / info["run_id"])
        wait_for(lambda: list(run.checkpoints.glob("step-*.safetensors")), timeout=180, what="a first checkpoint",
                 interval=0.2)
        slurm_cmd("scontrol", "requeue", info["slurm_job_id"])
        # Slurm holds a requeued batch job for 120 s before it may start again; release it now
        wait_for(lambda: slurm_cmd("squeue", "-h", "-j", info["slurm_job_id"], "-o", "%T").strip() == "PENDING",
                 timeout=60, what="the requeued job to be pending", interval=0.2)
        with Queue(artifacts) as queue:
            executor.reconcile(queue, artifacts)
            assert queue.get(info["id"]).state == "queued"  # back to waiting in Slurm, progress kept
        slurm_cmd("scontrol", "update", f"jobid={info['slurm_job_id']}", "StartTime=now")
        job = wait_final(artifacts, info["id"], timeout=240)
        assert (job.state, job.error) == ("succeeded", None)
        status = read_status(run.root)
        assert status.attempts == 2 and status.slurm_job_id == info["slurm_job_id"]
        log = run.log.read_text()
        assert "resuming from checkpoint at step" in log and log.count("=== tms job") == 2
        assert whole.wait(timeout=300) == 0
    finally:
        if whole.poll() is None:
            whole.kill()
    (uninterrupted,) = json.loads(whole.stdout.read())
    expected = load_arrays(Path(uninterrupted["run_dir"]) / "results" / "model.safetensors")
    got = load_arrays(run.results / "model.safetensors")
    for key in expected:
        assert np.array_equal(expected[key], got[key]), key


# long enough on a quiet machine that a requeue or signal after the first checkpoint lands mid-run
RESUMABLE = ('[[job]]\nkind = "tms"\nname = "{name}"\nn_features = 20\nn_hidden = 5\nsteps = 12000\n'
             "batch_size = 1024\neval_batch = 256\nlog_points = 10\ncheckpoint_every = 300\n")


def signal_after_first_checkpoint(root: Path, info: dict, signal_name: str) -> RunDir:
    """Wait for the job's first checkpoint, then have Slurm send it a signal (as before its time limit)."""
    run = RunDir(root / "runs" / info["run_id"])
    wait_for(lambda: list(run.checkpoints.glob("step-*.safetensors")), timeout=180, what="a first checkpoint",
             interval=0.2)
    slurm_cmd("scancel", f"--signal={signal_name}", info["slurm_job_id"])
    return run


@pytest.mark.slow
def test_the_time_limit_before_any_checkpoint_fails_in_words_without_requeueing(slurm, artifacts, tmp_path):
    """USR2 while the time left is within signal_delay_s: Slurm's time-limit warning. Without a checkpoint there is
    nothing to resume from, so the job is not requeued to end the same way again."""
    path = job_file(tmp_path, RESUMABLE.format(name="no-checkpoint").replace("checkpoint_every = 300",
                                                                              "checkpoint_every = 100000"))
    (info,) = json.loads(sptui("submit", str(path), "--executor", "slurm", "--time", "5", "--signal-delay-s", "290",
                               "--json", root=artifacts, check=True).stdout)
    run = RunDir(artifacts / "runs" / info["run_id"])
    wait_for(lambda: "=== tms job" in (run.log.read_text() if run.log.exists() else ""), timeout=120,
             what="the job to start", interval=0.2)
    slurm_cmd("scancel", "--signal=USR2", info["slurm_job_id"])
    job = wait_final(artifacts, info["id"], timeout=120)
    assert (job.state, job.error) == ("failed", "stopped at Slurm's time limit with no checkpoint to resume from; give "
                                                "it more time (time, --time) and requeue")
    assert read_status(run.root).attempts == 1


@pytest.mark.slow
def test_the_time_limit_signal_requeues_the_job_through_submitit_and_it_resumes(slurm, artifacts, tmp_path):
    """Slurm sends USR2 signal_delay_s before the time limit (and on preemption): submitit calls the task's
    checkpoint(), requeues the job itself, and the job resumes from the kind's last checkpoint."""
    path = job_file(tmp_path, RESUMABLE.format(name="usr2"))
    (info,) = json.loads(sptui("submit", str(path), "--executor", "slurm", "--json", root=artifacts, check=True).stdout)
    run = signal_after_first_checkpoint(artifacts, info, "USR2")
    wait_for(lambda: slurm_cmd("squeue", "-h", "-j", info["slurm_job_id"], "-o", "%T").strip() == "PENDING",
             timeout=60, what="submitit to requeue the job", interval=0.2)
    assert read_status(run.root).state == "requeued"
    slurm_cmd("scontrol", "update", f"jobid={info['slurm_job_id']}", "StartTime=now")
    job = wait_final(artifacts, info["id"], timeout=240)
    assert (job.state, job.error) == ("succeeded", None)
    log = run.log.read_text()
    assert "Slurm signalled the job (time limit near, or preemption)" in log and "resuming from checkpoint" in log
    assert read_status(run.root).attempts == 2


@pytest.mark.slow
def test_a_job_out_of_requeues_at_its_time_limit_fails_in_words(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, RESUMABLE.format(name="no-more"))
    # with a time limit this short, submitit takes any USR2 for the time limit (not a preemption)
    (info,) = json.loads(sptui("submit", str(path), "--executor", "slurm", "--max-requeues", "0", "--time", "5",
                               "--json", root=artifacts, check=True).stdout)
    signal_after_first_checkpoint(artifacts, info, "USR2")
    job = wait_final(artifacts, info["id"], timeout=120)
    assert job.state == "failed"
    assert job.error.startswith("reached Slurm's time limit once more than max_requeues allows; its last checkpoint "
                                "is kept")


@pytest.mark.slow
def test_a_node_failure_under_a_job_is_said_in_words_and_requeue_resumes_it(slurm, artifacts, tmp_path):
    """The node is set DOWN under a running job that Slurm may not requeue (--no-requeue): Slurm ends it as
    NODE_FAIL; sptui says so, keeps it resumable (interrupted), and `sptui requeue` resumes it."""
    path = job_file(tmp_path, tms_job("node", steps=10_000_000, checkpoint_every=1000))
    (info,) = json.loads(sptui("submit", str(path), "--executor", "slurm", "--sbatch", "no-requeue", "--json",
                               root=artifacts, check=True).stdout)
    run = RunDir(artifacts / "runs" / info["run_id"])
    wait_for(lambda: list(run.checkpoints.glob("step-*.safetensors")), timeout=180, what="a first checkpoint",
             interval=0.2)
    try:
        slurm_cmd("scontrol", "update", f"nodename={slurm.node}", "state=down", "reason=sptui-test")
        job = wait_final(artifacts, info["id"], timeout=120)
    finally:
        # (ReturnToService=2 may have brought it back already; then resume has nothing to do)
        subprocess.run(["scontrol", "update", f"nodename={slurm.node}", "state=resume"], capture_output=True, timeout=30)
        wait_for(lambda: slurm_cmd("sinfo", "-h", "-n", slurm.node, "-o", "%T").strip() == "idle", timeout=60,
                 what="the node to be back", interval=0.5)
    assert job.state == "interrupted" and job.slurm_state == "NODE_FAIL"
    assert job.error == f"the node {slurm.node} failed under the job; requeue to resume from its last checkpoint"
    # `sptui requeue` submits it again, and it resumes from its checkpoint
    assert f"{info['run_id']}: queued" in sptui("requeue", info["run_id"], root=artifacts, check=True).stdout
    wait_for(lambda: "resuming from checkpoint at step" in run.log.read_text(), timeout=180,
             what="the requeued job to resume", interval=0.5)
    sptui("cancel", info["run_id"], root=artifacts, check=True)


# ---------------------------------------------------------------- shared storage

def test_submit_refuses_an_artifacts_folder_the_compute_nodes_cannot_see(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, tms_job("far", steps=50))
    result = sptui("submit", str(path), "--executor", "slurm", "--partition", "far", root=artifacts)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert f"the artifacts folder {artifacts} is under /tmp" in line
    assert "partition far runs jobs on far-node, which cannot see it" in line
    with Queue(artifacts) as queue:
        assert queue.list() == []  # nothing queued, nothing submitted
    assert slurm_cmd("squeue", "-h", "-o", "%i").strip() == ""
    # the same folder is fine for a partition whose only node is this machine (the default one here)
    assert sptui("validate", str(path), root=artifacts).returncode == 0


def test_slurm_refuses_bad_options_before_anything_is_queued(slurm, artifacts, tmp_path):
    path = job_file(tmp_path, tms_job("nope", steps=50))
    result = sptui("submit", str(path), "--executor", "slurm", "--partition", "no-such-partition", root=artifacts)
    assert result.returncode == 2 and "no-such-partition" in result.stderr
    result = sptui("submit", str(path), "--executor", "slurm", "--gpus", "1", root=artifacts)
    assert result.returncode == 2
    assert "Slurm refuses these options (time=60, gpus=1, cpus=1): Invalid generic resource" in result.stderr
    with Queue(artifacts) as queue:
        assert queue.list() == []


@pytest.mark.slow
def test_a_node_that_cannot_see_the_artifacts_folder_fails_the_job_in_words(slurm, tmp_path):
    """The artifacts folder is a tmpfs mounted only in this test's own mount namespace: the node (slurmd, outside it)
    cannot see it, which the submit-time check cannot tell on a one-machine cluster. The job dies before sptui
    runs; `sptui ls` says why."""
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a private mount namespace here (unshare --mount needs root)")
    root = tmp_path / "private"
    root.mkdir()
    path = job_file(tmp_path, tms_job("unseen", steps=50))
    script = (f"mount -t tmpfs none {root} && {sys.executable} -m sptui --artifacts {root} submit {path} "
              f"--executor slurm >/dev/null && for i in $(seq 120); do {sys.executable} -m sptui --artifacts {root} ls "
              f"--json > {tmp_path}/ls.json; grep -q '\"state\": \"failed\"' {tmp_path}/ls.json && break; sleep 1; done")
    subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], check=True, timeout=300)
    (row,) = json.loads((tmp_path / "ls.json").read_text())
    assert row["state"] == "failed"
    assert "never started in its run folder" in row["error"] and "can the compute node see the artifacts folder" \
        in row["error"]


def test_the_app_shows_slurm_id_and_state(artifacts):
    from sptui.tui.widgets.runtable import row_cells

    with Queue(artifacts) as queue:
        (job,) = queue.submit(parse_text(tms_job("app"), "f.toml"), executor="slurm")
        queue.slurm_submitted(job.id, "42_3")
        queue.slurm_update(job.id, "queued", "PENDING (Priority)")
        job = queue.get(job.id)
    assert str(row_cells(job, False, time.time())["device"]) == "slurm 42_3 pending (priority)"  # shown as Text, never markup


# Loaded by every Python started with this folder on PYTHONPATH (Slurm exports the submitting environment to the
# job): a short beat, and in the job's own process on the node (submitit's) a draw that holds until the test
# lets it go
HOLDS_THE_DRAWING_ON_THE_NODE = """
import os, time
import sptui.kinds, sptui.queue
sptui.queue.JOB_BEAT_SECONDS = 0.2
with open("/proc/self/cmdline", "rb") as f:
    if b"submitit.core._submit" in f.read().split(b"\\0"):
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


def test_a_slurm_job_drawing_its_plots_says_so_in_ls_and_show(slurm, artifacts, tmp_path, monkeypatch):
    """The job on the node writes its phase into status.json and beats it; the submitting side (reconcile) brings
    it into the queue row: `sptui show` says "drawing plots for 0m03s", `ls` says "plots" in its ETA column, and a
    finished job has no phase left."""
    import re

    from .test_run_ends import json_row

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLDS_THE_DRAWING_ON_THE_NODE)
    release = tmp_path / "release"
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.setenv("RELEASE_DRAWING", str(release))
    path = job_file(tmp_path, tms_job("drawing", steps=60, checkpoint_every=60))
    (info,) = json.loads(sptui("submit", str(path), "--executor", "slurm", "--time", "5", "--json", root=artifacts,
                               check=True).stdout)

    def followed():
        with Queue(artifacts) as queue:
            executor.reconcile(queue, artifacts)
            return queue.get(info["run_id"])

    try:
        drawing = wait_for(lambda: (j := followed()).phase_now and j, timeout=120, what="the Slurm job to draw",
                           interval=0.3)
        status = read_status(RunDir(drawing.run_dir(artifacts)).root)
        assert (status.state, status.phase) == ("running", "drawing plots")
        # the status file beats on while it draws, and the row's heartbeat follows it
        wait_for(lambda: followed().heartbeat > drawing.phase_at + 3, timeout=60, what="beats while drawing",
                 interval=0.3)
        shown = sptui("show", info["run_id"], root=artifacts, check=True).stdout
        phase = re.search(r"^ +phase: drawing plots for (\d+)m(\d\d)s$", shown, re.M)
        assert phase and 60 * int(phase[1]) + int(phase[2]) >= 3, shown  # drawn for 3 s or more by now
        assert "silent" not in shown
        listed = sptui("ls", root=artifacts, check=True).stdout.splitlines()
        header, row = listed[0], next(line for line in listed[1:] if info["run_id"] in line)
        end = header.index("eta") + len("eta")
        assert row[end - 7:end].strip() == "plots", "\n".join(listed)
        assert json_row(artifacts)["doing"].startswith("drawing plots for ")
    finally:
        release.touch()
    done = wait_final(artifacts, drawing.id)
    assert done.state == "succeeded" and done.phase_now is None
    assert "phase:" not in sptui("show", info["run_id"], root=artifacts, check=True).stdout
