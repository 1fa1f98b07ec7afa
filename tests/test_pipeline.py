"""Jobs that depend on jobs (sptui.pipeline and the queue's job_deps): references resolved and pinned when
queued, waiting that holds no worker slot, failure and cancellation down the chain, requeue bringing the chain
back, and the same order under a worker and under `sptui batch`. Real SQLite files and real worker and batch
processes throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sptui.errors import SpecError, SptuiError
from sptui.queue import Queue, own_identity
from sptui.spec import load_file, parse_text

from .helpers import REPO, sptui, start_worker, wait_for


def toy(name: str, steps: int = 40, seed: int = 0, extra: str = "", priority: int = 0) -> str:
    """A tiny real tms job (2 features -> 1 hidden), a few seconds."""
    return (f'[[job]]\nkind = "tms"\nname = "{name}"\npriority = {priority}\nn_features = 2\nn_hidden = 1\n'
            f"steps = {steps}\nbatch_size = 32\neval_batch = 64\nlog_points = 2\ncheckpoint_every = 20\n"
            f"seed = {seed}\n{extra}\n")


def theory(name: str, compare: str, extra: str = "", priority: int = 0) -> str:
    """A small tms-theory job that reads the tms run `compare` names (its parameter declares the reference)."""
    return (f'[[job]]\nkind = "tms-theory"\nname = "{name}"\npriority = {priority}\nn_features = 2\nn_hidden = 1\n'
            f'probabilities = [1.0, 0.01]\nimportance_ratios = [3.0]\nrandom_starts = 1\ncompare = "{compare}"\n'
            f"{extra}\n")


def specs(text: str):
    return parse_text(text, "study.toml")


def take(q: Queue):
    """Claim the next ready job as a worker would (None when every queued job waits)."""
    return q.claim(*own_identity())


# ---------------------------------------------------------------- resolving and pinning

def test_a_job_naming_a_job_of_its_file_waits_for_it_and_holds_its_run_id(artifacts):
    text = theory("theory", "toy", priority=9) + toy("toy") + toy("last", seed=1, extra='after = ["theory"]')
    with Queue(artifacts) as q:
        theory_job, toy_job, last = q.submit(specs(text))
        assert theory_job.job_spec().params["compare"] == toy_job.run_id  # pinned: exactly that run
        assert last.job_spec().after == (theory_job.run_id,)
        assert theory_job.waiting == f"waiting for {toy_job.run_id}"
        assert q.needs(theory_job.id) == [(toy_job.run_id, "queued", "compare")]
        # the waiting job has the highest priority, yet the one it waits for is claimed first, then nothing
        assert take(q).id == toy_job.id
        assert take(q) is None
        assert q.get(theory_job.id).waiting == f"waiting for {toy_job.run_id}"  # still, while it runs
        q.finish(toy_job.id, "succeeded")
        assert take(q).id == theory_job.id and take(q) is None
        q.finish(theory_job.id, "succeeded")
        assert take(q).id == last.id


def test_a_name_in_the_queue_waits_for_its_newest_run_or_takes_the_newest_that_has_what_it_reads(artifacts):
    with Queue(artifacts) as q:
        (first,) = q.submit(specs(toy("toy")))
        (waits,) = q.submit(specs(theory("t1", "toy")))
        assert waits.waiting == f"waiting for {first.run_id}" and waits.job_spec().params["compare"] == first.run_id
        assert take(q).id == first.id
        q.finish(first.id, "succeeded")
        model = artifacts / "runs" / first.run_id / "results" / "model.safetensors"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"")  # what the reference needs, as the run leaves it
        (second,) = q.submit(specs(toy("toy")), force=True)  # a newer run of the same name, not started
        (t2,) = q.submit(specs(theory("t2", "toy")))
        assert t2.job_spec().params["compare"] == second.run_id and t2.waiting == f"waiting for {second.run_id}"
        assert take(q).id == waits.id  # t1 waited for the first run only
        q.finish(waits.id, "succeeded")
        take(q)  # the second toy
        q.finish(second.id, "failed", error="boom")
        assert q.get(t2.id).state == "failed"
        # the newest run failed: a name now takes the newest run that has the model; the failed run by its id is
        # refused with what to do
        notes: list[str] = []
        (t3,) = q.submit(specs(theory("t3", "toy")), notes=notes)
        assert t3.job_spec().params["compare"] == first.run_id and t3.waiting is None
        assert notes == [f'job "t3" ran before as {waits.run_id} (succeeded); queued again as a new run']
        with pytest.raises(SpecError, match=rf'job "t4": compare: "{second.run_id}" is {second.run_id}, which '
                                            rf"failed: requeue it \(sptui requeue {second.run_id}\)"):
            q.submit(specs(theory("t4", second.run_id)))


def test_references_that_name_nothing_usable_are_refused_with_one_line(artifacts, tmp_path):
    with Queue(artifacts) as q:
        q.submit(specs(toy("toy")))
    cases = {
        theory("t", "tyo"): 'job "t": compare: no run "tyo" in ',
        toy("a", extra='after = ["b"]') + toy("b", seed=1, extra='after = ["a"]'):
            'job "b": after[0]: the jobs wait for each other in a circle (a -> b -> a); none could start',
        toy("a", extra='after = ["a"]'): 'job "a": after[0]: "a" names this job itself',
        '[[job]]\nkind = "addition-analysis"\nname = "an"\nrun = "toy"\n':
            'job "an": run: "toy" is 0001-toy, a tms run; expected a addition run',
        '[[job]]\nkind = "addition-analysis"\nname = "an"\nrun = "grid"\n'
        '[[job]]\nkind = "addition"\nname = "grid"\n[job.sweep]\nd_model = [64, 128]\n':
            'job "an": run: "grid" is a job of this file that its sweep expands into 2 jobs; name one of them: '
            '"grid[d_model=64]", "grid[d_model=128]"',
        '[[job]]\nkind = "addition-analysis"\nname = "an"\nrun = "gird"\n'
        '[[job]]\nkind = "addition"\nname = "grid"\n[job.sweep]\nd_model = [64, 128]\n':
            '(did you mean "grid"?)',  # a typo of a job its sweep expanded is still recognised
        '[[job]]\nkind = "neuroscope"\nname = "ns"\nmodel = "tiny-storis-2L-33M"\n':
            'job "ns": model: "tiny-storis-2L-33M" is not a run under',
        '[[job]]\nkind = "neuron-geometry"\nname = "g"\nmodel = "lm-tny"\n[[job]]\nkind = "lm"\nname = "lm-tiny"\n':
            '(did you mean "lm-tiny"?)',
        '[[job]]\nkind = "neuron-geometry"\nname = "g"\nmodel = "/nonexistent/model-folder"\n':
            'job "g": model: /nonexistent/model-folder: no such folder',
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        for command in ("validate", "submit"):
            result = sptui(command, str(path), root=artifacts)
            assert result.returncode == 2 and result.stderr.count("\n") == 1, (command, result.stderr)
            assert expected in result.stderr, (expected, result.stderr)
    with Queue(artifacts) as q:
        assert [j.name for j in q.list()] == ["toy"]  # nothing of a refused file was queued


def test_validate_shows_what_each_job_waits_for_and_queues_nothing(tmp_path):
    root = tmp_path / "fresh"
    path = tmp_path / "study.toml"
    path.write_text(toy("toy") + theory("theory", "toy"))
    result = sptui("validate", str(path), root=root, check=True)
    assert "compare = toy: waits for this file's job \"toy\"" in result.stdout
    assert not root.exists()  # validate reads the queue when there is one, and never makes one
    listed = json.loads(sptui("validate", "--json", str(path), root=root, check=True).stdout)
    assert listed[1]["references"] == [{"key": "compare", "word": "toy", "run_id": None, "state": "new",
                                        "waits": True, "job": "toy"}]


def test_the_shipped_studies_wait_for_their_own_jobs(tmp_path):
    from sptui.pipeline import RunIndex, resolve

    expected = {
        "tinystories_study.toml": {"study-lm": set(), "study-neuroscope": {"study-lm"}, "study-geometry-L1": {"study-lm"},
                                   "study-sae-L1": {"study-lm"}, "study-sae-neuroscope": {"study-sae-L1"}},
        "addition_study.toml": {"study-addition": set(), "study-addition-analysis": {"study-addition"}},
    }
    for name, graph in expected.items():
        file_specs = load_file(REPO / "jobs" / name)
        links = resolve(file_specs, RunIndex(tmp_path / "empty"), name)  # nothing outside the file needed
        waits = {s.name: {file_specs[link.file_job].name for link in found if link.waits}
                 for s, found in zip(file_specs, links)}
        assert waits == graph, name


# the shipped studies at test budgets: every job of the file, the same references, a few seconds each
SMALL = {
    "lm": dict(d_model=32, d_mlp=128, n_heads=2, steps=20, batch_size=4, eval_every=10, eval_batches=1,
               sample_every=20, sample_tokens=4, checkpoint_every=10),
    "neuroscope": dict(token_budget=1500, batch_size=4),
    "neuron-geometry": dict(methods=["greedy"], null_draws=2, two_opt_seconds=1.0),
    "sae": dict(steps=20, batch_size=256, buffer_tokens=2048, eval_tokens=256, eval_sequences=2, log_points=2,
                checkpoint_every=20),
    "addition": dict(n_train=512, n_test=128, epochs=2, batch_size=128, warmup_steps=2, eval_every=4),
    "addition-analysis": dict(animate=False),
}


@pytest.mark.slow  # trains a small LM, an addition model and everything that reads them (minutes on a busy machine)
@pytest.mark.parametrize("study", ["addition_study.toml", "tinystories_study.toml"])
def test_a_shipped_study_runs_whole_under_batch_in_dependency_order(artifacts, tmp_path, study):
    from dataclasses import replace

    file_specs = load_file(REPO / "jobs" / study)
    small = tmp_path / study
    small.write_text("\n".join(replace(s, params={**s.params, **SMALL[s.kind]}).to_toml() for s in file_specs))
    result = sptui("batch", "--json", str(small), root=artifacts, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    runs = {r["name"]: r for r in json.loads(result.stdout)}
    assert {r["state"] for r in runs.values()} == {"succeeded"} and len(runs) == len(file_specs)
    with Queue(artifacts) as q:
        jobs = {j.name: j for j in q.list()}
        for job in jobs.values():
            for run_id, _, _ in q.needs(job.id):  # each started once what it needs had succeeded
                needed = q.get(run_id)
                assert needed.state == "succeeded" and job.started >= needed.finished, (job.name, run_id)
    first = file_specs[0].name
    assert all(q_job.started >= jobs[first].finished for name, q_job in jobs.items() if name != first)


# ---------------------------------------------------------------- down the chain (SQLite trigger)

def test_failure_and_cancellation_follow_the_chain_and_requeue_brings_it_back(artifacts):
    text = toy("a") + toy("b", seed=1, extra='after = ["a"]') + toy("c", seed=2, extra='after = ["b"]')
    with Queue(artifacts) as q, Queue(artifacts) as other:  # two connections: the trigger is in the file
        a, b, c = q.submit(specs(text))
        assert c.waiting == f"waiting for {b.run_id}"
        assert take(q).id == a.id
        other.finish(a.id, "failed", error="boom")
        assert [(j.state, j.error) for j in q.list()] == [
            ("failed", "boom"), ("failed", f"needs {a.run_id}, which failed"), ("failed", f"needs {b.run_id}, which failed")]
        with pytest.raises(SptuiError, match=f"needs {a.run_id}, which failed: requeue {a.run_id}"):
            q.requeue(b.id)
        q.requeue(a.id)
        assert [(j.state, j.waiting, j.error) for j in q.list()] == [
            ("queued", None, None), ("queued", f"waiting for {a.run_id}", None), ("queued", f"waiting for {b.run_id}", None)]
        other.cancel(a.id)  # queued: cancelled at once, and the chain with it
        assert [(j.state, j.error) for j in q.list()][1:] == [
            ("cancelled", f"cancelled with {a.run_id}, which it needs"), ("cancelled", f"cancelled with {b.run_id}, which it needs")]
        assert [j.id for j in q.dependents(a.id, ended_only=True)] == [b.id, c.id]
        q.requeue(a.id)
        assert take(q).id == a.id
        q.finish(a.id, "interrupted", error="killed")  # resumable: the chain keeps waiting, for a requeue
        assert q.get(b.id).waiting == f"waiting for {a.run_id} (interrupted)"
        assert not q.has_work()  # nothing a worker can run or wait for: `worker --once` ends
        q.requeue(a.id)
        assert q.has_work()
        for job in (a, b, c):
            assert take(q).id == job.id
            q.finish(job.id, "succeeded")


def test_a_queue_made_before_dependencies_opens_and_gains_them(artifacts):
    import sqlite3

    db = sqlite3.connect(artifacts / "queue.db")
    from sptui.queue import SCHEMA

    db.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS job_deps")[0])  # the jobs table as it was
    db.close()
    with Queue(artifacts) as q:
        a, b = q.submit(specs(toy("a") + toy("b", seed=1, extra='after = ["a"]')))
        assert b.waiting == f"waiting for {a.run_id}"


# ---------------------------------------------------------------- real workers and batches

def started_order(q: Queue) -> list[str]:
    return [j.name for j in sorted(q.list(), key=lambda j: j.started)]


def test_a_worker_runs_a_chain_in_order_and_a_waiting_job_holds_no_slot(artifacts, tmp_path):
    # the waiting job has the highest priority; with one slot, holding it while waiting would deadlock
    path = tmp_path / "chain.toml"
    path.write_text(theory("theory", "model", priority=10) + toy("other", seed=5, priority=5) + toy("model"))
    sptui("submit", str(path), root=artifacts, check=True)
    out = start_worker(artifacts, "--once", "--slots", "1").communicate(timeout=600)[0]
    with Queue(artifacts) as q:
        jobs = {j.name: j for j in q.list()}
        assert {j.state for j in jobs.values()} == {"succeeded"}, out
        assert started_order(q) == ["other", "model", "theory"]
        assert jobs["theory"].started >= jobs["model"].finished
    log = (artifacts / "runs" / jobs["theory"].run_id / "log.txt").read_text()
    assert "tms-theory job 'theory'" in log


def test_under_a_worker_a_failure_ends_the_chain_and_a_cancel_cancels_it(artifacts, tmp_path):
    # the theory cannot cover a tms run with a hidden ReLU: it fails at run time, and what waits for it fails too
    path = tmp_path / "fails.toml"
    path.write_text(toy("relu", extra='hidden_activation = "relu"') + theory("theory", "relu")
                    + toy("after-theory", seed=3, extra='after = ["theory"]'))
    sptui("submit", str(path), root=artifacts, check=True)
    start_worker(artifacts, "--once").communicate(timeout=600)
    with Queue(artifacts) as q:
        relu, th, after = q.list()
        assert (relu.state, th.state) == ("succeeded", "failed") and "hidden activation" in th.error
        assert (after.state, after.error, after.attempts) == ("failed", f"needs {th.run_id}, which failed", 0)
    assert not (artifacts / "runs" / after.run_id).exists()  # it never started

    long = tmp_path / "long.toml"
    long.write_text(toy("long", steps=20000, seed=7) + toy("needs-long", seed=8, extra='after = ["long"]'))
    sptui("submit", str(long), root=artifacts, check=True)
    worker = start_worker(artifacts)
    try:
        with Queue(artifacts) as q:
            first = wait_for(lambda: [j for j in q.list(states=["running"]) if j.name == "long"], timeout=120,
                             what="the long job to start")[0]
            waiting = [j for j in q.list() if j.name == "needs-long"][0]
            listed = sptui("ls", root=artifacts, check=True).stdout
            line = [row for row in listed.splitlines() if waiting.run_id in row][0]
            assert "waiting" in line.split() and f"for {first.run_id}" in line, listed
            cancel = sptui("cancel", first.run_id, root=artifacts, check=True).stdout
            assert f"{waiting.run_id}: will be cancelled with it" in cancel
            wait_for(lambda: q.get(waiting.id).state == "cancelled", timeout=60, what="the chain to be cancelled")
            assert q.get(first.id).state == "cancelled"
            assert q.get(waiting.id).error == f"cancelled with {first.run_id}, which it needs"
    finally:
        worker.terminate()
        worker.communicate(timeout=60)


def test_batch_runs_a_study_in_dependency_order_and_ends_what_a_failure_ends(artifacts, tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(theory("theory", "toy") + toy("toy"))  # listed before the run it reads
    result = sptui("batch", "--json", str(path), root=artifacts)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [(r["name"], r["state"]) for r in summary] == [("toy", "succeeded"), ("theory", "succeeded")]
    toml = (artifacts / "runs" / summary[1]["run_id"] / "job.toml").read_text()
    assert f'compare = "{summary[0]["run_id"]}"' in toml  # the run it read, by id: runnable again as it is

    bad = tmp_path / "bad.toml"
    bad.write_text(toy("relu", extra='hidden_activation = "relu"') + theory("theory", "relu")
                   + toy("after-theory", seed=3, extra='after = ["theory"]') + toy("free", seed=4))
    result = sptui("batch", "--json", str(bad), root=artifacts)
    assert result.returncode == 1
    states = {r["name"]: (r["state"], r["error"]) for r in json.loads(result.stdout)}
    theory_id = [r["run_id"] for r in json.loads(result.stdout) if r["name"] == "theory"][0]
    assert states["after-theory"] == ("failed", f"needs {theory_id}, which failed")
    assert states["free"][0] == "succeeded" and states["relu"][0] == "succeeded"


@pytest.mark.slow  # several job processes in turn (a minute or more on a busy machine)
def test_batch_waits_for_a_workers_run_without_a_slot_and_says_so(artifacts, tmp_path):
    queued = tmp_path / "model.toml"
    queued.write_text(toy("model", steps=200))
    sptui("submit", str(queued), root=artifacts, check=True)
    study = tmp_path / "study.toml"
    study.write_text(theory("theory", "model"))
    env = {**os.environ, "SPTUI_ARTIFACTS": str(artifacts), "SPTUI_TORCH_THREADS": "1"}
    batch = subprocess.Popen([sys.executable, "-m", "sptui", "batch", str(study)], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with Queue(artifacts) as q:
            th = wait_for(lambda: [j for j in q.list() if j.name == "theory"], what="the batch to queue its job")[0]
            assert th.executor == "batch" and th.waiting == "waiting for 0001-model"
            assert start_worker(artifacts, "--once").wait(timeout=600) == 0  # runs the model, not the batch's job
            out = batch.communicate(timeout=600)[0]
            assert batch.returncode == 0, out
            assert "[theory] waiting for 0001-model (queued); no worker is running" in out
            assert q.get(th.id).state == "succeeded" and q.get(th.id).started >= q.get(1).finished
    finally:
        batch.kill()


@pytest.mark.slow  # several job processes in turn (a minute or more on a busy machine)
def test_a_stopped_batch_leaves_its_unstarted_jobs_interrupted_for_a_worker(artifacts, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(toy("first", steps=4000) + toy("second", seed=1, extra='after = ["first"]'))
    env = {**os.environ, "SPTUI_ARTIFACTS": str(artifacts), "SPTUI_TORCH_THREADS": "1"}
    batch = subprocess.Popen([sys.executable, "-m", "sptui", "batch", str(study)], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with Queue(artifacts) as q:
        wait_for(lambda: [j for j in q.list(states=["running"]) if j.name == "first"], timeout=120,
                 what="the batch's first job to start")
        batch.terminate()
        out = batch.communicate(timeout=60)[0]
        assert batch.returncode == 130, out
        first, second = q.list()
        assert (first.state, second.state) == ("interrupted", "interrupted")
        assert second.error.startswith("not started: sptui batch was stopped first")
        assert start_worker(artifacts, "--once").wait(timeout=60) == 0  # nothing a worker may run yet
        for job in (second, first):  # requeued in any order, they run in the order they need
            q.requeue(job.id)
    start_worker(artifacts, "--once").communicate(timeout=600)
    with Queue(artifacts) as q:
        assert [j.state for j in q.list()] == ["succeeded", "succeeded"] and started_order(q) == ["first", "second"]


# ---------------------------------------------------------------- the app shows it

async def test_the_apps_queue_shows_what_a_job_waits_for_and_the_chain_a_cancel_takes(artifacts):
    from sptui.tui.app import SptuiApp

    with Queue(artifacts) as q:
        a, b = q.submit(specs(toy("a") + toy("b", seed=1, extra='after = ["a"]')))
    app = SptuiApp(artifacts, poll_interval=3600.0)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        table = app.screen.table
        assert str(table.get_cell(str(b.id), "state")) == "waiting"
        assert str(table.get_cell(str(b.id), "progress")) == f"for {a.run_id}"
        assert str(table.get_cell(str(a.id), "state")) == "queued"
        table.filter_text = "state:waiting"
        table.show()
        assert table.visible_ids == [b.id]
        table.filter_text = ""
        table.show()
        table.move_cursor(row=table.visible_ids.index(a.id))
        await pilot.press("c")
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert f"with it: {b.run_id}" in str(app.screen.query_one("#status").render())
        assert str(table.get_cell(str(b.id), "state")) == "cancelled"


async def test_the_apps_queue_sees_a_wait_end_though_only_the_run_waited_for_changed(artifacts):
    from sptui.tui.app import SptuiApp

    with Queue(artifacts) as q:
        a, b = q.submit(specs(toy("a") + toy("b", seed=1, extra='after = ["a"]')))
    app = SptuiApp(artifacts, poll_interval=3600.0)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        table = app.screen.table
        assert str(table.get_cell(str(b.id), "state")) == "waiting"
        with Queue(artifacts) as q:  # b's own row does not change when a succeeds
            assert take(q).id == a.id
            a.run_dir(artifacts).mkdir(parents=True)  # as its run would have (no folder: shown as missing)
            q.finish(a.id, "succeeded")
        app.screen.refresh_jobs()
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert str(table.get_cell(str(a.id), "state")) == "succeeded"
        assert str(table.get_cell(str(b.id), "state")) == "queued" and str(table.get_cell(str(b.id), "progress")) == ""


# ---------------------------------------------------------------- on a real Slurm cluster

def slurm_final(root, job_id: int, timeout: float = 300):
    """Follow a Slurm run as `sptui ls` does (reconcile) until it ends."""
    from sptui.queue import FINAL
    from sptui.slurm import executor

    def ended():
        with Queue(root) as q:
            executor.reconcile(q, root)
            job = q.get(job_id)
        return job if job.state in FINAL else None

    return wait_for(ended, timeout=timeout, what=f"job {job_id} to end on Slurm", interval=0.5)


def test_on_slurm_a_study_waits_through_afterok_and_a_failure_drops_what_waits(slurm, artifacts, tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(theory("theory", "toy") + toy("toy"))
    sptui("submit", str(path), "--executor", "slurm", "--time", "5", root=artifacts, check=True)
    with Queue(artifacts) as q:
        th, ty = q.list()
    record = json.loads((artifacts / "runs" / th.run_id / "slurm.json").read_text())
    assert record["submissions"][0]["dependency"] == f"afterok:{ty.slurm_job_id}"  # Slurm holds it, not a slot
    ty, th = slurm_final(artifacts, ty.id), slurm_final(artifacts, th.id)
    assert (ty.state, th.state) == ("succeeded", "succeeded") and th.started >= ty.finished - 1.0

    bad = tmp_path / "bad.toml"
    bad.write_text(toy("relu", extra='hidden_activation = "relu"') + theory("theory", "relu")
                   + toy("after-theory", seed=3, extra='after = ["theory"]'))
    sptui("submit", str(bad), "--executor", "slurm", "--time", "5", root=artifacts, check=True)
    with Queue(artifacts) as q:
        after = [j for j in q.list() if j.name == "after-theory"][0]
        theory_job = [j for j in q.list() if j.name == "theory" and j.id > th.id][0]
    assert slurm_final(artifacts, theory_job.id).state == "failed"
    after = slurm_final(artifacts, after.id, timeout=60)
    assert (after.state, after.error) == ("failed", f"needs {theory_job.run_id}, which failed")
    def dropped():  # Slurm cancels it (kill-on-invalid-dep) at its next scheduling pass: it neither pends nor runs
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", after.slurm_job_id, "-o", "State"], capture_output=True,
                             text=True)
        return out.stdout.split()[:1] == ["CANCELLED"]

    wait_for(dropped, timeout=90, what="Slurm to drop the job whose dependency failed", interval=1.0)
    from sptui.slurm.status import read_status

    assert read_status(artifacts / "runs" / after.run_id).attempts == 0  # it never started on a node


@pytest.mark.slow  # several job processes in turn (a minute or more on a busy machine)
def test_a_slurm_job_waiting_for_a_workers_run_is_held_then_sent(slurm, artifacts, tmp_path):
    local = tmp_path / "model.toml"
    local.write_text(toy("model"))
    sptui("submit", str(local), root=artifacts, check=True)
    study = tmp_path / "study.toml"
    study.write_text(theory("theory", "model"))
    sptui("submit", str(study), "--executor", "slurm", "--time", "5", root=artifacts, check=True)
    with Queue(artifacts) as q:
        model, th = q.list()
        assert (th.executor, th.slurm_job_id, th.waiting) == ("slurm", None, f"waiting for {model.run_id}")
    sptui("ls", root=artifacts, check=True)
    with Queue(artifacts) as q:
        assert q.get(th.id).slurm_job_id is None  # still held: what it reads is not trained yet
    assert start_worker(artifacts, "--once").wait(timeout=600) == 0
    th = slurm_final(artifacts, th.id)  # `ls` (reconcile) sent it once the model had succeeded
    assert th.state == "succeeded" and th.slurm_job_id
