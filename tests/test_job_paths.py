"""A path in a job file names one file wherever the job runs (sptui.paths): read against the folder sptui is run in
when the file is read, frozen as an absolute path into the queue and job.toml; special names kept; a missing one is
one line at validate time. And `sptui validate` reads the runs a job names for its memory estimate (Planning)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from sptui.queue import Queue
from sptui.spec import JobSpec, parse_text
from tests.helpers import run_kind, sptui

WORDS = "the cat dog sat ran on a mat big small red blue happy sad tree house ball sun".split()
LM = dict(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=32, batch_size=4, steps=3, warmup_steps=1, eval_every=3,
          eval_batches=1, sample_every=3, sample_tokens=2, checkpoint_every=3, structure_check=False)
SCOPE = dict(split="all", token_budget=400, context_length=24, window_overlap=4, top_k=2, sample_size=3,
             histogram_bins=8, logit_tokens=2, neighbours=2, batch_size=4)


def toml_job(kind: str, name: str, **params) -> str:
    lines = ["[[job]]", f'kind = "{kind}"', f'name = "{name}"']
    lines += [f"{k} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def write_stories(path, n=80):
    rng = random.Random(0)
    path.write_text("\n\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) + "." for _ in range(n)))
    return path


# ---------------------------------------------------------------- the rule, when a job file is read

def test_relative_paths_are_frozen_absolute_when_the_file_is_read_and_names_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    text = (toml_job("lm", "rel", corpus="data/stories.txt") + toml_job("lm", "up", corpus="../x/*.parquet")
            + toml_job("lm", "home", corpus="~/s.txt")
            + "".join(toml_job("lm", f"named-{i}", corpus=c) for i, c in enumerate(["builtin", "tinystories", "hf:a/b"]))
            + toml_job("neuroscope", "folder", model="models/m", corpus="")
            + toml_job("neuroscope", "dot", model="./models/m") + toml_job("neuroscope", "name", model="lm-tiny")
            + toml_job("neuroscope", "hub", model="org/not-a-folder")
            + '[[job]]\nkind = "lm"\nname = "swept"\n[job.sweep]\ncorpus = ["a.txt", "builtin"]\n')
    got = {s.name: s.params for s in parse_text(text, "x.toml")}
    assert got["rel"]["corpus"] == str(tmp_path / "data" / "stories.txt")
    assert got["up"]["corpus"] == str(tmp_path.parent / "x" / "*.parquet")  # a glob stays a glob, `..` folded
    assert got["home"]["corpus"] == os.path.expanduser("~/s.txt")
    assert [got[f"named-{i}"]["corpus"] for i in range(3)] == ["builtin", "tinystories", "hf:a/b"]
    assert got["folder"]["model"] == got["dot"]["model"] == str(tmp_path / "models" / "m")
    assert got["folder"]["corpus"] == ""  # empty: the model's own corpus, chosen when the job runs
    assert got["name"]["model"] == "lm-tiny" and got["hub"]["model"] == "org/not-a-folder"
    assert got["swept[corpus=a.txt]"]["corpus"] == str(tmp_path / "a.txt")  # named as written, holding the file
    assert got["swept[corpus=builtin]"]["corpus"] == "builtin"

    # the spec's job.toml, read back from anywhere, names the same file
    spec = next(s for s in parse_text(text, "x.toml") if s.name == "rel")
    monkeypatch.chdir(tmp_path / "models")
    assert parse_text(spec.to_toml(), "job.toml")[0].params["corpus"] == str(tmp_path / "data" / "stories.txt")


def test_validate_refuses_a_corpus_that_names_no_file_in_one_line(tmp_path):
    (tmp_path / "here").mkdir()
    write_stories(tmp_path / "here" / "stories.txt")
    job = tmp_path / "here" / "lm.toml"
    job.write_text(toml_job("lm", "lm-a", corpus="stories.txt", **LM) + toml_job("lm", "lm-b", corpus="nope/*.txt", **LM))
    result = sptui("validate", str(job), root=tmp_path / "artifacts", cwd=tmp_path / "here")
    missing = tmp_path / "here" / "nope" / "*.txt"
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr == (f'sptui: {job}: job "lm-b": corpus: {missing}: no such file, folder or glob match '
                             "(a relative path is read from the folder sptui runs in, when the job file is read)\n")
    job.write_text(toml_job("lm", "lm-a", corpus="stories.txt", **LM))
    assert sptui("validate", str(job), root=tmp_path / "artifacts", cwd=tmp_path / "here").returncode == 0
    # from another folder the same relative path names another file (none): said before anything is queued
    other = sptui("submit", str(job), root=tmp_path / "artifacts", cwd=tmp_path)
    assert other.returncode == 2 and f"corpus: {tmp_path / 'stories.txt'}: no such file" in other.stderr


def test_a_model_folder_named_by_a_bare_word_is_queued_as_its_absolute_path(tmp_path):
    """`model = "m"` naming a folder here (no job or run of that name: a saved sptui model, or a Hugging Face
    folder) is pinned as the folder's absolute path."""
    from tests.test_neuroscope import make_model

    make_model(tmp_path / "m")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    job = tmp_path / "scope.toml"
    job.write_text(toml_job("neuroscope", "scope", model="m", corpus="builtin", **SCOPE)
                   + toml_job("neuroscope", "scope-hf", model="hf", corpus="builtin", **SCOPE))
    root = tmp_path / "artifacts"
    sptui("submit", str(job), root=root, cwd=tmp_path, check=True)
    with Queue(root) as q:
        models = [JobSpec.from_json(q.get(j.run_id).spec).params["model"] for j in q.list()]
    assert models == [str(tmp_path / "m"), str(tmp_path / "hf")]


# ---------------------------------------------------------------- where the job runs

def test_a_worker_elsewhere_runs_a_relative_corpus_and_a_neuroscope_elsewhere_reads_it(tmp_path):
    """The lm job is queued from the project folder naming `stories.txt`; a worker started in another folder runs it
    on that file, and a Neuroscope of the run, run from a third folder, reads the same file through its job.toml."""
    project, elsewhere, third = (tmp_path / n for n in ("project", "elsewhere", "third"))
    for folder in (project, elsewhere, third):
        folder.mkdir()
    stories = write_stories(project / "stories.txt")
    (project / "lm.toml").write_text(toml_job("lm", "lm-rel", corpus="stories.txt", **LM))
    root = tmp_path / "artifacts"
    (run_id,) = sptui("submit", "lm.toml", root=root, cwd=project, check=True).stdout.split()

    env = {**os.environ, "SPTUI_ARTIFACTS": str(root), "SPTUI_TORCH_THREADS": "1"}
    worker = subprocess.run([sys.executable, "-m", "sptui", "worker", "--device", "cpu", "--once"], cwd=elsewhere,
                            env=env, capture_output=True, text=True, timeout=600)
    with Queue(root) as q:
        job = q.get(run_id)
    log = (root / "runs" / run_id / "log.txt").read_text()
    assert job.state == "succeeded", (log[-2000:], worker.stdout[-2000:])
    assert f"corpus {stories}:" in log
    assert parse_text((root / "runs" / run_id / "job.toml").read_text(), "job.toml")[0].params["corpus"] == str(stories)

    (third / "scope.toml").write_text(toml_job("neuroscope", "scope", model=run_id, **SCOPE))
    batch = sptui("batch", "scope.toml", "--json", root=root, cwd=third)
    assert batch.returncode == 0, batch.stdout + batch.stderr
    scope_run = root / "runs" / json.loads(batch.stdout)[0]["run_id"]
    assert json.loads((scope_run / "results" / "summary.json").read_text())["corpus"] == str(stories)


# ---------------------------------------------------------------- validate's estimate of a job naming a run

def test_validate_reads_a_finished_run_a_job_names_and_not_one_a_pipeline_makes(tmp_path):
    from sptui.context import Planning
    from sptui.kinds import neuroscope, sae

    root = tmp_path / "artifacts"
    run_kind("lm", {**LM, "corpus": "builtin"}, root, name="lm-done")
    done = tmp_path / "done.toml"
    done.write_text(toml_job("neuroscope", "scope-done", model="lm-done", corpus="builtin", **SCOPE)
                    + toml_job("sae", "sae-done", source="lm-done", hook="blocks.0.mlp.hook_post", d_sae=16, steps=10))
    scope_plan, sae_plan = json.loads(sptui("validate", "--json", str(done), root=root, check=True).stdout)
    specs = parse_text(done.read_text(), "done.toml")
    for plan, kind, spec in ((scope_plan, neuroscope, specs[0]), (sae_plan, sae, specs[1])):
        expected = kind.memory_estimate(spec.instances(), Planning(root))
        assert plan["memory"]["unknown"] == "" and plan["memory"]["bytes"] == expected.bytes > 0, plan["memory"]
    assert scope_plan["memory"]["of"] == "1 layer x 32 neurons"  # d_mlp and n_layers read from the lm run
    text = sptui("validate", str(done), root=root, check=True).stdout
    assert "memory: needs about" in text and "not known" not in text

    # a run this file makes (even under the name of a finished run: the file's job wins), or one still queued, is
    # not there to read yet
    later = tmp_path / "later.toml"
    later.write_text(toml_job("lm", "lm-done", corpus="builtin", **{**LM, "d_mlp": 64})
                     + toml_job("neuroscope", "scope-next", model="lm-done", corpus="builtin", **SCOPE))
    _, planned = json.loads(sptui("validate", "--json", str(later), root=root, check=True).stdout)
    assert planned["memory"]["unknown"] == 'model = lm-done is read when the job starts: this file\'s job "lm-done" makes it'
    queued = tmp_path / "queued.toml"
    queued.write_text(toml_job("lm", "lm-queued", corpus="builtin", **LM))
    (queued_id,) = sptui("submit", str(queued), root=root, check=True).stdout.split()
    waits = tmp_path / "waits.toml"
    waits.write_text(toml_job("sae", "sae-queued", source="lm-queued", hook="blocks.0.mlp.hook_post", d_sae=16, steps=10))
    (planned,) = json.loads(sptui("validate", "--json", str(waits), root=root, check=True).stdout)
    assert planned["memory"]["unknown"] == f"source = lm-queued is read when the job starts: it is {queued_id}, still queued"
    assert planned["memory"]["bytes"] > 0  # the SAEs' own latents are still counted
