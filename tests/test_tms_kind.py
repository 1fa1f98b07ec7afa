"""The `tms` kind end to end: one batched job per sweep, the results contract, resume, plots, bad input."""

import json

import pytest
import torch

from sptui import runs
from sptui.errors import SpecError
from sptui.kinds import load_kind
from sptui.spec import parse_text
from tests.helpers import CancelAfter, KindRunError, job_toml, run_kind

GRID = dict(n_features=6, n_hidden=2, importance_decay=0.9, steps=300, batch_size=128, log_points=12,
            checkpoint_every=100, snapshots=3)
GRID_SWEEP = {"feature_probability": [1.0, 0.1], "dropout": [0.0, 0.3]}


def test_sweep_is_one_batched_job_with_the_results_contract(tmp_path):
    specs = parse_text(job_toml("tms", GRID, GRID_SWEEP), "test.toml")
    assert len(specs) == 1 and len(specs[0].grid()) == 4
    spec = specs[0]
    run = run_kind("tms", GRID, tmp_path, sweep=GRID_SWEEP, run_id="run")
    arrays = runs.load_arrays(run.results / "model.safetensors")
    assert arrays["W"].shape == (4, 6, 2) and arrays["b"].shape == (4, 6)
    records = json.loads((run.results / "instances.json").read_text())
    assert [r["grid"] for r in records] == spec.grid()
    for r in records:
        assert r["params"]["dropout"] == r["grid"]["dropout"]
        assert len(r["metrics"]["feature_dim"]) == 6
        assert isinstance(r["metrics"]["represented"], int)
        assert isinstance(r["metrics"]["represented_relative"], int)
        for key in ("dims_per_feature_scaled", "sum_sq_norms", "mean_feature_dim"):
            assert isinstance(r["metrics"][key], float)
        # a neuron basis exists only with dropout here (linear hidden layer): alignment, kurtosis and
        # participation are null without it
        privileged = r["grid"]["dropout"] > 0
        for key in ("axis_alignment", "hidden_kurtosis", "neuron_participation"):
            assert (r["metrics"][key] is not None) == privileged, (key, r["grid"])
    assert arrays["transfer"].shape == (4, 6, 6)
    snapshots = sorted(run.snapshots.glob("*.safetensors"))
    assert len(snapshots) == 3 and runs.load_arrays(snapshots[-1])["W"].shape == (4, 6, 2)
    metrics = runs.read_metrics(run.metrics)
    test_steps = [m["step"] for m in metrics if m["split"] == "test"]
    assert test_steps[0] == 0 and test_steps[-1] == 300 and len(test_steps) == 13
    assert all(len(m["loss"]) == 4 for m in metrics)

    paths = load_kind("tms").render(run)
    names = {p.name for p in paths}
    assert {"wtw_bias.png", "feature_norms.png", "geometry_2d.png", "dims_per_feature.png", "sweep.png", "training.png"} <= names
    assert all(p.stat().st_size > 5000 for p in paths)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    whole = run_kind("tms", GRID, tmp_path, sweep=GRID_SWEEP, run_id="whole")
    with pytest.raises(KindRunError, match="cancelled") as cancelled:
        run_kind("tms", GRID, tmp_path, sweep=GRID_SWEEP, run_id="broken", hooks=CancelAfter(150))  # last checkpoint at 100
    broken = cancelled.value.run
    assert not (broken.results / "model.safetensors").exists()
    run_kind("tms", GRID, tmp_path, sweep=GRID_SWEEP, run_id="broken")
    a = runs.load_arrays(whole.results / "model.safetensors")
    b = runs.load_arrays(broken.results / "model.safetensors")
    assert torch.allclose(torch.from_numpy(a["W"]), torch.from_numpy(b["W"]), atol=1e-6)
    steps = [m["step"] for m in runs.read_metrics(broken.metrics) if m["split"] == "test"]
    assert steps == sorted(set(steps))  # metrics after the checkpoint were dropped, not duplicated


def test_phase_diagram_is_drawn_for_two_features_in_one_dimension(tmp_path):
    run = run_kind("tms", dict(n_features=2, n_hidden=1, steps=20, batch_size=32, log_points=2), tmp_path,
                   sweep={"feature_probability": [1.0, 0.1], "importance": [[1.0, 0.5], [1.0, 2.0]]})
    assert "phase_diagram.png" in {p.name for p in load_kind("tms").render(run)}


def test_feature_classes_set_per_feature_probability_and_get_their_own_plot(tmp_path):
    run = run_kind("tms", dict(n_features=6, n_hidden=2, feature_probability=0.01, dense_probability=0.5, steps=20,
                               batch_size=32, log_points=2), tmp_path,
                   sweep={"dense_features": [2], "dense_first": [True, False]})
    probability = runs.load_arrays(run.results / "model.safetensors")["feature_probability"]
    assert probability[0].tolist() == pytest.approx([0.5, 0.5, 0.01, 0.01, 0.01, 0.01])
    assert probability[1].tolist() == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.5, 0.5])
    assert "per_feature.png" in {p.name for p in load_kind("tms").render(run)}


@pytest.mark.parametrize(
    "body, message",
    [
        ("n_features = 3\nfeature_probability = [0.1, 0.2]", "feature_probability: expected one value per feature (3), found 2"),
        ("dropout = 1.0", "dropout: expected a value < 1"),
        ('output_activation = "tanh"', "output_activation: expected one of"),
        ("n_features = 4\n[job.sweep]\nimportance = [[1.0, 1.0]]", "importance: expected one value per feature (4)"),
    ],
)
def test_bad_parameters_are_one_line_errors(body, message):
    with pytest.raises(SpecError) as err:
        parse_text(f'[[job]]\nkind = "tms"\nname = "bad"\n{body}\n', "bad.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_shipped_job_files_parse_into_the_documented_experiments():
    from pathlib import Path

    from sptui.spec import load_file

    jobs = Path(__file__).resolve().parent.parent / "jobs"
    dropout = load_file(jobs / "dropout.toml")
    assert len(dropout[0].grid()) == 240 and set(dropout[0].sweep) == {"feature_probability", "dropout", "seed"}
    assert dropout[2].params["inverted_dropout"] is False
    hidden = load_file(jobs / "hidden_sizes.toml")
    paper, relu = hidden[:6], hidden[6:]
    assert [s.params["n_hidden"] for s in paper] == [s.params["n_hidden"] for s in relu] == [20, 40, 60, 80, 100, 120]
    assert all(s.params["n_features"] == 32 and s.params["tied"] for s in hidden)
    assert all(s.params["output_activation"] == "relu" and s.params["hidden_activation"] == "none" for s in paper)
    assert all(s.params["hidden_activation"] == "relu" for s in relu)
    nonuniform = load_file(jobs / "nonuniform_sparsity.toml")[0]
    assert 1.0 in nonuniform.sweep["dense_probability"] and len(nonuniform.sweep["seed"]) == 3
    gelu = load_file(jobs / "gelu.toml")
    assert {(s.params["output_activation"], s.params["hidden_activation"]) for s in gelu} == {
        ("relu", "none"), ("gelu", "none"), ("relu", "relu"), ("relu", "gelu")}
    linear_relu = load_file(jobs / "linear_vs_relu_20_5.toml")
    assert [s.params["output_activation"] for s in linear_relu] == ["none", "relu"]
    for name in ("demo", "intro_5_2", "geometry", "phase_2_1", "nonuniform_sparsity", "functions"):
        assert load_file(jobs / f"{name}.toml")


def test_untied_hidden_relu_run_is_measured_on_what_it_computes(tmp_path):
    run = run_kind("tms", dict(n_features=5, n_hidden=3, tied=False, hidden_activation="relu", steps=30, batch_size=32,
                               log_points=2), tmp_path)
    arrays = runs.load_arrays(run.results / "model.safetensors")
    W, W_out = torch.from_numpy(arrays["W"]), torch.from_numpy(arrays["W_out"])
    G = W_out @ torch.relu(W).transpose(1, 2)
    assert torch.allclose(torch.from_numpy(arrays["transfer"]), G, atol=1e-6)
    record = json.loads((run.results / "instances.json").read_text())[0]
    norms = torch.diagonal(G, dim1=1, dim2=2).clamp_min(0).sqrt()[0]
    assert record["metrics"]["feature_norm"] == pytest.approx(norms.tolist(), abs=1e-6)
    assert record["metrics"]["axis_alignment"] is not None  # hidden ReLU: a privileged basis
    model = load_kind("tms").saved_model(run)
    assert model.hidden_activation == "relu" and torch.allclose(model.transfer(), G, atol=1e-6)


def test_each_instances_geometry_is_stated_against_random_arrangements(tmp_path):
    # 5 features in 2 dimensions: sparse features learn the pentagon (beats the null); dense ones are not in a
    # named shape after 1,500 steps ("3 other + 2 unrepresented"): no more named than at random
    run = run_kind("tms", dict(n_features=5, n_hidden=2, steps=1500, batch_size=256), tmp_path,
                   sweep={"feature_probability": [1.0, 0.05]}, run_id="null")
    records = {r["grid"]["feature_probability"]: r for r in json.loads((run.results / "instances.json").read_text())}
    sparse, dense = records[0.05], records[1.0]
    assert sparse["geometry"] == "pentagon" and dense["geometry"] != "pentagon"
    v = sparse["null"]["geometry"]
    assert v["beats_null"] and v["observed"] == 1.0 and v["draws"] == 39 and v["p_value"] == 1 / 40, v["text"]
    w = dense["null"]["geometry"]
    assert w["observed"] < 1.0 and not w["beats_null"] and w["verdict"] == "does not beat null", w["text"]
    log = run.log.read_text()
    assert "1 of 2 instances beat the null" in log and f"instance 1 (pentagon): {v['text']}" in log
