"""The `tms-theory` kind end to end: the phase.json contract, the comparison with a trained tms run (with a
planted worse local minimum), its plots, and bad input."""

import json

import pytest
import torch

from sptui import runs
from sptui.kinds import load_kind
from sptui.science import tms_theory as T
from tests.helpers import KindRunError, run_kind

F64 = torch.float64
THEORY = dict(n_features=2, n_hidden=1, probabilities=[1.0, 0.3, 0.01], importance_ratios=[0.3, 3.0], random_starts=1)


def test_phase_json_holds_the_global_minimum_per_cell(tmp_path):
    run = run_kind("tms-theory", THEORY, tmp_path, run_id="theory", render=True)
    phase = json.loads((run.results / "phase.json").read_text())
    assert phase["probabilities"] == [1.0, 0.3, 0.01] and phase["importance_ratios"] == [0.3, 3.0]
    # indexed [ratio][probability]: dense -> the more important feature takes the dimension; sparse -> antipodal
    assert [row[0] for row in phase["phase"]] == [0, 1]
    assert [row[2] for row in phase["phase"]] == [2, 2]
    assert phase["geometry"][0][2] == "1 antipodal pair"
    optima = runs.load_arrays(run.results / "optima.safetensors")
    assert optima["W"].shape == (2, 3, 2, 1) and optima["start_losses"].shape[:2] == (2, 3)
    for r, ratio in enumerate(phase["importance_ratios"]):
        for c, p in enumerate(phase["probabilities"]):
            exact = T.expected_loss(torch.from_numpy(optima["W"][r, c])[None], torch.from_numpy(optima["b"][r, c])[None],
                                    [1.0, ratio], [p, p]).item()
            assert phase["loss"][r][c] == pytest.approx(exact, rel=1e-12)
            assert exact <= optima["start_losses"][r, c].min() * (1 + 1e-12)
    assert phase["loss"][0][0] == pytest.approx(0.3 * (1 / 3 - 1 / 4) / 2, rel=1e-9)  # dense, closed form
    assert {p.name for p in run.plot_files()} == {"phase.png"}


TRAINED = dict(n_features=2, n_hidden=1, steps=1500, lr=0.01, batch_size=256, eval_batch=1024, log_points=2)
TRAINED_SWEEP = {"feature_probability": [1.0, 0.01], "importance": [[1.0, 0.3], [1.0, 3.0]], "seed": [0, 1]}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real trained 2 -> 1 grid; one sparse instance is then put in the "dedicated" basin, a local minimum
    whose exact loss is far above the antipodal optimum (the planted case with a known answer)."""
    root = tmp_path_factory.mktemp("artifacts")
    run = run_kind("tms", TRAINED, root, sweep=TRAINED_SWEEP, run_id="0001-grid")
    path = run.results / "model.safetensors"
    arrays = {k: torch.from_numpy(v) for k, v in runs.load_arrays(path).items()}
    records = json.loads((run.results / "instances.json").read_text())
    planted = next(r["instance"] for r in records
                   if r["grid"]["feature_probability"] == 0.01 and r["grid"]["importance"] == [1.0, 3.0])
    arrays["W"][planted] = torch.tensor([[0.0], [1.0]])
    arrays["b"][planted] = torch.tensor([0.005, 0.0])
    runs.save_arrays(path, arrays)
    return root, run, planted


def test_comparison_reports_every_instance_and_finds_the_planted_local_minimum(trained_run, tmp_path):
    root, trained, planted = trained_run
    run = run_kind("tms-theory", {**THEORY, "probabilities": [], "importance_ratios": [], "compare": "0001-grid"},
                   root, run_id="compare", render=True)
    report = json.loads((run.results / "local_minima.json").read_text())
    rows = report["instances"]
    assert report["run"] == "0001-grid" and len(rows) == 8
    planted_row = rows[planted]
    assert planted_row["worse"] and planted_row["local_geometry"] == "1 dedicated + 1 unrepresented"
    assert planted_row["best_geometry"] == "1 antipodal pair"
    assert (planted_row["local_arrangement"], planted_row["best_arrangement"]) == ("dedicated 1 + unrepresented 0",
                                                                                   "antipodal 0,1")
    # the gap is what the exact losses of the two arrangements say
    assert planted_row["relative_gap"] == pytest.approx(
        (planted_row["local_minimum"] - planted_row["best_known"]) / planted_row["best_known"], rel=1e-12)
    assert planted_row["relative_gap"] > 1
    arrays = runs.load_arrays(trained.results / "model.safetensors")
    exact = T.expected_loss(torch.from_numpy(arrays["W"]), torch.from_numpy(arrays["b"]),
                            torch.tensor([r["grid"]["importance"] for r in rows], dtype=F64),
                            torch.tensor([[r["grid"]["feature_probability"]] * 2 for r in rows], dtype=F64))
    assert [r["exact_loss"] for r in rows] == pytest.approx(exact.tolist(), rel=1e-12)
    for r in rows:
        if r["grid"]["feature_probability"] == 1.0:  # the eval batch's estimate of the same loss (1024 dense draws)
            assert r["eval_batch_loss"] == pytest.approx(r["exact_loss"], rel=0.1)
        assert r["local_minimum"] <= r["exact_loss"] * (1 + 1e-9)
        assert r["relative_gap"] >= -1e-9

    comparison = json.loads((run.results / "comparison.json").read_text())
    assert comparison["probabilities"] == [0.01, 1.0] and comparison["importance_ratios"] == [0.3, 3.0]
    assert comparison["seeds"] == [[2, 2], [2, 2]]
    assert comparison["worse"][1][0] >= 1  # the planted cell: ratio 3, p = 0.01
    assert comparison["theory_phase"] == [[2, 0], [2, 1]]
    phase = json.loads((run.results / "phase.json").read_text())
    assert phase["probabilities"] == [0.01, 1.0]  # the theory grid defaults to the compared run's values
    assert {p.name for p in run.plot_files()} == {"phase.png", "compare.png", "local_minima.png"}


def test_runs_the_theory_cannot_cover_get_one_line(trained_run, tmp_path):
    root, _, _ = trained_run
    with pytest.raises(KindRunError, match="n=2, m=1; this job has n_features=3"):
        run_kind("tms-theory", {**THEORY, "n_features": 3, "n_hidden": 2, "compare": "0001-grid"}, root, run_id="x1")
    with pytest.raises(KindRunError, match='no run "nonexistent"'):
        run_kind("tms-theory", {**THEORY, "compare": "nonexistent"}, root, run_id="x2")
    run_kind("tms", dict(n_features=2, n_hidden=1, steps=5, batch_size=8, eval_batch=16, log_points=1,
                         hidden_activation="relu"), root, run_id="0002-relu-hidden")
    with pytest.raises(KindRunError, match=r'this run has a hidden activation \("relu"\)'):
        run_kind("tms-theory", {**THEORY, "compare": "0002-relu-hidden"}, root, run_id="x3")
    run_kind("tms-theory", THEORY, root, run_id="0003-theory")
    with pytest.raises(KindRunError, match="is a tms-theory run, not tms"):
        run_kind("tms-theory", {**THEORY, "compare": "0003-theory"}, root, run_id="x4")


def test_parameters_are_checked():
    from sptui.errors import SpecError
    from sptui.spec import parse_text

    with pytest.raises(SpecError, match="n_features: expected at most 8"):
        parse_text('[[job]]\nkind = "tms-theory"\nname = "x"\nn_features = 9\n', "x.toml")
    with pytest.raises(SpecError, match="probabilities: expected a value > 0, found 0.0"):
        parse_text('[[job]]\nkind = "tms-theory"\nname = "x"\nprobabilities = [0.5, 0.0]\n', "x.toml")
    assert load_kind("tms-theory").SUMMARY


def test_shipped_job_files_hold_the_papers_diagrams():
    from pathlib import Path

    from sptui.spec import load_file

    jobs = Path(__file__).parent.parent / "jobs"
    theory = {s.name: s.params for s in load_file(jobs / "tms_theory.toml") + load_file(jobs / "tms_theory_compare.toml")}
    assert set(theory) == {"theory-2-1", "theory-3-2", "compare-phase-2-1", "compare-phase-3-2", "compare-intro-5-2"}
    for name, params in theory.items():
        if name != "compare-intro-5-2":  # that run is no grid: its report only
            assert len(params["probabilities"]) == 30 and len(params["importance_ratios"]) == 30
    assert (theory["theory-3-2"]["n_features"], theory["theory-3-2"]["n_hidden"]) == (3, 2)
    assert theory["compare-phase-2-1"]["compare"] == "phase-2-1"
    (trained,) = load_file(jobs / "phase_3_2.toml")
    assert trained.name == theory["compare-phase-3-2"]["compare"] and len(trained.grid()) == 270


def test_tms_instances_name_their_geometry_and_exact_loss(tmp_path):
    # dense 5 -> 2 (two dedicated features) and sparse (antipodal pairs or a pentagon), as the tms kind saves them
    run = run_kind("tms", dict(n_features=5, n_hidden=2, importance_decay=0.9, steps=3000, lr=3e-3, batch_size=512,
                               log_points=2), tmp_path, sweep={"feature_probability": [1.0, 0.05]})
    records = json.loads((run.results / "instances.json").read_text())
    dense, sparse = records
    assert dense["geometry"] == "2 dedicated + 3 unrepresented"
    assert dense["shape"] == ["dedicated", "dedicated", "unrepresented", "unrepresented", "unrepresented"]
    assert dense["shape_counts"] == {"dedicated": 2, "unrepresented": 3}
    assert sparse["geometry"] in ("pentagon", "2 antipodal pairs + 1 unrepresented")
    arrays = runs.load_arrays(run.results / "model.safetensors")
    for r in records:
        p = r["grid"]["feature_probability"]
        exact = T.expected_loss(torch.from_numpy(arrays["W"][r["instance"]])[None],
                                torch.from_numpy(arrays["b"][r["instance"]])[None], [0.9**i for i in range(5)], [p] * 5)
        assert r["metrics"]["exact_loss"] == pytest.approx(exact.item(), rel=1e-6)  # float32 weights, float64 loss
    assert dense["metrics"]["loss"] == pytest.approx(dense["metrics"]["exact_loss"], rel=0.05)  # the eval batch
    assert T.EXACT_MAX_FEATURES == load_kind("tms-theory").MAX_FEATURES


def test_a_degenerate_optimum_has_every_phase_of_its_best_solutions():
    # two features of equal importance, dense: either one takes the dimension (the same loss), so both phases
    # 0 and 1 are optimal and either counts as agreeing with the theory
    from sptui.kinds.tms_theory import co_optimal_phases

    found = T.global_minimum(torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=F64), torch.ones(2, 2, dtype=F64), 1,
                             random_starts=2)
    assert co_optimal_phases(found, 2, 1) == [[0, 1], [1]]


def test_a_run_that_is_no_phase_grid_gets_its_local_minimum_report(tmp_path):
    # 3 -> 2 with importance 0.9^i: no (probability x ratio) grid, so only the report (and no 20 x 20 theory)
    run_kind("tms", dict(n_features=3, n_hidden=2, importance_decay=0.9, steps=800, lr=0.01, batch_size=256,
                         log_points=2), tmp_path, sweep={"feature_probability": [1.0, 0.05]}, run_id="0001-decay")
    run = run_kind("tms-theory", dict(n_features=3, n_hidden=2, random_starts=1, compare="0001-decay"), tmp_path,
                   run_id="report", render=True)
    assert not (run.results / "phase.json").exists()
    report = json.loads((run.results / "local_minima.json").read_text())["instances"]
    assert len(report) == 2 and all(r["best_known"] <= r["local_minimum"] * (1 + 1e-9) for r in report)
    assert report[0]["best_geometry"] == "2 dedicated + 1 unrepresented"  # dense: the top two features
    assert {p.name for p in run.plot_files()} == {"local_minima.png"}


def test_both_searches_give_the_same_diagram(tmp_path):
    grid = dict(THEORY, probabilities=[1.0, 0.5, 0.2, 0.1, 0.05, 0.01], importance_ratios=[0.3, 0.8, 1.5, 3.0])
    fast = json.loads((run_kind("tms-theory", {**grid, "lattice_spacing": 2}, tmp_path, run_id="cont").results
                       / "phase.json").read_text())
    every = json.loads((run_kind("tms-theory", {**grid, "search": "exhaustive"}, tmp_path, run_id="every").results
                        / "phase.json").read_text())
    assert (fast["search"], fast["lattice_spacing"], every["search"]) == ("continuation", 2, "exhaustive")
    assert fast["phase"] == every["phase"] and set(sum(fast["phase"], [])) == {0, 1, 2}
    assert sum(fast["loss"], []) == pytest.approx(sum(every["loss"], []), rel=1e-9)
    assert fast["loss_evaluations"] < every["loss_evaluations"]
