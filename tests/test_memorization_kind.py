"""The `memorization` kind end to end (finite training sets, Henighan et al. 2023): one batched job per sweep
over T, its results and PNGs, resume == uninterrupted, bad input as one line, the shipped job file."""

import json
from pathlib import Path

import pytest
import torch

from sptui import runs
from sptui.errors import SpecError
from sptui.kinds import load_kind
from sptui.spec import load_file, parse_text
from tests.helpers import CancelAfter, KindRunError, run_kind

SMALL = dict(n_features=12, feature_probability=0.1, steps=120, warmup_steps=10, eval_batch=500, log_points=4,
             checkpoint_every=50)
SWEEP = {"train_examples": [3, 40], "seed": [0, 1]}


def test_a_sweep_over_sizes_is_one_batched_job_with_points_and_plots(tmp_path):
    run = run_kind("memorization", SMALL, tmp_path, sweep=SWEEP, run_id="run")
    records = json.loads((run.results / "instances.json").read_text())
    assert [r["params"]["train_examples"] for r in records] == [3, 3, 40, 40]
    hidden = runs.load_arrays(run.results / "hidden_points.safetensors")
    assert hidden["points"].shape == (4, 40, 2) and hidden["count"].tolist() == [3, 3, 40, 40]
    W = runs.load_arrays(run.results / "model.safetensors")["W"]
    for r in records:
        i = r["instance"]
        assert set(r["metrics"]) >= {"train_loss", "test_loss", "feature_dim_sum", "point_dim_sum",
                                     "feature_dim_max", "point_dim_max"}
        assert 0 < r["metrics"]["point_dim_max"] <= 1 + 1e-6
        assert not hidden["points"][i, hidden["count"][i]:].any()  # padding stays zero
    # the saved points are what the model makes of its own dataset
    from sptui.science import memorization as Mz

    x = Mz.dataset(Mz.Instance(40, 1), 12, 0.1)
    assert torch.allclose(x @ torch.from_numpy(W[3]), torch.from_numpy(hidden["points"][3]), atol=1e-5)
    test_rows = [m for m in runs.read_metrics(run.metrics) if m["split"] == "test"]
    assert [m["step"] for m in test_rows] == [0, 30, 60, 90, 120] and all(len(m["test_loss"]) == 4 for m in test_rows)
    names = {p.name for p in load_kind("memorization").render(run)}
    assert names == {"double_descent.png", "hidden_vectors.png", "hidden_vectors_seed1.png"}  # every seed drawn
    assert all((run.plots / n).stat().st_size > 5000 for n in names)


def test_hidden_vectors_draw_every_instance_on_sheets_or_say_which_they_leave_out(tmp_path, monkeypatch):
    """7 sizes T x 2 seeds: hidden_vectors.png holds one seed and up to 6 sizes a sheet (7 sizes: 4 and 3), the
    next sheets named by seed and sizes, each (seed, T) panel on exactly one sheet, each title saying which seed and
    sizes it holds (it drew 6 sizes of the first seed, silently). With room for only 3 sheets (the limit lowered),
    the titles and the run log say which instances are not drawn and where they are."""
    from sptui.plots import memorization as P
    from tests.figure_checks import checking_saves

    sizes = [2, 3, 5, 8, 13, 21, 34]

    def sheets(render):
        with checking_saves() as seen:
            run = render()
        assert not any(seen.by_path.values()), seen.report()
        return run, {p.name: [" ".join(t.split()) for t in texts] for p, texts in seen.texts.items()
                     if p.name.startswith("hidden_vectors")}

    monkeypatch.setattr(P, "MAX_SHEETS", 3)
    run, shown = sheets(lambda: run_kind("memorization", {**SMALL, "steps": 20}, tmp_path, run_id="run", render=True,
                                         sweep={"train_examples": sizes, "seed": [0, 1]}))
    assert set(shown) == {"hidden_vectors.png", "hidden_vectors_seed0_T13-34.png", "hidden_vectors_seed1_T2-8.png"}
    records = json.loads((run.results / "instances.json").read_text())
    missing = sorted(r["instance"] for r in records if r["params"]["seed"] == 1 and r["params"]["train_examples"] >= 13)
    for texts in shown.values():
        assert any(f"3 of 4 sheets drawn, seed 1, T = 13-34 (instances {', '.join(map(str, missing))}) only in "
                   "results/" in t for t in texts), texts
    log = run.log.read_text()
    assert "hidden_vectors*.png hold 3 of 4 sheets" in log and "not drawn: seed 1, T = 13-34" in log

    monkeypatch.undo()
    _, shown = sheets(lambda: load_kind("memorization").render(run))
    assert set(shown) == {"hidden_vectors.png", "hidden_vectors_seed0_T13-34.png", "hidden_vectors_seed1_T2-8.png",
                          "hidden_vectors_seed1_T13-34.png"}
    drawn = []
    for texts in shown.values():
        (title,) = [t for t in texts if t.startswith("hidden space")]
        assert "of 4 sheets drawn" not in title
        seed = int(title.split("(seed ")[1][0])
        drawn += [(seed, int(t.split("= ")[1])) for t in texts if t.startswith("T = ") and "," not in t]
    assert sorted(drawn) == sorted((s, T) for s in (0, 1) for T in sizes)  # every instance once


def test_hidden_vector_sheets_tell_swept_learning_rates_apart():
    """lr swept beside seed: a sheet per (seed, lr), its name and title saying which (before, the two lrs' panels
    of one T were drawn side by side with the same title)."""
    from sptui.plots.memorization import hidden_sheets

    records = [{"instance": i, "params": {"train_examples": T, "seed": 0, "lr": lr, "weight_decay": 0.01}}
               for i, (T, lr) in enumerate((T, lr) for T in (5, 50) for lr in (1e-3, 3e-3))]
    assert hidden_sheets(records) == [([(5, 0), (50, 2)], "", "seed 0, lr 0.001; sheet 1 of 2"),
                                      ([(5, 1), (50, 3)], "_seed0_lr0.003", "seed 0, lr 0.003; sheet 2 of 2")]


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    whole = run_kind("memorization", SMALL, tmp_path, sweep=SWEEP, run_id="whole")
    with pytest.raises(KindRunError, match="cancelled"):
        run_kind("memorization", SMALL, tmp_path, sweep=SWEEP, run_id="broken", hooks=CancelAfter(75))  # checkpoint at 50
    broken = run_kind("memorization", SMALL, tmp_path, sweep=SWEEP, run_id="broken")
    a = runs.load_arrays(whole.results / "model.safetensors")
    b = runs.load_arrays(broken.results / "model.safetensors")
    for k in ("W", "b"):
        assert torch.equal(torch.from_numpy(a[k]), torch.from_numpy(b[k])), k


def test_a_resumed_run_continues_from_its_checkpoint_step_and_logs_each_point_once(tmp_path):
    # a constant lr: under the default cosine schedule, steps past the end change nothing, and a loop that
    # restarted its count at 0 after loading the checkpoint would go unseen in the weights
    params = {**SMALL, "lr_schedule": "constant", "warmup_steps": 0}
    whole = run_kind("memorization", params, tmp_path, sweep=SWEEP, run_id="whole")
    with pytest.raises(KindRunError, match="cancelled"):
        run_kind("memorization", params, tmp_path, sweep=SWEEP, run_id="broken", hooks=CancelAfter(75))
    broken = run_kind("memorization", params, tmp_path, sweep=SWEEP, run_id="broken")
    assert "resuming from checkpoint at step 50" in broken.log.read_text()
    a = runs.load_arrays(whole.results / "model.safetensors")
    b = runs.load_arrays(broken.results / "model.safetensors")
    assert all(torch.equal(torch.from_numpy(a[k]), torch.from_numpy(b[k])) for k in ("W", "b"))
    # the log: the points before the checkpoint from the first attempt, those after it from the second, once each
    logged = [(m["step"], m["test_loss"]) for m in runs.read_metrics(broken.metrics)]
    assert logged == [(m["step"], m["test_loss"]) for m in runs.read_metrics(whole.metrics)]


@pytest.mark.parametrize("body, message", [
    ("train_examples = 0", "train_examples: expected a value >= 1"),
    ("feature_probability = 0", "feature_probability: expected a value > 0"),
    ("steps = 10\nwarmup_steps = 10", "warmup_steps: expected fewer than steps (10), found 10"),
])
def test_bad_parameters_are_one_line_errors(body, message):
    with pytest.raises(SpecError) as err:
        parse_text(f'[[job]]\nkind = "memorization"\nname = "bad"\n{body}\n', "bad.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_job_file_sweeps_sizes_as_one_model():
    specs = load_file(Path(__file__).resolve().parent.parent / "jobs" / "memorization.toml")
    assert [s.name for s in specs] == ["memorization-cpu", "memorization-gpu"]
    assert len(specs[0].grid()) == 20 and set(specs[0].sweep) == {"train_examples", "seed"}
    assert specs[1].params["n_features"] == 10000 and specs[1].params["feature_probability"] == 0.001
