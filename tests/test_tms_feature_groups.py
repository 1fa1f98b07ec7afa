"""The tms kind with feature groups (correlated, anticorrelated, hierarchy) end to end: parameters, the saved
group cosines, the logged metrics, the PNGs, the shipped job file, and bad structures as one-line errors."""

import json
from pathlib import Path

import pytest

from sptui import runs
from sptui.errors import SpecError
from sptui.kinds import load_kind
from sptui.spec import load_file, parse_text
from tests.helpers import run_kind

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def test_a_sweep_over_structures_saves_group_cosines_and_draws_them(tmp_path):
    params = dict(n_features=4, n_hidden=2, feature_probability=0.2, steps=60, batch_size=64, log_points=3)
    sweep = {"correlated": [[], [[0, 1], [2, 3]]], "seed": [0, 1]}
    run = run_kind("tms", params, tmp_path, sweep=sweep, run_id="run")
    records = json.loads((run.results / "instances.json").read_text())
    assert len(records) == 4
    seen_within = False
    for r in records:
        structured = bool(r["grid"]["correlated"])
        assert ("groups" in r) == structured
        if structured:
            assert r["groups"] == [{"name": "corr 0", "features": [0, 1]}, {"name": "corr 1", "features": [2, 3]}]
            assert len(r["group_cos"]) == 2 and len(r["group_abs_cos"][0]) == 2
            assert 0 <= r["metrics"]["across_group_abs_cos"] <= 1
            # the saved summary is the per-pair matrix's: within = the diagonal's mean (2 pairs of 2 features each)
            # (a group without a represented pair is null and left out)
            diagonal = [v for v in (r["group_cos"][0][0], r["group_cos"][1][1]) if v is not None]
            within = r["metrics"]["within_group_cos"]
            assert within == (pytest.approx(sum(diagonal) / len(diagonal), abs=1e-5) if diagonal else None)
            seen_within = seen_within or bool(diagonal)
        else:
            assert r["metrics"]["within_group_cos"] is None
        # the exact theory integrates over independent features only
        assert ("exact_loss" in r["metrics"]) == (not structured)
    assert seen_within
    test_rows = [m for m in runs.read_metrics(run.metrics) if m["split"] == "test"]
    assert all(len(m["within_group_abs_cos"]) == 4 for m in test_rows)
    frequency = [r["metrics"]["feature_frequency"] for r in records]
    assert all(f == pytest.approx([0.2] * 4, abs=0.03) for f in frequency)

    paths = load_kind("tms").render(run)
    names = {p.name for p in paths}
    assert {"group_cosines.png", "feature_groups_2d.png", "geometry_2d.png"} <= names
    assert all(p.stat().st_size > 5000 for p in paths)


def test_a_hierarchy_run_records_its_trees_and_child_frequencies(tmp_path):
    params = dict(n_features=5, n_hidden=2, feature_probability=0.5, hierarchy=[[0, 1], [0, 2]], steps=30,
                  batch_size=64, log_points=2)
    run = run_kind("tms", params, tmp_path, run_id="tree")
    (record,) = json.loads((run.results / "instances.json").read_text())
    assert record["groups"] == [{"name": "tree 0", "features": [0, 1, 2]}, {"name": "independent", "features": [3, 4]}]
    # a child's marginal frequency is its probability given the parent times the parent's
    assert record["metrics"]["feature_frequency"] == pytest.approx([0.5, 0.25, 0.25, 0.5, 0.5], abs=0.03)


@pytest.mark.parametrize(
    "body, message",
    [
        ("anticorrelated = [[0, 1, 2]]\nfeature_probability = 0.4", "anticorrelated[0]: at most one feature of the "
         "group is present, so its feature probabilities must sum to at most 1, found 1.2"),
        ("n_features = 4\ncorrelated = [[0, 9]]", "correlated[0]: feature 9 is out of range (n_features = 4)"),
        ("correlated = [[0, 1]]\nanticorrelated = [[1, 2]]", "feature 1 is already in correlated[0]"),
        ("hierarchy = [[0, 1, 2]]", "hierarchy: expected [parent, child] pairs"),
        ("hierarchy = [[0, 1], [1, 0]]", "the parent links form a cycle"),
        ("correlated = [[-1, 2]]", "correlated"),
    ],
)
def test_impossible_structures_are_one_line_errors(body, message):
    with pytest.raises(SpecError) as err:
        parse_text(f'[[job]]\nkind = "tms"\nname = "bad"\n{body}\n', "bad.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_exact_theory_refuses_a_run_with_feature_groups(tmp_path, monkeypatch):
    monkeypatch.setenv("SPTUI_ARTIFACTS", str(tmp_path))
    run_kind("tms", dict(n_features=4, n_hidden=2, correlated=[[0, 1]], steps=20, batch_size=32), tmp_path,
             name="grouped")
    from tests.helpers import KindRunError

    with pytest.raises(KindRunError) as err:
        run_kind("tms-theory", {"compare": "grouped", "n_features": 4, "n_hidden": 2}, tmp_path, run_id="theory")
    assert "correlated, anticorrelated or hierarchical features" in str(err.value)


def test_the_shipped_job_file_holds_the_papers_experiments():
    specs = {s.name: s for s in load_file(JOBS / "correlated_features.toml")}
    assert set(specs) == {"correlated-4-2", "anticorrelated-4-2", "independent-4-2", "correlated-6-2", "hierarchy-6-2"}
    assert specs["correlated-4-2"].params["correlated"] == [[0, 1], [2, 3]]
    assert specs["anticorrelated-4-2"].params["anticorrelated"] == [[0, 1], [2, 3]]
    # the control differs from the structured jobs in the structure only
    same = {k: v for k, v in specs["independent-4-2"].params.items() if k not in ("correlated", "anticorrelated")}
    for name in ("correlated-4-2", "anticorrelated-4-2"):
        assert {k: v for k, v in specs[name].params.items() if k not in ("correlated", "anticorrelated")} == same
        assert specs[name].sweep == specs["independent-4-2"].sweep
