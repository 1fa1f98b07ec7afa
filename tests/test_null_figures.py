"""Figures draw the null a structure is claimed against (sptui.plots.nulls), read from the verdicts the kinds
saved (instances.json null.*, summary.json per_layer.neighbours_null), and runs saved before the nulls still draw.

Real small runs: a tms sweep and SAEs trained on it; every figure through the figure checks (checking_saves)."""

from __future__ import annotations

import json
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.collections as mcoll  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sptui import runs  # noqa: E402
from sptui.plots import nulls  # noqa: E402

from .figure_checks import checking_saves  # noqa: E402
from .helpers import run_kind  # noqa: E402
from .test_figures import assert_clean, drawn  # noqa: E402


@pytest.fixture(scope="module")
def toy_and_sae(tmp_path_factory):
    root = tmp_path_factory.mktemp("nullfigs")
    toy = run_kind("tms", dict(n_features=5, n_hidden=2, steps=200, batch_size=256, log_points=2), root,
                   sweep={"feature_probability": [1.0, 0.3, 0.05], "importance_decay": [1.0, 0.7]}, name="toy")
    sae = run_kind("sae", dict(source="toy", architecture="relu", d_sae=10, lr=3e-3, steps=60, batch_size=256,
                               log_points=2, eval_tokens=2048), root, sweep={"sparsity_coefficient": [0.3, 3.0]},
                   name="sae-toy")
    return toy, sae


def _gid(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _cells(records, xkey, xs, ykey, ys):
    return lambda r: (ys.index(r["grid"][ykey]), xs.index(r["grid"][xkey]))


def test_sae_metrics_and_recovery_draw_each_instances_random_dictionary_null(toy_and_sae):
    from sptui.plots.sae import metrics_figure, recovery_figure, swept_axes

    _, sae = toy_and_sae
    records = runs.read_json(sae.results / "instances.json")
    summary = runs.read_json(sae.results / "summary.json")
    saved = [r["null"]["mmcs"] for r in records]
    fig = metrics_figure(records, summary)
    try:
        ax = next(a for a in fig.axes if a.get_ylabel() == "mmcs")
        # per bar, the null's 95% bar and mean at the saved values, in instance order
        assert [ln.get_ydata()[0] for ln in _gid(ax, nulls.GID_BAR)] == pytest.approx([v["null_quantile"] for v in saved])
        assert [ln.get_ydata()[0] for ln in _gid(ax, nulls.GID_MEAN)] == pytest.approx([v["null_mean"] for v in saved])
        hatched = [p.get_x() + p.get_width() / 2 for p in _gid(ax, nulls.GID_FAILS)]
        assert hatched == pytest.approx([i for i, v in enumerate(saved) if not v["beats_null"]])
        beat = sum(v["beats_null"] for v in saved)
        assert f"({beat} of {len(saved)} beat random dictionaries)" in ax.get_title()
        legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        assert "random dictionaries: 95% (the bar to beat)" in legend and "pale, hatched: does not beat random dictionaries" in legend
    finally:
        plt.close(fig)

    axes = swept_axes([r["source_grid"] for r in records])
    (xkey, xs), (ykey, ys) = axes.items()
    fig = recovery_figure(records, axes, summary)
    try:
        cell = lambda r: (ys.index(r["source_grid"][ykey]), xs.index(r["source_grid"][xkey]))  # noqa: E731
        settings = [p for p in dict.fromkeys(json.dumps(r["grid"], sort_keys=True) for r in records)]
        fails = []
        for s in settings:  # expected: cells where most of the setting's instances do not beat the null
            votes: dict = {}
            for r in records:
                if json.dumps(r["grid"], sort_keys=True) == s:
                    votes.setdefault(cell(r), []).append(r["null"]["mmcs"]["beats_null"])
            fails.append({c for c, b in votes.items() if sum(b) * 2 <= len(b)})
        fails.append(set.intersection(*fails))  # the best-of row: no setting beats the null there
        mmcs_axes = [a for a in fig.axes if a.get_subplotspec() and a.get_subplotspec().colspan.start == 1]
        assert len(mmcs_axes) == len(fails)
        for ax, expected in zip(mmcs_axes, fails):
            drawn_cells = {(round(p.vertices[0][1] + 0.5), round(p.vertices[0][0] + 0.5))
                           for c in _gid(ax, nulls.GID_FAILS) for p in c.get_paths()}
            assert drawn_cells == expected
        assert any(isinstance(c, mcoll.PatchCollection) for a in mmcs_axes for c in _gid(a, nulls.GID_FAILS)) == bool(
            any(fails))
    finally:
        plt.close(fig)


def test_tms_geometry_figures_mark_the_arrangements_that_do_not_beat_random_ones(toy_and_sae):
    from sptui.plots.tms import sweep_figure, swept_axes

    toy, _ = toy_and_sae
    records = runs.read_json(toy.results / "instances.json")
    axes = swept_axes(records)
    (xkey, xs), (ykey, ys) = [(k, v) for k, v in axes.items() if k != "seed"][:2]
    fig = sweep_figure(records, axes)
    try:
        ax = next(a for a in fig.axes if a.get_title() == "geometry (the most common)")
        cell = _cells(records, xkey, xs, ykey, ys)
        votes: dict = {}
        for r in records:
            votes.setdefault(cell(r), []).append(r["null"]["geometry"]["beats_null"])
        expected = {c for c, b in votes.items() if sum(b) * 2 <= len(b)}
        assert expected, "the small sweep has arrangements that do not beat the null (two features in 2 dims)"
        drawn_cells = {(round(p.vertices[0][1] + 0.5), round(p.vertices[0][0] + 0.5))
                       for c in _gid(ax, nulls.GID_FAILS) for p in c.get_paths()}
        assert drawn_cells == expected
        assert any("hatched: does not beat" in t.get_text() for t in ax.get_legend().get_texts())
    finally:
        plt.close(fig)

    problems, texts = drawn_with_texts(toy, "tms")
    assert_clean(problems)
    # each panel whose arrangement does not beat the null says so with its saved p, and only those
    chance = sorted(t.split("\n")[-1] for t in texts["geometry_2d.png"] if t.split("\n")[-1].startswith("(chance, p "))
    assert chance == sorted(f"(chance, p {r['null']['geometry']['p_value']:.2g})" for r in records
                            if not r["null"]["geometry"]["beats_null"])
    assert any("(chance, p): the share of features in named shapes does not beat" in t.replace("\n", " ")
               for t in texts["geometry_2d.png"])


def drawn_with_texts(run, kind: str):
    from sptui.kinds import load_kind

    from .figure_checks import checking_saves

    with checking_saves() as seen:
        paths = load_kind(kind).render(run)
    pngs = [p for p in paths if p.suffix == ".png"]
    return ({p.name: seen.by_path[p] for p in pngs}, {p.name: seen.texts[p] for p in pngs})


def test_sae_figures_with_the_null_pass_the_figure_checks(toy_and_sae):
    _, sae = toy_and_sae
    problems = drawn(sae, "sae")
    assert {"metrics.png", "recovery.png", "recovery_toy.png"} <= set(problems)
    assert_clean(problems)


def test_runs_saved_before_the_nulls_draw_as_before(toy_and_sae, tmp_path):
    """instances.json without `null` (and summary.json without mmcs_null): every figure still drawn and clean, no
    null drawn or named anywhere."""
    toy, sae = toy_and_sae
    root = tmp_path / "runs"
    copies = {}
    for run in (toy, sae):
        folder = root / run.root.name
        shutil.copytree(run.root, folder)
        path = folder / "results" / "instances.json"
        path.write_text(json.dumps([{k: v for k, v in r.items() if k != "null"}
                                    for r in json.loads(path.read_text())]))
        summary = folder / "results" / "summary.json"
        if summary.exists():
            summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items() if k != "mmcs_null"}))
        copies[run.root.name] = runs.RunDir(folder)
    for name, kind in (("toy", "tms"), ("sae-toy", "sae")):
        problems, texts = drawn_with_texts(copies[name], kind)
        assert_clean(problems)
        words = " ".join(t for ts in texts.values() for t in ts)
        assert "chance" not in words and "beat" not in words and "random dictionaries" not in words


def test_neuroscope_layer_title_states_the_neighbours_verdict():
    from sptui.plots.neuroscope import neighbours_line
    from sptui.science.null import compare

    rng = np.random.default_rng(0)
    beats = compare(0.9, rng.uniform(0.2, 0.4, 19), what="mean best-neighbour cosine", null_name="the rotation null")
    fails = compare(0.3, rng.uniform(0.2, 0.4, 19), what="mean best-neighbour cosine", null_name="the rotation null")
    summary = {"per_layer": {"0": {"neighbours_null": beats.to_json()}, "1": {"neighbours_null": fails.to_json()},
                             "2": {}}}
    assert neighbours_line(summary, 0, "neuron") == (
        f"\nsimilar neurons (mean best-neighbour cosine 0.9): beats the rotation null by {beats.margin:.3g}, p = 0.05")
    assert neighbours_line(summary, 1, "latent").startswith("\nsimilar latents (mean best-neighbour cosine 0.3): "
                                                            "does not beat the rotation null, p = ")
    assert neighbours_line(summary, 2, "neuron") == "" and neighbours_line({}, 0, "neuron") == ""


# ---------------------------------------------------------------- computation: monosemantic neurons

def test_computation_neurons_draw_the_monosemantic_null_pooled_over_seeds(tmp_path, monkeypatch):
    """neurons.png stacks neuron counts per setting (mean over seeds); the monosemantic count at its bottom gets
    its null (mean of the seeds' null means and bars) and is hatched where most seeds do not beat it."""
    from sptui.plots import computation as P
    from sptui.science.null import compare

    rng = np.random.default_rng(0)

    def record(p, seed, mono, beats):
        null = rng.normal(mono - 3, 0.3, 99) if beats else rng.normal(mono, 0.5, 99)
        metrics = {"monosemantic": mono, "two_features": 2, "three_or_more": 1, "dead": 8 - 3 - mono,
                   "computed": 3, "partly_computed": 4}
        return {"params": {"feature_probability": p, "n_hidden": 8, "seed": seed}, "metrics": metrics,
                "null": {"monosemantic": compare(mono, null, what="monosemantic neurons",
                                                 null_name="random input rows").to_json()}}

    # dense setting: both seeds beat; sparse: one of two (a tie: not beaten)
    records = [record(0.9, 0, 5, True), record(0.9, 1, 5, True), record(0.1, 0, 1, True), record(0.1, 1, 1, False)]
    assert [r["null"]["monosemantic"]["beats_null"] for r in records] == [True, True, True, False]
    summary = {"task": "uand", "n_features": 4, "outputs": 6, "monosemantic_share": 0.9, "computed_below": 0.1,
               "partly_below": 0.5}
    figures = []
    real = P.save_figure
    monkeypatch.setattr(P, "save_figure", lambda fig, path, **kw: figures.append(fig) or real(fig, path, **kw))
    with checking_saves() as seen:
        P.draw_neurons(records, summary, tmp_path / "neurons.png")
    assert list(seen.by_path) == [tmp_path / "neurons.png"] and seen.report() == ""
    bars = figures[0].axes[0]
    keys = sorted({P._setting(r) for r in records})  # x order: sparsity 0.1 then 0.9
    for x, key in enumerate(keys):
        mine = [r["null"]["monosemantic"] for r in records if P._setting(r) == key]
        at = [ln for ln in _gid(bars, nulls.GID_BAR) if ln.get_xdata()[0] < x < ln.get_xdata()[1]]
        assert [ln.get_ydata()[0] for ln in at] == pytest.approx([np.mean([v["null_quantile"] for v in mine])])
        at = [ln for ln in _gid(bars, nulls.GID_MEAN) if ln.get_xdata()[0] < x < ln.get_xdata()[1]]
        assert [ln.get_ydata()[0] for ln in at] == pytest.approx([np.mean([v["null_mean"] for v in mine])])
    hatched = [p.get_x() + p.get_width() / 2 for p in _gid(bars, nulls.GID_FAILS)]
    assert hatched == pytest.approx([keys.index((0.9, 8))])  # S = 0.9: one seed of two beats it
    assert any("random input rows" in t.get_text() for t in bars.get_legend().get_texts())
    # a run saved before the nulls draws as before
    for r in records:
        del r["null"]
    figures.clear()
    with checking_saves() as seen:
        P.draw_neurons(records, summary, tmp_path / "old.png")
    assert seen.report() == "" and not _gid(figures[0].axes[0], nulls.GID_BAR)
    assert not any("random" in t.get_text() for t in figures[0].axes[0].get_legend().get_texts())
