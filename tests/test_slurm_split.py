"""Joining the slices of a split sweep, without a cluster: the slices are trained here, one after another, the way
array tasks train them on nodes, then joined; the result must equal the sweep trained in one piece (exactly for
`functions`; to float32 rounding for `tms`, whose sparse batched step sums a batch's all-zero rows in closed form,
so the last bits of a bias depend on which rows the instances of one model share)."""

import json
import math

import numpy as np
import pytest

from sptui.runner import execute
from sptui.runs import RunDir, load_arrays, read_json, read_metrics, save_arrays
from sptui.slurm import split
from sptui.slurm.status import Status, read_status
from sptui.spec import parse_text

FUNCTIONS = """
[[job]]
kind = "functions"
name = "f"
target = "abs"
width = 4
steps = 120
batch_size = 64
eval_batch = 256
log_points = 4
checkpoint_every = 50
[job.sweep]
seed = [0, 1, 2, 3, 4]
lr = [0.003, 0.01]
"""


ROUNDING = {"rtol": 1e-5, "atol": 1e-6}  # float32 rounding after thousands of steps is ~1e-7


def assert_same_to_rounding(expected, got, where="") -> None:
    """Equal JSON-like values and arrays, numbers to float32 rounding (strings, keys, shapes and lengths exactly)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and expected.keys() == got.keys(), where
        for key in expected:
            assert_same_to_rounding(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(expected) == len(got), where
        for i, (a, b) in enumerate(zip(expected, got)):
            assert_same_to_rounding(a, b, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert expected.shape == got.shape and np.allclose(expected, got, **ROUNDING), where
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(got, (int, float)) and math.isclose(expected, got, rel_tol=ROUNDING["rtol"],
                                                              abs_tol=ROUNDING["atol"]), (where, expected, got)
    else:
        assert expected == got, (where, expected, got)


def train_in_slices(tmp_path, text: str, per_task: int) -> tuple[RunDir, RunDir]:
    spec = parse_text(text, "f.toml")[0]
    one = RunDir(tmp_path / "one")
    assert execute(spec, one, render=False).state == "succeeded"
    run = RunDir(tmp_path / "split")
    run.create(spec.to_toml())
    for i, part_spec in enumerate(split.slice_specs(spec, per_task)):
        part = RunDir(split.part_dir(run.root, i))
        assert execute(part_spec, part, render=False).state == "succeeded"
        Status(state="succeeded").write(part.root)
    return one, run


def test_functions_slices_join_to_the_unsplit_run_with_shared_arrays_kept_once(tmp_path):
    one, run = train_in_slices(tmp_path, FUNCTIONS, per_task=4)  # 10 instances -> 4 + 4 + 2
    status = split.try_join(run.root)
    assert (status.state, status.error) == ("succeeded", None)
    assert read_status(run.root).state == "succeeded"
    for name in ("model.safetensors", "function.safetensors"):
        expected, got = load_arrays(one.results / name), load_arrays(run.results / name)
        assert expected.keys() == got.keys()
        for key in expected:
            assert expected[key].shape == got[key].shape and np.array_equal(expected[key], got[key]), (name, key)
    assert read_json(run.results / "instances.json") == read_json(one.results / "instances.json")
    assert read_json(run.results / "summary.json") == read_json(one.results / "summary.json")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    assert strip(read_metrics(run.metrics)) == strip(read_metrics(one.metrics))
    assert [p.name for p in run.plot_files()]  # drawn once, from the joined results


def test_a_join_waits_for_every_slice_and_a_failed_slice_fails_the_run(tmp_path):
    one, run = train_in_slices(tmp_path, FUNCTIONS, per_task=4)
    Status(state="running").write(split.part_dir(run.root, 1))
    assert split.try_join(run.root) is None  # slice 1 still going
    Status(state="failed", error="RuntimeError: boom").write(split.part_dir(run.root, 1))
    status = split.try_join(run.root)
    assert (status.state, status.error) == ("failed", "slice 1 of 3 failed: RuntimeError: boom")
    assert not (run.results / "model.safetensors").exists()


def test_an_array_that_is_not_per_instance_and_not_declared_shared_stops_the_join(tmp_path):
    one, run = train_in_slices(tmp_path, FUNCTIONS, per_task=4)
    for i in range(3):  # a kind that saved a per-grid array without declaring it
        path = split.part_dir(run.root, i) / "results" / "extra.safetensors"
        save_arrays(path, {"grid": np.linspace(0, 1, 7, dtype=np.float32)})
    status = split.try_join(run.root)
    assert status.state == "failed"
    assert "extra.safetensors: grid has shape [7], not one row per instance (4)" in status.error
    assert "SHARED_RESULTS" in status.error


def test_only_one_joiner_at_a_time(tmp_path):
    one, run = train_in_slices(tmp_path, FUNCTIONS, per_task=5)
    (run.root / split.PARTS / split.LOCK).write_text("another process\n")
    assert split.try_join(run.root) is None  # someone else is joining
    (run.root / split.PARTS / split.LOCK).unlink()
    assert split.try_join(run.root).state == "succeeded"
    assert json.loads((run.root / "status.json").read_text())["state"] == "succeeded"


@pytest.mark.parametrize("per_task", [1, 3])
def test_tms_slices_of_any_size_join_to_the_unsplit_run(tmp_path, per_task):
    text = ('[[job]]\nkind = "tms"\nname = "t"\nn_features = 5\nn_hidden = 2\nsteps = 60\nbatch_size = 32\n'
            "eval_batch = 64\nlog_points = 3\n[job.sweep]\nfeature_probability = [1.0, 0.1, 0.01]\ndropout = [0.0, 0.2]\n")
    one, run = train_in_slices(tmp_path, text, per_task)
    assert split.try_join(run.root).state == "succeeded"
    assert_same_to_rounding(load_arrays(one.results / "model.safetensors"), load_arrays(run.results / "model.safetensors"))
    assert_same_to_rounding(read_json(one.results / "instances.json"), read_json(run.results / "instances.json"))
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    assert_same_to_rounding(strip(read_metrics(one.metrics)), strip(read_metrics(run.metrics)))


def test_the_join_says_in_the_run_s_status_that_it_draws_the_plots_and_beats_meanwhile(tmp_path, monkeypatch):
    """A split run's plots are drawn once, by whoever joins the slices: its status.json says "drawing plots"
    while it does (and beats), so the submitting side shows the phase as for a run that draws its own."""
    import time

    import sptui.queue
    from sptui.kinds import load_kind

    monkeypatch.setattr(sptui.queue, "JOB_BEAT_SECONDS", 0.05)
    _, run = train_in_slices(tmp_path, FUNCTIONS, per_task=4)
    kind = load_kind(run.spec().kind)
    real = kind.render
    seen = []

    def drawing(r):
        first = read_status(r.root)
        time.sleep(0.5)  # a big run's minutes of drawing, in half a second
        seen.append((first, read_status(r.root)))
        return real(r)

    monkeypatch.setattr(kind, "render", drawing)
    status = split.try_join(run.root)
    assert (status.state, status.error) == ("succeeded", None)
    ((first, later),) = seen
    assert (first.state, first.phase) == ("running", "drawing plots") and first.phase_at is not None
    assert later.updated >= first.updated + 0.2  # beaten while it drew, not only when it began
    assert read_status(run.root).state == "succeeded" and run.plot_files()
