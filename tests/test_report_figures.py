"""The claims report's figures (sptui/report/figures.py) fit a page and pass every figure check
(tests/figure_checks.py: at most 7.5 in wide, text >= 5 pt at a 7-inch page, nothing overlapping or cut, no
empty bands, colour bars, legends and labels), drawn from planted run tables by the report's own `draw_all`:
once in the shapes the shipped job files make, once at the largest the report's figures take (a long dropout
sweep, every nonuniform cell, SGD cells that did not train). No training, so it runs in the default suite;
tests/test_report_toy_models.py checks the figures of a report of real (tiny) runs the same way (slow).
"""

from __future__ import annotations

import numpy as np
import pytest

from sptui.report import claims as C
from sptui.report import figures as F
from tests.figure_checks import MAX_WIDTH, checking_saves
from tests.test_report_claims import addition_table, functions_table, table

EVERY_FIGURE = {"intro", "linear_relu", "dropout_counts", "dims", "alignment", "transitions", "antipodal",
                "wtw_extreme", "nonuniform", "gelu", "functions", "addition", "hidden"}


def grid_table(job: str, n: int, m: int, keys: dict[str, list], loss=None, seed: int = 0, **job_params):
    """A tms table with a random W [n, m] per grid point of `keys` (their product, in order)."""
    rng = np.random.default_rng(seed)
    points: list[dict] = [{}]
    for key, values in keys.items():
        points = [{**p, key: v} for p in points for v in values]
    cells = [(g, rng.normal(size=(n, m)) / np.sqrt(m)) for g in points]
    return table(job, cells, None if loss is None else loss(points), **job_params)


def nonuniform_table(dense_features: list[int], dense_probabilities: list[float], seeds: int, n: int = 20):
    """The nonuniform-sparsity grid: features 0..k-1 dense (or the last k, dense_first false) at the dense p."""
    t = grid_table("nonuniform-sparsity", n, 5, {"dense_features": dense_features, "dense_first": [True, False],
                                                 "dense_probability": dense_probabilities, "seed": list(range(seeds))},
                   dropout=0.0, feature_probability=0.01)
    probs = np.full((t.count, n), 0.01)
    for i, g in enumerate(t.grid):
        dense = slice(0, g["dense_features"]) if g["dense_first"] else slice(n - g["dense_features"], n)
        probs[i, dense] = g["dense_probability"]
    t.features["probability"] = probs
    for p, g in zip(t.params, t.grid):
        p.update(g)
    return t


def planted(dropouts: list[float], ps: list[float], seeds: int, dense: tuple[list[int], list[float]]) -> dict:
    """Every run the report draws, planted: the dropout grids over `dropouts` x `ps` x seeds, and the rest."""
    sweep = {"feature_probability": ps, "dropout": dropouts, "seed": list(range(seeds))}
    # plain SGD that did not train at the sparsest p: 10x the Adam grid's loss there (labelled in alignment.png)
    sgd_loss = lambda points: np.array([10.0 if g["feature_probability"] == min(ps) else 1.0 for g in points])  # noqa: E731
    tables = {
        "dropout-20-5": grid_table("dropout-20-5", 20, 5, sweep, loss=lambda points: np.ones(len(points))),
        "dropout-5-2": grid_table("dropout-5-2", 5, 2, sweep, seed=1),
        "dropout-5-2-classic": grid_table("dropout-5-2-classic", 5, 2, sweep, seed=2),
        "dropout-20-5-sgd": grid_table("dropout-20-5-sgd", 20, 5, sweep, loss=sgd_loss, seed=3, optimizer="sgd"),
        "intro-5-2": grid_table("intro-5-2", 5, 2, {"feature_probability": ps, "seed": list(range(seeds))}, dropout=0.0),
        "nonuniform-sparsity": nonuniform_table(*dense, seeds=seeds),
        "addition-6-paper": addition_table(0.98, 0.99),
    }
    for act in ("none", "relu"):
        job = f"linear-vs-relu-20-5[output_activation={act}]"
        tables[job] = grid_table(job, 20, 5, {"feature_probability": ps, "seed": list(range(seeds))}, dropout=0.0)
    for where in ("output", "hidden"):
        for act in ("relu", "gelu"):
            job = f"gelu-{where}[{where}_activation={act}]"
            tables[job] = grid_table(job, 20, 5, {"feature_probability": ps, "dense_features": [0, 5],
                                                  "seed": list(range(seeds))}, dropout=0.0)
    rng = np.random.default_rng(0)
    for target in ("abs", "and", "or", "max_abs", "square"):
        for act in ("relu", "gelu"):
            tables[f"functions[target={target},activation={act}]"] = functions_table(act, list(10 ** rng.uniform(-9, 0, seeds)), target)
    for act in ("relu", "gelu"):
        tables[f"functions-max-narrow[activation={act}]"] = functions_table(act, list(10 ** rng.uniform(-3, 0, seeds)))
    for m in C.HIDDEN_SIZES:
        job = f"tied-ae-32-paper[n_hidden={m}]"
        tables[job] = grid_table(job, 32, m, {"seed": list(range(seeds))}, feature_probability=0.05, dropout=0.0)
        job = f"tied-ae-32[n_hidden={m}]"
        tables[job] = grid_table(job, 32, m, {"l1_hidden": [0.0, 0.001, 0.01], "seed": list(range(seeds))},
                                 feature_probability=0.05, dropout=0.0)
    return tables


def problems_of(drawn: dict[str, str], seen, out) -> dict[str, list[str]]:
    """{file: problems} for the figures drawn, the PNG as written (trimmed to the drawing) at most a page wide."""
    from PIL import Image

    problems = {}
    for name in drawn.values():
        found = list(seen.by_path[out / name])
        with Image.open(out / name) as image:
            if image.size[0] / F.DPI > MAX_WIDTH + 0.05:
                found.append(f"written {image.size[0] / F.DPI:.2f} in wide")
        problems[name] = found
    return problems


def assert_clean(problems: dict[str, list[str]]) -> None:
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, "figure problems:\n" + "\n".join(f"{n}:\n  " + "\n  ".join(f) for n, f in sorted(bad.items()))


def assert_every_figure_fits(tables: dict, out) -> None:
    with checking_saves() as seen:
        drawn = F.draw_all(tables, out, C._participation)
    assert set(drawn) == EVERY_FIGURE
    assert_clean(problems_of(drawn, seen, out))


SHIPPED_DROPOUTS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8]
LARGEST_DROPOUTS = [round(0.03 * k, 2) for k in range(30)]  # wtw_extreme.png draws 16 of them, 4 a row
LARGEST_PS = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.00215]  # 4 drawn, the sparsest "did not train" under SGD
LARGEST_DENSE = ([1, 2, 5, 10, 15], [0.001, 0.03, 0.3, 1.0])  # 40 nonuniform cells under 8 group labels


def test_figures_that_grow_with_the_sweep_fit_a_page_at_its_largest(tmp_path):
    # The default suite's share (drawing all 13 figures three times takes a minute on a busy machine: slow below):
    # the figures whose panels, cells or legends grow with the sweep, at the largest sweep.
    tables = planted(LARGEST_DROPOUTS, LARGEST_PS, 2, LARGEST_DENSE)
    drawers = {"wtw_extreme": F.fig_wtw_extreme, "nonuniform": F.fig_nonuniform, "transitions": F.fig_transitions}
    with checking_saves() as seen:
        drawn = {key: draw(tables, tmp_path / f"{key}.png").name for key, draw in drawers.items()}
    assert_clean(problems_of(drawn, seen, tmp_path))
    from PIL import Image

    with Image.open(tmp_path / "wtw_extreme.png") as image:  # 4 rows of 4 panels: within a page's height too
        assert image.size[1] / F.DPI <= 9.0


@pytest.mark.slow
def test_report_figures_of_the_shipped_sweeps_fit_a_page(tmp_path):
    # jobs/toy-models*.toml: 8 dropout rates, 4-6 feature probabilities, 3 seeds, dense classes of 5-15 at 2 p's
    assert_every_figure_fits(planted(SHIPPED_DROPOUTS, [1.0, 0.368, 0.136, 0.05], 3, ([5, 10, 15], [0.3, 1.0])), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dropouts", [[0.0], [0.0, 0.5]], ids=["one-rate", "two-rates"])
def test_report_figures_of_the_smallest_sweeps_fit_a_page(tmp_path, dropouts):
    assert_every_figure_fits(planted(dropouts, [1.0, 0.05], 1, ([5], [1.0])), tmp_path)


@pytest.mark.slow
def test_report_figures_of_the_largest_sweeps_fit_a_page(tmp_path):
    assert_every_figure_fits(planted(LARGEST_DROPOUTS, LARGEST_PS, 2, LARGEST_DENSE), tmp_path)


def test_wtw_extreme_draws_at_most_its_most_evenly_with_both_ends():
    values = [round(0.01 * k, 2) for k in range(40)]
    shown = F._spread(values, F.WTW_MOST)
    assert len(shown) == F.WTW_MOST and shown[0] == values[0] and shown[-1] == values[-1]
    assert shown == sorted(set(shown))
    assert F._spread(values[:5], F.WTW_MOST) == values[:5]
