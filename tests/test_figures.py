"""Every kind's PNGs, drawn by the real renderers from small real runs, pass the figure checks
(tests/figure_checks.py: colour bars on heatmaps, labelled axes, legends, symmetric diverging ranges, no
overlapping or cut text, readable at a page's width). The checks themselves are tested on figures built to
break each rule once.

The default suite draws a toy-model grid (the sheets, sweep and training curves); `-m slow` draws every kind.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sptui.kinds import load_kind  # noqa: E402
from sptui.render.colormap import DIVERGING, SEQUENTIAL  # noqa: E402

from .figure_checks import MAX_HEIGHT, checking_saves, figure_problems, saved_inches  # noqa: E402
from .helpers import run_kind  # noqa: E402


def drawn(run, kind: str) -> dict:
    """Render `run` with its kind's renderer, every saved figure checked: {file name: problems}."""
    with checking_saves() as seen:
        paths = load_kind(kind).render(run)
    pngs = [p for p in paths if p.suffix == ".png"]
    assert pngs and all(p in seen.by_path for p in pngs), "a PNG was written without going through savefig"
    return {str(p.relative_to(run.plots)): seen.by_path[p] for p in pngs}


def assert_clean(problems: dict) -> None:
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, "figure problems:\n" + "\n".join(f"{n}:\n  " + "\n  ".join(f) for n, f in sorted(bad.items()))


# ---------------------------------------------------------------- the checks, on figures that break one rule

def _problems(fig) -> list[str]:
    try:
        return figure_problems(fig)
    finally:
        plt.close(fig)


def test_a_heatmap_without_a_colour_bar_is_caught():
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    ax.imshow(np.arange(12.0).reshape(3, 4), cmap=SEQUENTIAL)
    assert any("without a colour bar" in p for p in _problems(fig))
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    fig.colorbar(ax.imshow(np.arange(12.0).reshape(3, 4), cmap=SEQUENTIAL), ax=ax, label="value")
    ax.set(xlabel="column", ylabel="row")
    assert _problems(fig) == []


def test_a_diverging_map_off_centre_or_in_another_colormap_is_caught():
    data = np.linspace(-1, 2, 12).reshape(3, 4)
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    fig.colorbar(ax.imshow(data, cmap=DIVERGING), ax=ax, label="value")  # range (-1, 2): white is not 0
    assert any("not symmetric" in p for p in _problems(fig))
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    fig.colorbar(ax.imshow(data, cmap="bwr", vmin=-2, vmax=2), ax=ax, label="value")  # blue-white-red, not ours
    assert any('colormap "bwr"' in p for p in _problems(fig))
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    fig.colorbar(ax.imshow(data, cmap=DIVERGING, vmin=-2, vmax=2), ax=ax, label="value")
    ax.set(xlabel="column", ylabel="row")
    assert _problems(fig) == []


def test_unlabelled_axes_unnamed_series_and_fractional_counts_are_caught():
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    for k in range(3):
        ax.plot([0, 1, 2, 3], [k, k + 1, k + 1, k + 2])
    found = _problems(fig)
    assert any("x axis has numbers but no label" in p for p in found)
    assert any("3 series and no legend" in p for p in found)
    assert any("integer y values with ticks" in p for p in found)  # 0.5 features
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    for k in range(3):
        ax.plot([0, 1, 2, 3], [k, k + 1, k + 1, k + 2], label=f"run {k}")
    ax.set(xlabel="step", ylabel="features")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    assert _problems(fig) == []


def test_overlapping_tick_labels_and_tiny_text_are_caught():
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.plot(range(40), range(40))
    ax.set_xticks(range(40), [f"tick {k}" for k in range(40)])
    ax.set(xlabel="x", ylabel="y")
    assert any("x tick labels overlap" in p for p in _problems(fig))
    fig, ax = plt.subplots(figsize=(14, 3), layout="constrained")  # 8 pt at 14 in is 4 pt on a 7 in page
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="x", ylabel="y")
    ax.tick_params(labelsize=8)
    assert any("under 5 pt" in p for p in _problems(fig))


def test_texts_that_run_together_on_one_line_are_caught():
    """Two column titles with no space between them read as one ("p=0.000123p=0.000136"); an em apart they do not."""
    for gap_em, caught in ((0.05, True), (1.0, False)):
        fig = plt.figure(figsize=(4, 1))
        first = fig.text(0.05, 0.5, "p=0.000123", fontsize=8)
        fig.canvas.draw()
        right = first.get_window_extent(fig.canvas.get_renderer()).x1 + gap_em * 8 * fig.dpi / 72
        fig.text(right / fig.bbox.width, 0.5, "p=0.000136", fontsize=8)
        found = [p for p in _problems(fig) if "run together" in p]
        assert bool(found) == caught, found


def test_a_figure_wider_than_a_page_is_caught_whatever_its_text_size():
    fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
    ax.plot([0, 0.5], [0, 0.5])
    ax.set_xlabel("x", fontsize=12)
    ax.set_ylabel("y", fontsize=12)
    ax.tick_params(labelsize=12)  # 9.3 pt on a 7 in page: only the width is wrong
    assert [p for p in _problems(fig)] == ["figure 9.0 in wide: wider than a page (7.5 in), so it is printed shrunk"]
    fig, ax = plt.subplots(figsize=(6, 3))  # saved tight with a legend beside it: the width is the saved one
    ax.plot([0, 0.5], [0, 0.5], label="a long name for a series, beside the panel")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    try:
        assert any("wider than a page" in p for p in figure_problems(fig, tight=True))
        assert not any("wider than a page" in p for p in figure_problems(fig))
    finally:
        plt.close(fig)


def test_a_figure_taller_than_a_page_is_caught_in_every_figure_check():
    """The page's height is a rule of figure_problems itself (so every kind's figure test holds it), as the width."""
    fig, ax = plt.subplots(figsize=(5, 10), layout="constrained")
    ax.plot([0, 0.5], [0, 0.5])
    ax.set(xlabel="x", ylabel="y")
    assert [p for p in _problems(fig)] == ["figure 10.0 in tall: taller than a page (9.3 in), so it is printed "
                                           "shrunk or split"]
    fig, ax = plt.subplots(figsize=(5, 9.2))  # saved tight with a legend hung under it: the height is the saved one
    ax.plot([0, 0.5], [0, 0.5], label="a series")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5))
    try:
        assert any("taller than a page" in p for p in figure_problems(fig, tight=True))
        assert not any("taller than a page" in p for p in figure_problems(fig))
    finally:
        plt.close(fig)


def _square_sheet(height: float):
    """3 x 4 square heatmaps, a page wide and `height` tall, one colour bar."""
    fig, axs = plt.subplots(3, 4, figsize=(7, height), layout="constrained")
    for ax in axs.flat:
        image = ax.imshow(np.eye(4) - 0.5, cmap=DIVERGING, vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axs, label="value")
    fig.suptitle("a sheet of square panels", fontsize=9)
    return fig, axs


def test_rows_of_square_panels_in_a_too_tall_figure_leave_empty_bands_which_fit_rows_closes():
    from sptui.plots.tms import fit_rows

    found = [p for p in _problems(_square_sheet(8.0)[0]) if "empty band" in p]
    assert found and found[0].startswith("3 empty band(s)"), found  # under the title, between rows 1-2, 2-3
    fig, axs = _square_sheet(8.0)
    fit_rows(fig, axs)
    assert 4.0 < fig.get_figheight() < 6.5  # three rows of ~1.4 in squares, the title and pads
    assert _problems(fig) == []
    fig, axs = _square_sheet(3.0)  # too short: the squares shrink and leave room at the sides; fit_rows grows it
    fit_rows(fig, axs)
    assert fig.get_figheight() > 4.0
    assert _problems(fig) == []


def test_a_legend_under_the_panels_hides_no_band_and_fills_none():
    """A figure legend hung under the panels, as wide as they are, is left out of the band check by its own box:
    the rows of panels above it are still drawn (no band found in a sheet that fits), and a gap between rows
    is still a gap (found in a sheet made too tall)."""
    from sptui.plots.tms import fit_rows

    for height, fitted in ((8.0, False), (8.0, True)):
        fig, axs = _square_sheet(height)
        handles = [matplotlib.patches.Patch(color=f"C{k}", label=f"entry {k}") for k in range(3)]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, mode="expand")
        if fitted:
            fit_rows(fig, axs)
        found = [p for p in _problems(fig) if "empty band" in p]
        assert bool(found) != fitted, found


def test_a_categorical_map_needs_a_legend_which_may_hang_under_its_sub_figure():
    cmap = matplotlib.colors.ListedColormap(["#d62728", "#1f77b4", "#7f7f7f"])
    for with_legend in (False, True):
        fig = plt.figure(figsize=(6, 3), layout="constrained")
        left, _ = fig.subfigures(1, 2)
        ax = left.subplots()
        ax.imshow(np.array([[0, 1], [2, 1]]), cmap=cmap, vmin=-0.5, vmax=2.5)
        ax.set(xlabel="column", ylabel="row")
        if with_legend:
            handles = [matplotlib.patches.Patch(color=cmap(k), label=name) for k, name in enumerate("abc")]
            left.legend(handles=handles, loc="outside lower center")
        found = [p for p in _problems(fig) if "categorical map" in p]
        assert bool(found) != with_legend, found


# ---------------------------------------------------------------- real runs

def test_toy_model_grid_figures_are_fit_for_a_paper(tmp_path):
    """A 4 x 5 sheet (sparsity x dropout): a page wide, and its rows of W^T W images without empty bands between."""
    run = run_kind("tms", dict(n_features=5, n_hidden=2, steps=120, batch_size=64, eval_batch=256, log_points=4),
                   tmp_path, sweep={"feature_probability": [1.0, 0.3, 0.1, 0.01], "dropout": [0.0, 0.1, 0.2, 0.3, 0.4],
                                    "seed": [0, 1]}, name="grid")
    problems = drawn(run, "tms")
    assert {"wtw_bias.png", "feature_norms.png", "geometry_2d.png", "training.png", "sweep.png",
            "dims_per_feature.png"} <= set(problems)
    assert_clean(problems)


# ---------------------------------------------------------------- every other kind (slow: each trains or scans)

ADDITION = dict(n_digits=2, n_train=400, n_test=100, n_heads=4, d_model=32, batch_size=50, epochs=4, lr=3e-3,
                log_every=8, eval_every=8, checkpoint_every=16)


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory):
    return tmp_path_factory.mktemp("figures")


@pytest.mark.slow
def test_addition_figures_are_fit_for_a_paper(artifacts_root):
    run = run_kind("addition", ADDITION, artifacts_root, name="add")
    problems = drawn(run, "addition")
    assert {"curves.png", "ablation_heads.png", "attention_mean.png", "projection_q.png", "head_2.png"} <= set(problems) \
        or {"curves.png", "ablation_heads.png", "attention_mean.png", "projection_q.png"} <= set(problems)
    assert_clean(problems)


@pytest.mark.slow
def test_batched_addition_figures_are_fit_for_a_paper(artifacts_root):
    run = run_kind("addition", {**ADDITION, "epochs": 2}, artifacts_root, sweep={"seed": [0, 1]}, name="add-seeds")
    assert_clean(drawn(run, "addition"))


@pytest.mark.slow
def test_functions_and_tms_theory_figures_are_fit_for_a_paper(artifacts_root):
    functions = run_kind("functions", dict(target="max_abs", activation="gelu", width=6, steps=60, batch_size=64,
                                           log_points=3), artifacts_root, sweep={"seed": [0, 1]}, name="functions")
    assert_clean(drawn(functions, "functions"))
    run_kind("tms", dict(n_features=2, n_hidden=1, steps=300, lr=0.01, batch_size=256, log_points=2), artifacts_root,
             sweep={"feature_probability": [1.0, 0.01], "importance": [[1.0, 0.3], [1.0, 3.0]]}, name="grid21")
    theory = run_kind("tms-theory", dict(n_features=2, n_hidden=1, probabilities=[], importance_ratios=[],
                                         random_starts=1, compare="grid21"), artifacts_root, name="compare")
    problems = drawn(theory, "tms-theory")
    assert {"phase.png", "compare.png", "local_minima.png"} <= set(problems)
    assert_clean(problems)


@pytest.mark.slow
def test_language_model_kinds_figures_are_fit_for_a_paper(artifacts_root):
    """lm, then Neuroscope, neuron geometry and SAEs on it. (An SAE on a toy model also draws recovery.png and
    recovery_toy.png: test_sae_recovery_figures_of_a_toy_source_are_fit_for_a_paper.)"""
    from .helpers import run_toml
    from .test_lm import TINY

    lm = run_toml(TINY.replace('name = "lm-test"', 'name = "lm-tiny"'), artifacts_root, run_id="lm-tiny")
    assert_clean(drawn(lm, "lm"))
    scope = run_kind("neuroscope", dict(model="lm-tiny", corpus="builtin", split="all", token_budget=20000,
                                        context_length=32, top_k=4, sample_size=4, histogram_bins=16, logit_tokens=5,
                                        neighbours=3, batch_size=8), artifacts_root, name="scope")
    assert_clean(drawn(scope, "neuroscope"))
    geometry = run_kind("neuron-geometry", dict(model="lm-tiny", layer=1, processing=False, two_opt_seconds=1.0,
                                                activations=True, token_budget=4000, context_length=32),
                        artifacts_root, name="geometry")
    assert_clean(drawn(geometry, "neuron-geometry"))
    sae = run_kind("sae", dict(source="lm-tiny", hook="blocks.0.hook_resid_post", architecture="topk", k=4,
                               expansion_factor=2.0, lr=1e-3, steps=24, batch_size=128, buffer_tokens=640,
                               forward_batch=4, eval_tokens=512, eval_sequences=8, context_length=32, log_points=2),
                   artifacts_root, sweep={"seed": [0, 1]}, name="sae")
    assert_clean(drawn(sae, "sae"))


# ---------------------------------------------------------------- feature groups: collapsed directions, one label

def test_features_collapsed_onto_one_direction_share_one_label(tmp_path):
    """Correlated features that collapse onto one direction have their tips at one point: their numbers are
    written once ("0,1,2"), not over each other; distinct directions keep their own label."""
    from sptui.plots.feature_groups import direction_labels, draw_groups_2d
    from sptui.plots.tms import sheet_layout

    W = np.array([[[1.0, 0.0], [1.0, 0.0], [0.99, 0.03], [0.0, 1.0], [-0.7, -0.7], [0.0, 0.0]],
                  [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0], [0.02, 0.0]]])
    groups = [{"name": "corr 0", "features": [0, 1, 2]}, {"name": "independent", "features": [3, 4, 5]}]
    records = [{"instance": i, "grid": {"seed": i}, "groups": groups} for i in range(2)]
    assert [f for f, _ in direction_labels(W[0], 1.3)] == [[0, 1, 2], [3], [4]]  # 5 is unrepresented: no label
    assert [f for f, _ in direction_labels(W[1], 1.3)] == [[0, 1], [2], [3], [4]]
    with checking_saves() as seen:
        path = draw_groups_2d(W, records, sheet_layout(records), tmp_path / "feature_groups_2d.png")
    assert_clean({path.name: seen.by_path[path]})


def test_sweep_over_a_switch_and_over_a_short_log_range_is_fit_for_a_paper():
    """sweep.png's lines over a switch (dense_first: false / true, not 0.25 steps between them), and its heatmaps'
    log colour bar over a decade and a half (matplotlib labels its minor ticks: 2e-2, 3e-2 and 4e-2 collided)."""
    from sptui.plots.tms import sweep_figure, swept_axes

    switch = [{"instance": k, "grid": {"dense_first": v}, "metrics": {"loss": 0.1 * (k + 1), "represented": 3}}
              for k, v in enumerate([True, False])]
    short = [{"instance": k, "grid": {"feature_probability": p, "importance_decay": d},
              "metrics": {"loss": loss, "represented": 1}}
             for k, (p, d, loss) in enumerate([(1.0, 0.5, 0.1), (0.1, 0.5, 0.0115), (1.0, 2.0, 0.345), (0.1, 2.0, 0.033)])]
    for records in (switch, short):
        assert _problems(sweep_figure(records, swept_axes(records), m=2)) == []


@pytest.mark.slow
def test_toy_model_phase_diagram_per_feature_and_switch_sweep_figures_are_fit_for_a_paper(tmp_path):
    """phase_diagram.png (2 features in 1 dimension over two keys, a log-scale loss under a decade and a half),
    per_feature.png and sweep.png over a switch (dense_first: false / true, no 0.25 ticks)."""
    phase = run_kind("tms", dict(n_features=2, n_hidden=1, steps=20, batch_size=32, log_points=2), tmp_path,
                     sweep={"feature_probability": [1.0, 0.1], "importance": [[1.0, 0.5], [1.0, 2.0]]}, name="phase")
    classes = run_kind("tms", dict(n_features=6, n_hidden=2, feature_probability=0.01, dense_probability=0.5, steps=20,
                                   batch_size=32, log_points=2), tmp_path,
                       sweep={"dense_features": [2], "dense_first": [True, False]}, name="classes")
    problems = {f"phase/{k}": v for k, v in drawn(phase, "tms").items()}
    problems |= {f"classes/{k}": v for k, v in drawn(classes, "tms").items()}
    assert {"phase/phase_diagram.png", "phase/sweep.png", "classes/per_feature.png", "classes/sweep.png"} <= set(problems)
    assert_clean(problems)


# the widest sheet the tms kind draws: sheet_layout thins any sweep to MAX_ROWS x MAX_COLS panels; its columns here
# carry the longest labels (groups written out) and from 1 to 21 groups a panel (20 correlated pairs and the rest)
WIDE_CORRELATED = [[], [[0, 1]], [[0, 1], [2, 3]], [[0, 1, 2]], [[0, 1], [2, 3], [4, 5]], [[0, 1, 2, 3]],
                   [[0, 1], [2, 3], [4, 5], [6, 7]], [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],
                   [[2 * k, 2 * k + 1] for k in range(20)]]
WIDE_PROBABILITIES = [1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005]


def widest_sheet(n: int = 41):
    """Records and W [I, n, 2] of a sparsity x correlated-groups sweep thinned to the biggest sheet: the W are
    drawn at random (the layout is under test, not a model), the group cosines are those of the drawn W."""
    import torch

    from sptui.plots.tms import MAX_COLS, MAX_ROWS, sheet_layout
    from sptui.science import tms_metrics as M
    from sptui.science.feature_structure import FeatureGroups

    grid = [(p, c) for p in WIDE_PROBABILITIES for c in WIDE_CORRELATED]
    W = np.random.default_rng(0).normal(0, 0.6, (len(grid), n, 2))
    records = []
    for i, (p, groups) in enumerate(grid):
        named = FeatureGroups.of(correlated=groups).named_groups(n)
        unit = W[i] / np.linalg.norm(W[i], axis=1, keepdims=True)
        cos = unit @ unit.T  # cos(W_i, W_j): every feature represented
        record = {"instance": i, "grid": {"feature_probability": p, "correlated": groups}, "metrics": {}}
        if named:
            _, mean = M.group_cosines(torch.tensor(cos), [g for _, g in named])
            record |= {"groups": [{"name": name, "features": g} for name, g in named], "group_cos": mean.tolist()}
        records.append(record)
    layout = sheet_layout(records)
    assert layout.shape == (MAX_ROWS, MAX_COLS)
    return W, records, layout


def test_feature_group_cosines_at_the_most_panels_keep_their_text_readable(tmp_path):
    """group_cosines.png of the biggest sheet (10 x 8 panels, up to 6 groups each): a page wide, every text >= 5 pt
    there, nothing overlapping or cut, no empty bands. (feature_groups_2d.png: the slow test below.)"""
    from sptui.plots.feature_groups import draw_group_cosines

    _, records, layout = widest_sheet()
    with checking_saves() as seen:
        path = draw_group_cosines(records, layout, tmp_path / "group_cosines.png")
    assert_clean({path.name: seen.by_path[path]})


@pytest.mark.slow
def test_toy_model_sheets_at_the_most_panels_keep_their_text_readable(tmp_path):
    """The other per-instance sheets of the biggest sheet (test_feature_group_cosines_at_the_most_panels_...)."""
    from sptui.plots.feature_groups import draw_groups_2d
    from sptui.plots.tms import draw_feature_norms, draw_geometry_2d, draw_per_feature, draw_wtw, sheet_layout

    W, records, layout = widest_sheet()
    norms = np.linalg.norm(W, axis=2)
    derived = {"norm": norms, "interference": norms / 2, "dim": norms / norms.max(), "represented": norms > 0.5}
    probability = np.tile(np.geomspace(1, 0.01, W.shape[1]), (len(W), 1))
    geometry = ["3 antipodal pairs + 4 other + 1 unrepresented"] * len(W)  # the longest caption a panel gets
    with checking_saves() as seen:
        paths = [draw_wtw(np.einsum("ifh,igh->ifg", W, W), W[:, :, 0], layout, tmp_path / "wtw_bias.png"),
                 draw_feature_norms(derived, layout, tmp_path / "feature_norms.png"),
                 draw_geometry_2d(W, layout, tmp_path / "geometry_2d.png", geometry),
                 draw_per_feature(derived, probability, layout, tmp_path / "per_feature.png"),
                 draw_groups_2d(W, records, layout, tmp_path / "feature_groups_2d.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})
    # one swept key of 90 values: 80 of them wrapped into 10 rows of 8 panels, each titled with its value
    ps = [float(p) for p in np.geomspace(1, 0.000123, 90)]
    one_key = sheet_layout([{"instance": i, "grid": {"feature_probability": p}, "metrics": {}} for i, p in enumerate(ps)])
    W = np.random.default_rng(1).normal(0, 0.6, (len(ps), 6, 2))
    with checking_saves() as seen:
        paths = [draw_wtw(np.einsum("ifh,igh->ifg", W, W), W[:, :, 0], one_key, tmp_path / "one_key_wtw_bias.png"),
                 draw_geometry_2d(W, one_key, tmp_path / "one_key_geometry_2d.png", [geometry[0]] * len(ps))]
    assert one_key.shape == (10, 8) and len(one_key.titles) == 80
    assert_clean({p.name: seen.by_path[p] for p in paths})


def test_feature_group_figures_of_a_real_run_are_fit_for_a_paper(tmp_path):
    run = run_kind("tms", dict(n_features=5, n_hidden=2, feature_probability=0.2, steps=150, batch_size=128, log_points=2),
                   tmp_path, sweep={"correlated": [[], [[0, 1], [2, 3]], [[0, 1, 2]]], "seed": [0, 1]}, name="groups")
    problems = drawn(run, "tms")
    assert {"feature_groups_2d.png", "group_cosines.png"} <= set(problems)
    assert_clean(problems)


# ---------------------------------------------------------------- memorization (finite training sets)

def test_memorization_figures_are_fit_for_a_paper(tmp_path):
    """Twelve sizes T over two seeds: a hidden-vector sheet per seed and half its sizes (6 columns, the most)."""
    run = run_kind("memorization", dict(n_features=12, feature_probability=0.1, steps=80, warmup_steps=10,
                                        eval_batch=500, log_points=2, checkpoint_every=500), tmp_path,
                   sweep={"train_examples": [2, 3, 5, 8, 13, 21, 34, 55, 100, 200, 500, 1000], "seed": [0, 1]},
                   name="memorization")
    problems = drawn(run, "memorization")
    assert set(problems) == {"double_descent.png", "hidden_vectors.png", "hidden_vectors_seed0_T34-1000.png",
                             "hidden_vectors_seed1_T2-21.png", "hidden_vectors_seed1_T34-1000.png"}
    assert_clean(problems)


# ---------------------------------------------------------------- computation in superposition

@pytest.mark.parametrize("task,sweep", [
    ("abs", {"feature_probability": [1.0, 0.3, 0.1, 0.03], "seed": [0, 1]}),  # jobs/computation.toml's shape
    ("uand", {"n_hidden": [2, 4, 7, 14, 28], "feature_probability": [0.3, 0.1]}),  # ten settings: the widest bars
])
def test_computation_figures_are_fit_for_a_paper(tmp_path, task, sweep):
    params = dict(task=task, n_features=20 if task == "abs" else 8, steps=30, batch_size=64, eval_batch=512, log_points=2)
    run = run_kind("computation", params, tmp_path, sweep=sweep, name=f"computation-{task}")
    problems = drawn(run, "computation")
    weights = {"weights.png", "weights_instances6-7.png" if task == "abs" else "weights_instances6-9.png"}  # all drawn
    assert set(problems) == {"neurons.png", "errors.png"} | weights | ({"neurons_error.png"} if task == "uand" else set())
    assert_clean(problems)


# ---------------------------------------------------------------- SAEs on toy models: recovery on the toy grid

def test_sae_recovery_figures_of_a_toy_source_are_fit_for_a_paper(tmp_path):
    """SAEs on a toy-model sweep over two parameters, two SAE settings: recovery.png (a row per setting and the
    best of them) and recovery_toy.png (the toy models' D*, represented features, geometry, recovery by shape)."""
    run_kind("tms", dict(n_features=5, n_hidden=2, steps=200, batch_size=256, log_points=2), tmp_path,
             sweep={"feature_probability": [1.0, 0.3, 0.05], "importance_decay": [1.0, 0.7]}, name="toy")
    sae = run_kind("sae", dict(source="toy", architecture="relu", d_sae=10, lr=3e-3, steps=60, batch_size=256,
                               log_points=2, eval_tokens=2048), tmp_path,
                   sweep={"sparsity_coefficient": [0.3, 3.0]}, name="sae-toy")
    problems = drawn(sae, "sae")
    assert {"metrics.png", "latents.png", "recovery.png", "recovery_toy.png"} <= set(problems)
    assert_clean(problems)


# ---------------------------------------------------------------- metric curves (lm's PNGs, the app's exports)

def test_curve_pngs_are_fit_for_a_paper(tmp_path):
    """export_png (one column: lm's loss.png, the app's curves-<metric>.png) over 8 instances and two splits on a
    log axis under two decades; export_compare_png (a page wide) over 12 runs, their legend beside the panel; and
    instance_curves (addition's curves.png, a page wide) over 3 groups of 2 seeds, their legend under the panels."""
    from sptui.plots.curves import export_compare_png, export_png, instance_curves

    steps = np.arange(0, 1000, 10.0)
    records = [{"step": s, "split": "train", "loss": list(np.exp(-s / 300) + 0.02 * np.arange(8))} for s in steps]
    records += [{"step": s, "split": "test", "loss": list(np.exp(-s / 300) + 0.03 * np.arange(8))} for s in steps[::10]]
    runs = [(f"run {g}", f"00{g:02d}-a-long-run-name seed={g}", steps, np.exp(-steps / (200 + 30 * g)) + 0.01 * g)
            for g in range(12)]
    grid = [{"lr": lr, "seed": seed} for lr in (3e-3, 1e-2, 3e-2) for seed in (0, 1)]
    by_instance = [{"step": s, "split": split, "loss": [2.3 * np.exp(-s * (i + 1) / 400) for i in range(6)],
                    **({"acc": [min(1.0, s / 800 + 0.01 * i) for i in range(6)],
                        "exact": [min(1.0, s / 1000) for _ in range(6)]} if split == "test" else {})}
                   for s in steps for split in ("train", "test")]
    with checking_saves() as seen:
        paths = [export_png(records, "loss", tmp_path / "loss.png", title="0012-tms-grid: loss", log_scale=True),
                 export_compare_png(runs, "loss", tmp_path / "compare.png", title="loss (train) by run", log_scale=True,
                                    spread=[(g, st, v * 0.9, v * 1.1) for g, _, st, v in runs]),
                 *instance_curves(by_instance, grid, tmp_path / "curves.png", title="addition: 6 instances")]
    assert [p.name for p in paths] == ["loss.png", "compare.png", "curves.png"]
    assert_clean({p.name: seen.by_path[p] for p in paths})


# ---------------------------------------------------------------- neuron geometry at its most panels

def test_neuron_geometry_figures_at_their_most_are_fit_for_a_paper(tmp_path):
    """tiles.png at its most (6 tiles of tile_size 32, 5-digit neuron numbers under each, thinned to what fits at
    5.5 pt) and of 8 (every neuron named), permuted.png, and compare.png of the model and its 4 nulls (5 panels,
    the longest titles): a page wide, no empty bands."""
    from sptui.plots import geometry as G

    rng = np.random.default_rng(0)
    n = 512
    W = rng.normal(size=(n, 32))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    C = (W @ W.T).astype(np.float32)
    blocks = [{"start": s, "stop": s + 12, "size": 12, "mean_cos2": 0.3} for s in range(0, n, 80)]
    order = rng.permutation(n) * 31  # neuron numbers of a wide layer, up to 5 digits
    titles = ["model: 0.1757 (greedy+2opt)"] + [f"{name} null: 0.2269 ± 0.0110\n(39 draws; model p = 0.075)"
                                                for name in ("covariance", "rotation", "gaussian", "shuffled")]
    with checking_saves() as seen:
        paths = [G.draw_tiles(C, order, blocks, tmp_path / "tiles.png", tile=32),
                 G.draw_tiles(C, order, blocks, tmp_path / "tiles8.png", tile=8),
                 G.draw_permuted(C, blocks, "lm layer 1 W_out: seriated cosine Gram, neighbour cos² 0.1757 (p = 0.001), "
                                 "7 significant blocks", tmp_path / "permuted.png"),
                 G.draw_compare([(t, C[:128, :128]) for t in titles], tmp_path / "compare.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})


# ---------------------------------------------------------------- tms-theory at its largest

THEORY_GEOMETRIES = ["2 antipodal pairs + 1 unrepresented", "1 antipodal pair + 1 dedicated + 2 unrepresented",
                     "3 other + 2 unrepresented", "1 pentagon", "2 dedicated + 3 unrepresented",
                     "1 triangle + 2 unrepresented", "nothing represented", "1 antipodal pair + 3 unrepresented"]


def _theory(P: int, R: int) -> dict:
    """A phase.json of P probabilities x R importance ratios, 8 geometries (the layout is under test, not the theory)."""
    probs, ratios = list(np.geomspace(0.001, 1, P)), list(np.geomspace(0.1, 10, R))
    return {"n_features": 8, "n_hidden": 2, "output_activation": "relu", "probabilities": probs,
            "importance_ratios": ratios, "phase": np.random.default_rng(0).integers(0, 3, (R, P)).tolist(),
            "loss": np.outer(ratios, probs).tolist(),
            "geometry": [[THEORY_GEOMETRIES[(i * 3 + j) % 8] for j in range(P)] for i in range(R)]}


def _compared(phase: dict, every: int) -> dict:
    """comparison.json: every `every`-th cell 2 of 3 seeds in a worse local minimum."""
    R, P = len(phase["importance_ratios"]), len(phase["probabilities"])
    worse = [[2 if (i + j) % every == 0 else 0 for j in range(P)] for i in range(R)]
    return {"probabilities": phase["probabilities"], "importance_ratios": phase["importance_ratios"], "tolerance": 1e-6,
            "phase": phase["phase"], "seeds": [[3] * P for _ in range(R)], "worse": worse,
            "max_gap": [[0.5 * (i + 1) * (j + 1) if worse[i][j] else 1e-9 for j in range(P)] for i in range(R)],
            "agreement_cells": 0.83, "worse_instances": sum(map(sum, worse)), "instances": 3 * R * P}


def test_tms_theory_figures_at_their_largest_are_fit_for_a_paper(tmp_path):
    """phase.png over 40 x 40 problems with 8 geometries in its legend and over 4 x 3 (every value ticked),
    compare.png with its worse cells written in (4 x 3) and too small to write in (20 x 20: hatched only), and
    local_minima.png with its 6 largest gaps written out at length under the panels: a page wide, text >= 5 pt."""
    from sptui.plots import tms_theory as T

    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        best, gap = float(10 ** rng.uniform(-5, -1)), float(10 ** rng.uniform(-9, 0.5)) if i % 3 == 0 else 1e-12
        rows.append({"instance": i, "grid": {"feature_probability": 0.0123, "importance": [1.0, 3.7], "seed": i},
                     "best_known": best, "local_minimum": best * (1 + gap), "relative_gap": gap, "worse": gap > 1e-6,
                     "local_arrangement": "antipodal 0,1 + antipodal 2,3 + dedicated 4 + unrepresented 5,6,7",
                     "best_arrangement": "pentagon 0,1,2,3,4 + unrepresented 5,6,7"})
    small, big = _theory(4, 3), _theory(20, 20)
    with checking_saves() as seen:
        paths = [T.draw_phase(_theory(40, 40), tmp_path / "phase.png"), T.draw_phase(small, tmp_path / "phase_4x3.png"),
                 T.draw_compare(small, _compared(small, 2), tmp_path / "compare_4x3.png"),
                 T.draw_compare(big, _compared(big, 3), tmp_path / "compare.png"),
                 T.draw_local_minima({"run": "0042-tms-sweep-of-eight-features", "tolerance": 1e-6, "instances": rows},
                                     tmp_path / "local_minima.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})


def test_sae_metrics_and_latents_at_their_most_are_fit_for_a_paper(tmp_path):
    """metrics.png of 40 SAEs on a toy source (6 panels) and latents.png of its first 8 with the longest labels a
    sweep over eight toy and SAE keys gives (wrapped to the page, under the panel): a page wide, text >= 5 pt."""
    from sptui.plots.sae import draw_latents, draw_metrics

    rng = np.random.default_rng(0)
    records = [{"instance": i, "grid": {"sparsity_coefficient": 0.3 * (i % 4 + 1), "seed": i // 20},
                "source_grid": {"feature_probability": 0.0123 * (i % 5 + 1), "importance_decay": 0.7,
                                "dropout": 0.1, "n_hidden": 2, "dense_probability": 0.5, "weight_decay": 0.001},
                "metrics": {"l0": 3.0 + i % 4, "fvu": 0.2, "dead_fraction": 0.1 * (i % 3), "mmcs": 0.9, "f1": 0.6,
                            "corr": 0.7}} for i in range(40)]
    summary = {"architecture": "relu", "tokens": 123456, "source": {"kind": "tms", "run": "0042-toy-sweep"}}
    d_sae = np.full(40, 64)
    frequency = 10 ** rng.uniform(-4, 0, (40, 64)) * (rng.random((40, 64)) > 0.1)
    with checking_saves() as seen:
        paths = [draw_metrics(records, summary, tmp_path / "metrics.png"),
                 draw_latents({"frequency": frequency, "d_sae": d_sae}, records, tmp_path / "latents.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})


# ---------------------------------------------------------------- the addition kinds at their largest

def _largest_addition(H: int, n: int = 9, seed: int = 0) -> dict:
    """Arrays shaped as the addition kinds save them for `H` heads and `n` digits (the most the kind allows),
    drawn at random: the layout is under test, not a model."""
    from sptui.science.compression import MODES, role_columns

    rng = np.random.default_rng(seed)
    n_ctx, n_ans, M = 3 * n + 1, n + 1, len(MODES)
    patterns = rng.random((H, n_ctx, n_ctx)) * np.tril(np.ones((n_ctx, n_ctx)))
    patterns /= patterns.sum(-1, keepdims=True)
    curve = np.sort(rng.random((M, n_ans, H + 1)), axis=-1)
    return {
        "proj": {w: rng.normal(size=(H, n_ctx, 12, 2)) for w in "qkv"} | {"o": rng.normal(size=(H, 10, 2))},
        "ablation": {"per_head": rng.normal(size=(H, 10, 10)), "baseline": rng.normal(size=(10, 10)),
                     "per_head_win": rng.random((H, 10, 10)) > 0.8, "contribution": rng.normal(size=(H, 10, 10)),
                     "full_pos": rng.normal(size=(n, 10, 10)), "baseline_pos": rng.normal(size=(M, n, 10, 10))},
        "patterns": patterns,
        "compression": {"roles": rng.random((H, len(role_columns()))), "prune_kept": rng.random((M, n_ans, H)) > 0.9,
                        "acc_full": rng.random(n_ans), "acc_ablate_one": rng.random((M, H, n_ans)),
                        "acc_keep_one": rng.random((M, H, n_ans)), "prune_curve": curve,
                        "prune_count": rng.integers(0, H, (M, n_ans)), "overlap": rng.random((M, n_ans, n_ans))},
        "facts": {"role_columns": role_columns(), "acc_full": [0.9] * n_ans, "tolerance": 0.01,
                  "heads": [{"head": h, "label": "kept, no clear role" if h % 3 else "a@0 + b@0 at answer 9"}
                            for h in range(H)]},
    }


def test_addition_figures_at_the_most_digits_fit_a_page(tmp_path):
    """9-digit sums (10 answer positions, 28 positions attended) of a 32-head model: every addition and
    compression figure a page wide, readable, nothing overlapping; across 32 instances too."""
    from sptui.plots import addition as A
    from sptui.plots import compression as C

    H, n = 32, 9
    d = _largest_addition(H, n)
    n_inst, n_roles = 32, 40
    rng = np.random.default_rng(1)
    across = {"role_counts": rng.integers(0, 4, (n_roles, n_inst)), "similarity": rng.random((n_inst, n_inst)),
              "kept_count": rng.integers(0, H, (2, n_inst, n + 1))}
    summary = {"instances": [f"seed={k} lr=0.001" for k in range(n_inst)], "roles": [f"answer {k % 10}: a@{k % 3}" for k in range(n_roles)],
               "mean_matched_similarity": 0.8, "mean_random_matching_similarity": 0.5}
    with checking_saves() as seen:
        paths = [A.projection_sheet(d["proj"], "q", n, tmp_path / "projection_q.png"),
                 A.projection_sheet(d["proj"], "o", n, tmp_path / "projection_o.png"),
                 A.ablation_sheet(d["ablation"]["per_head"], d["ablation"]["baseline"], tmp_path / "ablation_heads.png",
                                  d["ablation"]["per_head_win"]),
                 A.contribution_map(d["ablation"]["contribution"], tmp_path / "ablation_contributions.png"),
                 A.pattern_sheet(d["patterns"], n, tmp_path / "attention_mean.png", "attention, mean over the test set"),
                 A.head_detail(d["proj"], 3, n, tmp_path / "head_3.png", d["ablation"]["per_head"][3]),
                 C.grids_by_position(d["ablation"], tmp_path / "ablation_by_position.png"),
                 C.role_heatmap(d["compression"], d["facts"], tmp_path / "compression_roles.png"),
                 C.pruning_curves(d["compression"], d["facts"], tmp_path / "compression_pruning.png"),
                 C.ablation_table(d["compression"], tmp_path / "compression_ablations.png"),
                 *C.across(across, summary, tmp_path / "compression_across.png")]
    problems = {p.name: seen.by_path[p] for p in paths}
    assert_clean(problems)
    assert max(figure_checks_width(p) for p in paths) <= 7.0 + 0.02  # the dpi PIL reads back is rounded


def test_compression_across_of_every_role_the_kind_allows_stays_pages(tmp_path):
    """180 roles (10 answer positions x 6 targets x 3 offsets, the most) over 12 seeds: the role matrix on sheets
    of 40 roles a page tall (compression_across.png with the similarity and set sizes, then _roles40-79, ...),
    each saying which roles of the 180 it holds, every role's row on exactly one sheet (one sheet was 24 in tall)."""
    from sptui.plots import compression as C
    from sptui.science.compression import OFFSETS, TARGETS

    roles = [f"answer {j}: {t}@{o:+d}".replace("+0", "0") for j in range(10) for o in OFFSETS for t in TARGETS]
    n_inst, rng = 12, np.random.default_rng(2)
    across = {"role_counts": rng.integers(0, 4, (len(roles), n_inst)), "similarity": rng.random((n_inst, n_inst)),
              "kept_count": rng.integers(0, 32, (2, n_inst, 10))}
    summary = {"instances": [f"seed={k}" for k in range(n_inst)], "roles": roles, "mean_matched_similarity": 0.8,
               "mean_random_matching_similarity": 0.5}
    with checking_saves() as seen:
        paths = C.across(across, summary, tmp_path / "compression_across.png")
    assert [p.name for p in paths] == ["compression_across.png"] + [f"compression_across_roles{lo}-{lo + 39}.png"
                                                                    for lo in (40, 80, 120)] + ["compression_across_roles160-179.png"]
    assert_clean({p.name: seen.by_path[p] for p in paths})
    for p in paths:
        width, height = saved_inches(p)
        assert width <= 7.02 and height <= MAX_HEIGHT, f"{p.name}: {width:.2f} x {height:.2f} in"
    texts = [t for p in paths for t in seen.texts[p]]
    assert sorted(t for t in texts if t in roles) == sorted(roles)  # every role's row label, once
    assert any("(roles 160-179 of 180)" in t for t in seen.texts[paths[-1]])


def figure_checks_width(path) -> float:
    """A saved PNG's width in inches (pixels over the dpi it was saved at)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size[0] / image.info["dpi"][0]


@pytest.mark.slow
def test_addition_sheets_of_many_heads_go_on_further_pages(tmp_path):
    """A 72-head model: its head sheets are a first page of 64 heads (8 x 8) and a second of 8, each a page
    wide and clean; the file names say which heads a page holds."""
    from sptui.plots import addition as A

    H, n = 72, 9
    d = _largest_addition(H, n)
    assert [(p.start, p.stop, s) for p, s in A.head_pages(H)] == [(0, 64, ""), (64, 72, "_heads64-71")]
    with checking_saves() as seen:
        paths = []
        for heads, suffix in A.head_pages(H):
            paths += [A.projection_sheet(d["proj"], "v", n, tmp_path / f"projection_v{suffix}.png", heads=heads),
                      A.ablation_sheet(d["ablation"]["per_head"], d["ablation"]["baseline"],
                                       tmp_path / f"ablation_heads{suffix}.png", d["ablation"]["per_head_win"], heads),
                      A.pattern_sheet(d["patterns"], n, tmp_path / f"attention_mean{suffix}.png", "attention", heads)]
    assert_clean({p.name: seen.by_path[p] for p in paths})


def _compression_results(results, H: int) -> None:
    """compression.safetensors + compression.json of an `H`-head, 9-digit model, as the analysis saves them."""
    from sptui.runs import atomic_write_json, save_arrays

    d = _largest_addition(H, 9)
    results.mkdir(parents=True)
    save_arrays(results / "compression.safetensors", {k: np.asarray(v) for k, v in d["compression"].items()})
    atomic_write_json(results / "compression.json", d["facts"])


def _compression_sheets(tmp_path, H: int) -> None:
    """The compression figures of an `H`-head model, drawn by the addition renderer: every sheet a page at most
    (7 in wide, 9 in tall) and clean, the heads split over sheets of 64 named like the head sheets, each head's
    row on exactly one sheet of each figure."""
    from sptui.plots import addition as A

    _compression_results(tmp_path / "results", H)
    with checking_saves() as seen:
        paths = A.render_results(tmp_path / "results", tmp_path / "plots", 9)
    pages = A.head_pages(H)
    names = {p.name for p in paths}
    assert names == {"compression_pruning.png"} | {f"compression_{what}{suffix}.png" for _, suffix in pages
                                                   for what in ("roles", "ablations")}, sorted(names)
    assert_clean({p.name: seen.by_path[p] for p in paths})
    for p in paths:
        width, height = saved_inches(p)
        assert width <= 7.02 and height <= MAX_HEIGHT, f"{p.name}: {width:.2f} x {height:.2f} in"
    for what in ("roles", "ablations"):
        for heads, suffix in pages:
            texts = seen.texts[tmp_path / "plots" / f"compression_{what}{suffix}.png"]
            if len(pages) > 1:  # a sheet of part of the heads says which in its title
                assert any(f"(heads {heads.start}-{heads.stop - 1} of {H})" in t for t in texts), texts[:3]
    rows = [t.split()[0] for heads, suffix in pages
            for t in seen.texts[tmp_path / "plots" / f"compression_roles{suffix}.png"] if "  " in t]
    assert sorted(map(int, rows)) == list(range(H))  # every head's labelled row, once


def test_compression_figures_of_many_heads_go_on_further_pages(tmp_path):
    """72 heads: the role map and the ablation table on a sheet of 64 heads and one of 8 (it was one sheet
    13 in tall, printed shrunk to a page)."""
    _compression_sheets(tmp_path, 72)


def test_the_contribution_map_of_many_heads_goes_on_further_pages(tmp_path):
    """72 heads' ablation results, drawn by the addition renderer: ablation_contributions.png holds heads 0-63
    and ablation_contributions_heads64-71.png the rest, ticked with their own numbers (a single map squeezed
    1024 heads into 700 pixels: most heads were not drawn at all); every sheet a page at most and clean."""
    from sptui.plots import addition as A
    from sptui.runs import save_arrays

    H = 72
    ablation = _largest_addition(H, 2)["ablation"]
    summary = {k: np.random.default_rng(2).integers(0, H, (10, 10)) for k in ("heads_positive", "heads_negative",
                                                                             "heads_needed")}
    (tmp_path / "results").mkdir()
    save_arrays(tmp_path / "results" / "ablation.safetensors", {**ablation, **summary, "full": ablation["baseline"]})
    with checking_saves() as seen:
        paths = A.render_results(tmp_path / "results", tmp_path / "plots", 2)
    maps = {p.name: p for p in paths if p.name.startswith("ablation_contributions")}
    assert set(maps) == {"ablation_contributions.png", "ablation_contributions_heads64-71.png"}
    assert_clean({p.name: seen.by_path[p] for p in paths})
    for name, path in maps.items():
        width, height = saved_inches(path)
        assert width <= 7.02 and height <= MAX_HEIGHT, f"{name}: {width:.2f} x {height:.2f} in"
    second = seen.texts[maps["ablation_contributions_heads64-71.png"]]
    assert any("(heads 64-71 of 72)" in t for t in second) and "70" in second  # head 70's tick, not row 6's


@pytest.mark.slow
def test_compression_figures_of_the_most_heads_the_kind_allows_stay_pages(tmp_path):
    """1024 heads (addition's most): 16 sheets of each, every one a page."""
    _compression_sheets(tmp_path, 1024)


# ---------------------------------------------------------------- functions and computation at their largest

def test_functions_figures_of_the_widest_models_fit_a_page(tmp_path):
    """A sheet of six instances (the most a sheet holds) of a 2-input target, with the longest title a sweep gives
    (which instances of how many the sheet holds, and which are not drawn): neuron stacks of 300 hidden units
    (unit labels thinned) and the target with every instance's map and error, a page wide, clean."""
    from sptui.plots.functions import PER_SHEET, draw_function, draw_weights, sheet_note

    rng = np.random.default_rng(0)
    n, width = PER_SHEET, 300
    W1, b1, W2 = rng.normal(size=(n, width, 2)), rng.normal(size=(n, width)), rng.normal(size=(n, 1, width))
    model = {"W1": W1, "b1": b1, "W2": W2, "combined": np.einsum("iow,iwd->iod", W2, W1)}
    axis = np.linspace(-1, 1, 41)
    target = np.maximum(np.abs(axis)[None], np.abs(axis)[:, None])
    grid = {"axis": axis, "target": target, "learned": target[None] + rng.normal(0, 0.1, (n, 41, 41))}
    labels = [f"seed {k}, lr 0.003: loss 0.0123" for k in range(n)]
    title = "max(|x|, |y|) with 300 relu units" + sheet_note(list(range(42, 48)), 200)
    with checking_saves() as seen:
        paths = [draw_weights(model, list(range(n)), labels, title, tmp_path / "weights.png"),
                 draw_function(grid, list(range(n)), labels, title, tmp_path / "function.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})


def test_computation_figures_of_forty_settings_fit_a_page(tmp_path):
    """8 sparsities x 5 widths (40 settings, labels thinned) of U-AND on 12 features (66 outputs); the weights on its
    first sheet and its last, part-filled one, whose title says which instances of the 40 it holds."""
    from sptui.plots import computation as P

    rng = np.random.default_rng(0)
    ps, ms, n = [0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01], [4, 8, 16, 33, 66], 12
    records, m_max, outputs = [], max(ms), n * (n - 1) // 2
    for k, (p, m) in enumerate([(p, m) for p in ps for m in ms]):
        split = rng.multinomial(m, [0.3, 0.3, 0.3, 0.1])
        records.append({"instance": k, "params": {"feature_probability": p, "n_hidden": m, "seed": 0},
                        "metrics": {"monosemantic": int(split[0]), "two_features": int(split[1]),
                                    "three_or_more": int(split[2]), "dead": int(split[3]),
                                    "computed": int(rng.integers(0, outputs)), "partly_computed": outputs // 2,
                                    "mean_fvu": float(rng.random())}})
    alive = np.zeros((len(records), m_max))
    for k, r in enumerate(records):
        alive[k, : r["params"]["n_hidden"]] = 1
    summary = {"task": "uand", "n_features": n, "outputs": outputs, "monosemantic_share": 0.9, "computed_below": 0.25,
               "partly_below": 0.75}
    errors = {"fvu": rng.random((len(records), outputs)), "alive": alive,
              "features_per_neuron": rng.integers(1, 4, (len(records), m_max))}
    model = {"W1": rng.normal(size=(len(records), m_max, n))}
    with checking_saves() as seen:
        paths = [P.draw_neurons(records, summary, tmp_path / "neurons.png"),
                 P.draw_errors(records, errors, summary, tmp_path / "errors.png"),
                 P.draw_weights(records, model, errors, summary, tmp_path / "weights.png", list(range(6))),
                 P.draw_weights(records, model, errors, summary, tmp_path / "weights_instances36-39.png",
                                list(range(36, 40))),
                 P.draw_neurons_error(records, summary, tmp_path / "neurons_error.png")]
    assert_clean({p.name: seen.by_path[p] for p in paths})
