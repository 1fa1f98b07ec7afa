"""`sptui batch`: foreground runs in the same queue and layout, progress on a TTY or plain, summaries."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sptui.queue import Queue
from sptui.runs import RunDir, slug

from .helpers import REPO, sptui, start_worker, tms_job, wait_for


def write(tmp_path, text, name="jobs.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_batch_json_summary_and_runs_visible_to_ls(artifacts, tmp_path):
    path = write(tmp_path, tms_job("one", seeds=(1,)) + tms_job("two", seeds=(2, 3)))
    result = sptui("batch", "--json", path, root=artifacts)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout holds only the JSON; progress went to stderr
    assert [(r["name"], r["kind"], r["state"]) for r in summary] == [("one", "tms", "succeeded"), ("two", "tms", "succeeded")]
    for r in summary:
        run = RunDir(r["run_dir"])
        assert (run.results / "model.safetensors").exists() and run.plot_files()
        assert run.job_toml.read_text().startswith("[[job]]")
    listed = json.loads(sptui("ls", "--json", root=artifacts, check=True).stdout)
    assert [(r["run_id"], r["state"], r["executor"]) for r in listed] == [(r["run_id"], "succeeded", "batch")
                                                                        for r in reversed(summary)]  # newest first
    # the one duplicate rule: identical to runs that ended, the file runs again as new runs, with a note
    again = sptui("batch", path, root=artifacts)
    assert again.returncode == 0 and f'job "one" ran before as {summary[0]["run_id"]} (succeeded)' in again.stderr + again.stdout


def test_plain_progress_lines_and_summary_table_when_not_a_terminal(artifacts, tmp_path):
    name = "plain-" + "long" * 15  # lines past 80 columns: a pipe gets them whole, never folded
    env = {**os.environ, "SPTUI_ARTIFACTS": str(artifacts), "SPTUI_TORCH_THREADS": "1", "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-m", "sptui", "batch", write(tmp_path, tms_job(name))], env=env, cwd=REPO,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"[{name}] step 0/300") for line in lines), result.stdout
    run_id = f"0001-{slug(name)}"  # run ids keep 60 characters of the name
    assert f"succeeded {run_id}" in lines, result.stdout
    assert f"{run_id} tms on cpu -> {artifacts / 'runs' / run_id}" in lines, result.stdout  # ~150 characters
    table = result.stdout[result.stdout.index("sptui batch"):].splitlines()
    # the summary: the run's row holds its run folder in one piece, however long
    assert table[1].split() == ["run", "id", "name", "kind", "state", "time", "run", "dir"]
    shown_id, shown_name, kind, state, _, run_dir = table[2].split()
    assert (shown_id, shown_name, kind, state) == (run_id, name, "tms", "succeeded")
    assert run_dir == str(artifacts / "runs" / run_id) and "\x1b[" not in result.stdout


@pytest.mark.skipif(not shutil.which("script"), reason="needs util-linux `script` for a pseudo-terminal")
def test_rich_progress_on_a_terminal(artifacts, tmp_path):
    path = write(tmp_path, tms_job("fancy", steps=3000))
    env = {**os.environ, "SPTUI_ARTIFACTS": str(artifacts), "SPTUI_TORCH_THREADS": "1", "COLUMNS": "120", "TERM": "xterm-256color"}
    command = f"{sys.executable} -m sptui batch {path}"
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "━" in result.stdout and "/3000" in result.stdout  # a live bar with step/total
    assert "loss=" in result.stdout


def test_bad_device_and_bad_file_fail_before_anything_runs(artifacts, tmp_path):
    result = sptui("batch", "--device", "cuda", write(tmp_path, tms_job("x")), root=artifacts)
    assert result.returncode == 2 and "no CUDA GPU is visible" in result.stderr
    bad = sptui("batch", write(tmp_path, tms_job("x", extra="stepz = 3"), "bad.toml"), root=artifacts)
    assert bad.returncode == 2 and 'stepz: unknown parameter (did you mean "steps"?)' in bad.stderr
    with Queue(artifacts) as q:
        assert q.list() == []


def test_hangup_interrupts_the_job_and_a_worker_resumes_it(artifacts, tmp_path):
    path = write(tmp_path, tms_job("dropped", steps=3000, checkpoint_every=500, log_points=30) + tms_job("never", seeds=(5,)))
    env = {**os.environ, "SPTUI_ARTIFACTS": str(artifacts), "SPTUI_TORCH_THREADS": "1"}
    batch = subprocess.Popen([sys.executable, "-m", "sptui", "batch", path], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = wait_for(lambda: (rows := Queue(artifacts).list()) and RunDir(rows[0].run_dir(artifacts)), what="the run to start")
    wait_for(lambda: list(run.checkpoints.glob("step-*")), timeout=120, what="a checkpoint")
    batch.send_signal(signal.SIGHUP)  # what an SSH drop sends
    out = batch.communicate(timeout=60)[0]
    assert batch.returncode == 130, out
    summary = out[out.index("sptui batch\n"):].splitlines()[2:]  # every job of the file, the unstarted one too
    assert [row.split()[3] for row in summary] == ["interrupted", "interrupted"], out
    assert "not started: sptui batch was stopped first" in out
    with Queue(artifacts) as q:
        job, never = q.list()  # the second job never started: interrupted too, for a worker to run on a requeue
        assert job.state == "interrupted" and never.state == "interrupted" and never.attempts == 0
        q.requeue(job.id)
    start_worker(artifacts, "--once").communicate(timeout=300)
    with Queue(artifacts) as q:
        assert q.get(job.id).state == "succeeded" and q.get(never.id).state == "interrupted"
    assert "resuming from checkpoint" in run.log.read_text()


def test_validate_and_submit_exit_2_and_queue_nothing_on_a_bad_file(artifacts, tmp_path):
    good_then_bad = tms_job("fine", seeds=(1,)) + tms_job("broken", seeds=(2,), extra="dropout = 2.0")
    path = write(tmp_path, good_then_bad)
    for command in ("validate", "submit"):
        result = sptui(command, path, root=artifacts)
        assert result.returncode == 2
        assert result.stderr.strip() == f'sptui: {path}: job 2 ("broken"): dropout: expected a value < 1, found 2.0'
    with Queue(artifacts) as q:
        assert q.list() == []
    ok = sptui("validate", write(tmp_path, tms_job("grid", probability=None, sweep="dropout = [0.0, 0.1]\nfeature_probability = [1.0, 0.1]"), "g.toml"),
               root=artifacts, check=True)
    assert "1 job, 4 model instances" in ok.stdout


def test_a_failed_job_gives_exit_1_a_one_line_error_and_the_batch_goes_on(artifacts, tmp_path):
    # a model folder that is there when queued but unreadable when the job loads it
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    broken = f'[[job]]\nkind = "neuron-geometry"\nname = "no-model"\nmodel = "{folder}"\n\n'
    result = sptui("batch", "--json", write(tmp_path, broken + tms_job("after")), root=artifacts)
    assert result.returncode == 1
    failed, after = json.loads(result.stdout)
    assert failed["state"] == "failed" and after["state"] == "succeeded"
    assert str(folder) in failed["error"] and "\n" not in failed["error"]
    assert "Traceback" not in result.stderr
    assert failed["error"] in (Path(failed["run_dir"]) / "log.txt").read_text()


def test_cpu_jobs_use_one_torch_thread_unless_told(artifacts, tmp_path):
    path = write(tmp_path, tms_job("threads", steps=20))
    env = {k: v for k, v in os.environ.items() if k not in ("SPTUI_TORCH_THREADS", "OMP_NUM_THREADS")}
    for extra in ({}, {"SPTUI_TORCH_THREADS": "2"}):
        subprocess.run([sys.executable, "-m", "sptui", "batch", "--json", path], env={**env, **extra,
                       "SPTUI_ARTIFACTS": str(artifacts)}, cwd=REPO, check=True, capture_output=True, timeout=300)
    logs = [RunDir(j.run_dir(artifacts)).log.read_text() for j in Queue(artifacts).list()]
    assert "(pid" in logs[0] and "1 torch CPU thread)" in logs[0]
    assert "2 torch CPU threads)" in logs[1]


def test_jobs_flush_denormal_floats_which_cpus_handle_slowly():
    """A trained addition model makes denormals (softmax weights below 1e-38); with them a CPU step was
    2.7x slower. The job process flushes them to zero."""
    probe = ("import torch; from sptui.runner import configure_torch; x = torch.tensor([1e-39]);"
             "before = (x * 1.0).item(); configure_torch('cpu'); print(before > 0, (x * 1.0).item() == 0.0)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True"]
