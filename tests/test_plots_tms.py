"""The toy-model lab's figures: sheets laid out as the sweep, colour ranges, seed spread, readable heatmaps."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from sptui.plots import tms as P

PS = [1.0, 0.3, 0.1, 0.03]
DROPS = [0.0, 0.1, 0.5]


def records(ps=PS, drops=DROPS, seeds=(0, 1, 2), metric=lambda p, d, s: 1.0):
    out = []
    for p in ps:
        for d in drops:
            for s in seeds:
                out.append({"instance": len(out), "grid": {"feature_probability": p, "dropout": d, "seed": s},
                            "metrics": {"dims_per_feature": metric(p, d, s), "loss": 10 ** -(3 * (1 - p)) + 1e-4 * d,
                                        "represented": 3, "axis_alignment": None}})
    return out


def test_sheet_is_laid_out_as_the_sweep_rows_by_columns():
    recs = records()
    layout = P.sheet_layout(recs)
    assert layout.row_key == "feature_probability" and layout.col_key == "dropout"
    assert layout.rows == [1.0, 0.3, 0.1, 0.03]  # dense at the top
    assert layout.cols == DROPS
    assert layout.shape == (4, 3) and len(layout.cells) == 12
    for (r, c), i in layout.cells.items():
        g = recs[i]["grid"]
        assert (g["feature_probability"], g["dropout"], g["seed"]) == (layout.rows[r], layout.cols[c], 0)
    assert "seed=0" in layout.note
    # a row compares dropout at one sparsity (the old evenly-spaced pick walked the diagonal of the grid)
    row = [recs[layout.cells[(1, c)]]["grid"]["feature_probability"] for c in range(3)]
    assert row == [0.3, 0.3, 0.3]


def test_seeds_become_columns_when_only_one_other_key_is_swept_and_big_grids_are_thinned():
    recs = records(ps=PS, drops=[0.0])
    for r in recs:
        del r["grid"]["dropout"]
    layout = P.sheet_layout(recs)
    assert (layout.row_key, layout.col_key) == ("feature_probability", "seed") and layout.shape == (4, 3)
    big = records(ps=[float(p) for p in np.logspace(0, -3, 20)], drops=[0.1 * k for k in range(10)], seeds=(0,))
    layout = P.sheet_layout(big)
    assert layout.shape == (P.MAX_ROWS, P.MAX_COLS)
    assert layout.rows[0] == 1.0 and layout.rows[-1] == pytest.approx(1e-3)  # first and last kept
    assert "10 of 20 p values" in layout.note and "8 of 10 dropout values" in layout.note
    # training.png's curves take whole rows of the sheet: one column's worth at 10 rows (thin to 1 divided by 0)
    shown = P.training_instances(layout)
    assert len(shown) == P.MAX_ROWS and {big[i]["grid"]["dropout"] for i in shown} == {0.0}
    # one swept key is wrapped into rows of MAX_COLS panels, each titled with its value (no row or column keys)
    one = P.sheet_layout(records(ps=[float(p) for p in np.logspace(0, -3, 12)], drops=[0.0], seeds=(0,)))
    assert one.shape == (2, P.MAX_COLS) and (one.row_key, one.col_key) == (None, None)
    assert one.titles[(0, 0)] == "p=0.001" and one.titles[(1, 3)] == "p=1" and len(one.titles) == 12
    single = P.sheet_layout([{"instance": 0, "grid": {}, "metrics": {}}])
    assert single.cells == {(0, 0): 0}


def test_interference_colours_do_not_saturate_at_one():
    antipodal, pentagon = 1.0, 1.5  # sum_j (W_i^ . W_j)^2 of a pair and of a pentagon (1/D - 1)
    norm = P.interference_norm(np.array([antipodal, pentagon, np.nan]))
    cmap = matplotlib.colormaps["viridis"]
    assert cmap(norm(antipodal)) != cmap(norm(pentagon))
    assert norm.vmax == pytest.approx(1.5)
    assert P.interference_norm(np.array([0.2, np.nan])).vmax == 1.0


def test_dims_per_feature_draws_mean_and_spread_over_seeds():
    recs = records(ps=PS, drops=[0.0], metric=lambda p, d, s: 0.5 + 0.1 * s)
    derived = {"represented": np.ones((len(recs), 3), bool), "dim": np.full((len(recs), 3), 0.5)}
    fig = P.dims_per_feature_figure(recs, derived)
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    # one point per sparsity (the mean over 3 seeds), not 3 points per x joined into a sawtooth
    assert len(line.get_xdata()) == len(PS)
    assert np.allclose(line.get_ydata(), 0.6)
    assert len(ax.collections) >= 1 and "mean over 3 seeds" in ax.get_title()
    matplotlib.pyplot.close(fig)


def test_sweep_heatmaps_stay_readable_at_20_by_10_with_log_loss():
    ps = [float(p) for p in np.logspace(0, -3, 20)]
    drops = [round(0.08 * k, 2) for k in range(10)]
    recs = records(ps=ps, drops=drops, seeds=(0,))
    fig = P.sweep_figure(recs, P.swept_axes(recs), m=5)
    titles = {ax.get_title(): ax for ax in fig.axes}
    loss = titles["eval loss"]
    assert isinstance(loss.images[0].norm, matplotlib.colors.LogNorm)
    for ax in fig.axes:
        if ax.images:
            assert len(ax.get_xticklabels()) <= 10 and len(ax.get_yticklabels()) <= 10
            assert not ax.texts  # 200 cells: no overprinted numbers
    assert not any(t.startswith("axis alignment") for t in titles)  # undefined everywhere: left out
    matplotlib.pyplot.close(fig)
    small = records(ps=PS, drops=DROPS, seeds=(0,))
    fig = P.sweep_figure(small, P.swept_axes(small), m=5)
    assert any(len(ax.texts) == 12 for ax in fig.axes)  # 4 x 3 cells are annotated
    matplotlib.pyplot.close(fig)


def test_every_colour_bar_sits_beside_its_heatmap_with_a_long_geometry_legend():
    """The geometry legend under the sheet's last panel must not widen that column: when it did, the colour bars
    of the column's other heatmaps stood half an inch away from them."""
    names = ["2 antipodal pairs + 1 unrepresented", "pentagon", "3 other + 2 unrepresented"]
    recs = records(seeds=(0,))
    for i, r in enumerate(recs):
        r["geometry"] = names[i % len(names)]
        r["metrics"].update(sum_sq_norms=1.0 + i, mean_feature_dim=0.5, interference=0.1 * i)
    fig = P.sweep_figure(recs, P.swept_axes(recs), m=5)
    fig.canvas.draw()
    width = fig.get_figwidth()
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(bars) >= 3
    for bar in bars:
        heatmap = bar._colorbar.mappable.axes
        gap = (bar.get_position().x0 - heatmap.get_position().x1) * width  # inches
        assert 0 <= gap < 0.25, f"{heatmap.get_title()}: colour bar {gap:.2f} in from its heatmap"
    matplotlib.pyplot.close(fig)


def test_axis_labels_name_values():
    assert P.value_label("feature_probability", 0.0464) == "p=0.0464"
    assert P.value_label("importance", [1.0, 0.5]) == "I=[..0.5]"
    assert P.thin(list(range(20)), 5) == [0, 5, 10, 14, 19]
    assert P.thin(list(range(20)), 1) == [0] and P.thin(list(range(20)), 0) == []
    # feature groups are written out up to GROUPS_WRITTEN, then counted (a column label must fit a narrow panel)
    assert P.value_label("correlated", [[0, 1], [2, 3]]) == "corr=(0,1),(2,3)"
    assert P.value_label("correlated", [[2 * k, 2 * k + 1] for k in range(20)]) == "corr=(0,1),(2,3),.. 20 groups"


def test_geometry_captions_break_a_line_per_part_and_wrap_to_the_panel():
    assert P._caption_lines("2 antipodal pairs + 2 other", 40) == ["2 antipodal pairs", "+ 2 other"]
    assert P._caption_lines("2 antipodal pairs + 2 other", 12) == ["2 antipodal", "pairs", "+ 2 other"]
    assert P._caption_lines("", 12) == []


def test_sheet_labels_wrap_between_groups_to_fit_their_panel():
    text, size = P._fit_label("(0,1),(2,3),(4,5)", 0.7)
    assert text.split("\n") == ["(0,1),", "(2,3),", "(4,5)"] and size == 8  # never "(2," / "3)"
    assert P._fit_label("0.01", 0.7) == ("0.01", 8)
    text, size = P._fit_label("(0,1),(2,3),(4,5),(6,7),(8,9)", 0.7)
    assert size < 8 and all(len(line) * size * P.CHAR_WIDTH <= 0.7 * 72 for line in text.split("\n"))
    assert math.isnan(P._num(None))


def test_training_panels_a_model_leaves_undefined_are_empty():
    # Instance 0 has a privileged basis (alignment logged), instance 1 none (null): with only instance 1 shown the
    # alignment panel must carry no line, no baseline and no ticks that suggest a value (it drew the random-direction
    # line at 0.39 across an empty axis with ticks 0.37-0.40).
    logged = [{"split": "test", "step": s, "loss": [0.1, 0.1], "dims_per_feature": [1.0, 1.0],
               "represented_relative": [5, 5], "axis_alignment": [0.9, None], "neuron_participation": [1.5, None],
               "hidden_kurtosis": [4.0, None]} for s in (0, 100, 200)]
    labels = ["privileged", "rotation-invariant"]
    undefined = P.training_figure(logged, labels, [1], m=5).axes
    alignment = next(ax for ax in undefined if ax.get_title() == "axis alignment")
    assert not any(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any() for line in alignment.lines)
    assert not len(alignment.get_yticks())
    assert any(t.get_text().startswith("undefined") for t in alignment.texts)
    defined = P.training_figure(logged, labels, [0], m=5).axes
    alignment = next(ax for ax in defined if ax.get_title() == "axis alignment")
    baseline = alignment.lines[-1]
    assert baseline.get_ydata()[0] == pytest.approx(0.7378, abs=1e-3) and len(alignment.get_yticks())
